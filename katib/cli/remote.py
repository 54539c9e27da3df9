"""`katib.py --fake run FILE --db DB` while a `katib.py --fake serve` holds DB: through that
server's Kubernetes API instead of being refused.

The serve writes a kubeconfig (default DB.d/kubeconfig, or `run --kubeconfig PATH` names the
one it was given); `run` reads it, talks to the API with the cluster backend
(katib.backends.kube, on the `kubernetes` client), applies the experiments as a local run does
(create, or update the stored one) and follows them by polling until they end, then prints the
same table, JSON and exit code. The trials run in the server's process: Ctrl-C stops only the
following (exit 130), the experiments keep running there. When there is no kubeconfig, or the
API does not answer (the holder is a `run`, or a serve that has gone), `run` is refused as
before, naming the holder."""
from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

FOLLOW_STOPPED = ("stopped following: the experiment keeps running in the serve that holds the database; "
                  "`katib.py --fake get experiments --db {db}` shows it, running this command again follows it")


def kubeconfig_path(args, work_dir: Path) -> Path:
    given = getattr(args, "kubeconfig", None)
    return Path(given).expanduser() if given else Path(work_dir) / "kubeconfig"


class ServedJobs:
    """Where the serve's local runner keeps a job's output (when it shares our work directory);
    its processes are not ours to time: no running ages."""

    def __init__(self, root: Path):
        from katib.runtime import JobPaths
        self._paths = JobPaths(root)

    def output_path(self, key: str) -> Path:
        return self._paths.output_path(key)

    def running(self) -> dict[str, float]:
        return {}


class ApiPlane:
    """What `run` drives when a serve holds the database: its API as the backend; start/stop
    touch nothing in the server."""

    read_only = False
    remote = True

    def __init__(self, backend, *, url: str, db: str, work_dir: Path):
        from katib.clock import Clock

        self.backend = backend
        self.url = url
        self.db = SimpleNamespace(url=f"{db}, through the API at {url} of the serve that holds it")
        self.db_arg = db
        self.runner = ServedJobs(Path(work_dir) / "jobs")
        self.clock = Clock()
        self.failure: str | None = None
        self.failed = threading.Event()

    def start(self) -> None:
        pass

    def stop(self, *, kill_jobs: bool = False) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()


def open_api_plane(args, *, db: str, work_dir: Path) -> ApiPlane | None:
    """An ApiPlane on the serve's API, or None when there is no kubeconfig or no API answering."""
    path = kubeconfig_path(args, work_dir)
    if not path.is_file():
        return None
    from katib.backends.kube import KubeBackend, load_configuration
    from katib.errors import KatibError

    backend = None
    try:
        backend = KubeBackend(load_configuration(str(path)), event_source="katib-run")
        backend.list("Experiment", "default")   # does it answer? (a gone serve: connection refused)
    except KatibError:
        if backend is not None:
            backend.close()
        return None
    return ApiPlane(backend, url=backend.host, db=db, work_dir=work_dir)
