import subprocess

import pytest

# ---- database server fixtures (mysql_url, postgres_url, db_url): see tests/db_servers.py ----
pytest_plugins = ["tests.db_servers"]


# ---- a real small filesystem, for the full-disk tests ----
@pytest.fixture
def tmpfs(tmp_path):
    """`tmpfs(size)` mounts a real tmpfs of that size (e.g. "256k") under tmp_path and returns
    its path; unmounted afterwards. Mounting needs root: elsewhere the test is skipped (the
    injected-fault tests cover the same behaviour without it)."""
    mounts = []

    def mount(size: str):
        path = tmp_path / f"disk-{len(mounts)}"
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], check=False)
