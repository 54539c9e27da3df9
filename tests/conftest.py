# ---- database server fixtures (mysql_url, postgres_url, db_url): see tests/db_servers.py ----
pytest_plugins = ["tests.db_servers"]
