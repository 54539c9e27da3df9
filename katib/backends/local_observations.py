"""The observation API for local Custom metrics collectors (`katib.py --fake run`/`serve`).

A Custom collector runs as a process beside its trial (local_pod) and reports as our collector
program does on a cluster: over HTTPS to katib's observation API (katib.webhook.observations)
with the trial's HMAC token. The server starts when the first Custom collector needs it, on
127.0.0.1 with a port the system picks, with a CA and certificate generated under
`<work dir>/observation-api/` and the collector key there (kept across restarts, so a token
stays valid; the port is new at every start). Each collector gets, in its environment:
  KATIB_OBSERVATIONS_ADDRESS  127.0.0.1:<port> (what `python -m collector -s` takes)
  KATIB_COLLECTOR_TOKEN       the trial's token
  KATIB_CA_PEM                the CA certificate (PEM) that signed the server's certificate."""
from __future__ import annotations

import threading
from pathlib import Path


class LocalObservationAPI:
    def __init__(self, directory: Path, store):
        self.directory = Path(directory)
        self.store = store
        self._lock = threading.Lock()
        self._server = None
        self._key = None
        self._ca = ""

    def env(self, trial_name: str) -> dict[str, str]:
        """The variables a Custom collector of `trial_name` reports with (starts the server)."""
        self.start()
        return {"KATIB_OBSERVATIONS_ADDRESS": f"127.0.0.1:{self._server.port}",
                "KATIB_COLLECTOR_TOKEN": self._key.trial_token(trial_name), "KATIB_CA_PEM": self._ca}

    @property
    def address(self) -> str | None:
        return None if self._server is None else f"127.0.0.1:{self._server.port}"

    def start(self) -> None:
        from katib.webhook import observations
        from katib.webhook.server import WebhookServer, certificates

        with self._lock:
            if self._server is not None:
                return
            certs = certificates(self.directory, ["127.0.0.1", "localhost"])
            self._key = observations.CollectorKey.load_or_create(self.directory / "collector.key")
            self._ca = (certs.ca_bundle() or b"").decode()
            server = WebhookServer({}, api=observations.handlers(self.store, self._key), host="127.0.0.1",
                                   port=0, certs=certs)
            server.start()
            self._server = server

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None
