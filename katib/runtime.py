"""Wiring of the fake-backend control plane: DB → backend (durable) → admission → manager →
local kubelet. Used by `katib.py --fake` and by the tests' World."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Callable

from katib.errors import AlreadyExists, NotFound

logger = logging.getLogger(__name__)

KATIB_NAMESPACE = "kubeflow"
NOT_PERSISTED = {"Event"}  # events are bounded and kept in memory only


def configmap_lookup(get_backend: Callable[[], object]) -> Callable[[str, str], dict | None]:
    """ConfigMap reader for template lookups: the backend's ConfigMaps."""
    def lookup(namespace: str, name: str) -> dict | None:
        backend = get_backend()
        if backend is None:
            return None
        try:
            return backend.get("ConfigMap", namespace, name)
        except NotFound:
            return None
    return lookup


def experiment_admission(config, get_configmap):
    """The fake API's admission: Experiments are defaulted and validated as by the webhooks."""
    from katib.api.validation import admit

    def admission(op: str, new: dict, old: dict | None) -> dict:
        if new.get("kind") != "Experiment":
            return new
        return admit(op, new, old, config=config, get_configmap=get_configmap, namespace_labels=None)
    return admission


def install_defaults(backend, *, namespace: str = KATIB_NAMESPACE) -> None:
    """Create what Katib's manifests install: katib-config and the trial-template ConfigMaps."""
    from katib.config import default_configmaps

    for cm in default_configmaps(namespace=namespace):
        try:
            backend.create(cm)
        except AlreadyExists:
            pass


def trial_environment() -> dict[str, str]:
    """Trial processes inherit our environment, with this Python's bin directory first on PATH,
    so `python3` in a trial template is the interpreter (and virtualenv) katib runs in."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


class SelectivePersistence:
    """Persist every kind except those in `skip` (events live in memory).

    Writes inside a transaction are collected and written when it ends (before the backend
    publishes its events): nothing for an event-only write, a single autocommitted statement
    for the common one-object write, one database transaction for several."""

    def __init__(self, table, skip=NOT_PERSISTED):
        self.table = table
        self.skip = set(skip)
        self._local = threading.local()

    def load_all(self):
        return [o for o in self.table.load_all() if o.get("kind") not in self.skip]

    def put(self, obj):
        if obj.get("kind") not in self.skip:
            self._write(self.table.put, obj)

    def remove(self, kind, namespace, name, *, resource_version):
        if kind not in self.skip:
            self._write(self.table.remove, kind, namespace, name, resource_version=resource_version)

    def max_resource_version(self):
        return self.table.max_resource_version()

    def _write(self, fn, *args, **kwargs) -> None:
        pending = getattr(self._local, "pending", None)
        if pending is None:
            fn(*args, **kwargs)
        else:
            pending.append((fn, args, kwargs))

    @contextlib.contextmanager
    def transaction(self):
        if getattr(self._local, "pending", None) is not None:  # nested: the outer one writes
            yield
            return
        self._local.pending = pending = []
        try:
            yield
        finally:
            self._local.pending = None
        if len(pending) == 1:
            fn, args, kwargs = pending[0]
            fn(*args, **kwargs)
        elif pending:
            with self.table.transaction():
                for fn, args, kwargs in pending:
                    fn(*args, **kwargs)


class FakeControlPlane:
    """Everything `katib.py --fake` runs: durable fake API, controllers, local kubelet."""

    def __init__(self, *, db_url: str | None, work_dir: Path, status_interval: float = 0.2,
                 seed: int | None = None, clock=None, max_parallel: int | None = None):
        from katib.backends.fake import FakeBackend
        from katib.backends.kubelet import LocalKubelet
        from katib.backends.local_runner import LocalRunner
        from katib.clock import Clock
        from katib.config import KatibConfig
        from katib.controllers.context import Context
        from katib.controllers.manager import Manager
        from katib.db import ObjectTable, connect

        self.clock = clock or Clock()
        self.config = KatibConfig.load(None)
        self.db = connect(db_url)
        self.backend = None
        get_configmap = configmap_lookup(lambda: self.backend)

        admission = experiment_admission(self.config, get_configmap)
        persistence = None if db_url == ":memory:" else SelectivePersistence(ObjectTable(self.db))
        self.backend = FakeBackend(clock=self.clock, admit=admission, persistence=persistence)
        install_defaults(self.backend)
        self.ctx = Context(backend=self.backend, db=self.db, clock=self.clock, config=self.config,
                           get_configmap=get_configmap, status_interval=status_interval, seed=seed)
        self.manager = Manager(self.ctx)
        self.runner = LocalRunner(Path(work_dir) / "jobs", clock=self.clock, base_env=trial_environment())
        self.kubelet = LocalKubelet(self.backend, self.db, self.runner, clock=self.clock,
                                    working_dir=str(Path.cwd()), max_running=max_parallel,
                                    on_fatal=self.fail)
        self.failure: str | None = None      # why a worker thread could not go on (first one)
        self.failed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fail(self, message: str) -> None:
        """A worker thread cannot go on (full disk, read-only database...): keep the first
        reason, one line naming what failed and where; `run` stops with it (exit 2)."""
        if self.failure is None:
            self.failure = message
        self.failed.set()

    def start(self) -> None:
        self.kubelet.recover()
        self.manager.sync()
        self.kubelet.start()
        self._thread = threading.Thread(target=self.manager.run, args=(self._stop,),
                                        kwargs={"poll": 0.1}, name="manager", daemon=True)
        self._thread.start()

    def stop(self, *, kill_jobs: bool = False) -> None:
        self._stop.set()
        self.manager.queue.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.kubelet.close(kill=kill_jobs)
        self.manager.close()
        try:
            self.db.close()
        except Exception:
            logger.debug("db close failed", exc_info=True)
