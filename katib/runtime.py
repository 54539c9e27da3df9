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

from katib import failpoints
from katib.errors import AlreadyExists, NotFound

logger = logging.getLogger(__name__)

KATIB_NAMESPACE = "kubeflow"
NOT_PERSISTED = {"Event"}  # events are bounded and kept in memory only


def get_configmap_from_backend(get_backend: Callable[[], object]) -> Callable[[str, str], dict | None]:
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


def one_line(err: BaseException) -> str:
    """An exception as one line: its message (first line) or, without one, its type."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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
                for i, (fn, args, kwargs) in enumerate(pending):
                    if i:  # crash tests: SIGKILL between two statements of one transaction
                        failpoints.hit("persist-mid-transaction")
                    fn(*args, **kwargs)


class FakeControlPlane:
    """Everything `katib.py --fake` runs: durable fake API, controllers, local kubelet.

    It first takes control of the database (katib.db.control): a second process on the same
    database gets DatabaseLocked before it has written anything."""

    read_only = False

    def __init__(self, *, db_url: str | None, work_dir: Path, status_interval: float = 0.2,
                 seed: int | None = None, clock=None, max_parallel: int | None = None,
                 backend_options: dict | None = None, controller_view: Callable | None = None,
                 informer_threads: bool = False, api_only: bool = False):
        """`backend_options`: extra FakeBackend arguments (watch_history, served);
        `api_only`: no in-process Experiment admission, only the webhooks registered in the
        fake (a cluster before Katib is installed has no Katib admission), and jobs run as pods
        (fake_node) instead of directly as processes;
        `controller_view(backend)`: what the controllers talk to instead of the backend itself
        (tests: fake_flaky.FlakyWatches, late and cut watches); `informer_threads`: watch on
        one thread per kind as against a cluster, instead of on the controllers' thread woken
        by the fake's writes (Manager)."""
        from katib.clock import Clock
        from katib.config import KatibConfig
        from katib.db import acquire_control, connect

        self.failure: str | None = None      # why a worker thread could not go on (first one)
        self.failed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.clock = clock or Clock()
        self.config = KatibConfig.load(None)
        self.db = connect(db_url)
        try:
            self.lease = acquire_control(self.db, on_lost=self.fail)
        except BaseException:
            self.db.close()
            raise
        try:
            self._assemble(db_url=db_url, work_dir=work_dir, status_interval=status_interval,
                           seed=seed, max_parallel=max_parallel, backend_options=backend_options or {},
                           controller_view=controller_view, informer_threads=informer_threads,
                           api_only=api_only)
        except BaseException:  # a corrupt row, a full disk...: let the next process in
            self._release()
            raise

    def _assemble(self, *, db_url, work_dir, status_interval, seed, max_parallel, backend_options,
                  controller_view, informer_threads, api_only) -> None:
        from katib.backends.fake import FakeBackend
        from katib.backends.kubelet import LocalKubelet
        from katib.backends.local_runner import LocalRunner
        from katib.backends.local_observations import LocalObservationAPI
        from katib.controllers.context import Context
        from katib.controllers.manager import Manager
        from katib.controllers.suggestion import SuggestionWorkers
        from katib.db import ObjectTable, ObservationStore

        self.backend = None
        get_configmap = get_configmap_from_backend(lambda: self.backend)
        admission = experiment_admission(self.config, get_configmap)
        persistence = None if db_url == ":memory:" else SelectivePersistence(ObjectTable(self.db))
        self.backend = FakeBackend(clock=self.clock, admit=None if api_only else admission, persistence=persistence,
                                   **{"webhooks": True, **backend_options})
        install_defaults(self.backend)
        self.observations = ObservationStore(self.db)
        view = self.backend if controller_view is None else controller_view(self.backend)
        self.ctx = Context(backend=view, db=self.db, clock=self.clock, config=self.config,
                           get_configmap=get_configmap, status_interval=status_interval, seed=seed,
                           observations=self.observations)
        self.ctx.suggestion_executor = SuggestionWorkers()  # algorithm calls off the reconcile thread
        self.manager = Manager(self.ctx, on_fatal=self.fail, threaded=informer_threads,
                               wake_on_change=not informer_threads)
        if api_only:  # a stand-in cluster: Jobs → Pods (admitted by the webhooks) → containers
            from katib.backends.fake_node import FakeNode
            self.kubelet = FakeNode(self.backend, Path(work_dir), clock=self.clock, working_dir=str(Path.cwd()),
                                    base_env=trial_environment(), on_fatal=self.fail)
            self.runner = self.kubelet.runner
            self.observation_api = None   # the cluster's Katib serves it (katib.py serve --webhook-listen)
            return
        self.runner = LocalRunner(Path(work_dir) / "jobs", clock=self.clock, base_env=trial_environment())
        self.observation_api = LocalObservationAPI(Path(work_dir) / "observation-api", self.observations)
        self.kubelet = LocalKubelet(self.backend, self.runner, observations=self.observations,
                                    clock=self.clock, working_dir=str(Path.cwd()),
                                    max_running=max_parallel, on_fatal=self.fail,
                                    observation_env=self.observation_api.env)

    def fail(self, message: str) -> None:
        """A worker thread cannot go on (full disk, read-only database...): keep the first
        reason, one line naming what failed and where; `run` stops with it (exit 2)."""
        if self.failure is None:
            self.failure = message
        self.failed.set()

    def start(self) -> None:
        self.kubelet.recover()
        self.manager.start()  # informers list and watch; the manager thread waits for their lists
        self.kubelet.start()
        self._thread = threading.Thread(target=self._run_manager, name="manager", daemon=True)
        self._thread.start()

    def _run_manager(self) -> None:
        """The controllers' thread: whatever ends it early stops the run with one line instead
        of leaving the main loop waiting for progress that can no longer come."""
        try:
            self.manager.run(self._stop, poll=0.1)
        except BaseException as err:  # noqa: BLE001 - the thread must not die silently
            logger.exception("the controllers stopped")
            self.fail(f"the controllers stopped: {one_line(err)}")

    def stop(self, *, kill_jobs: bool = False) -> None:
        self._stop.set()
        self.manager.queue.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.kubelet.close(kill=kill_jobs)
        if self.observation_api is not None:
            self.observation_api.stop()
        self.manager.close()
        self._release()

    def _release(self) -> None:
        try:
            self.db.close()
        except Exception:
            logger.debug("db close failed", exc_info=True)
        if self.lease is not None:  # after the last write: the next holder sees all of it
            self.lease.release()


# -- read-only access to a database another process controls --------------------------------
class StoredObjects:
    """A read-only backend over the stored objects (get and list, as FakeBackend answers them),
    for showing results without taking control of the database."""

    def __init__(self, objects: list[dict]):
        self._objects = objects   # ObjectTable.load_all's creation order, as the fake backend lists

    def get(self, kind: str, namespace: str, name: str, *, readonly: bool = False) -> dict:
        from katib.controllers.context import json_copy

        for obj in self._objects:
            meta = obj["metadata"]
            if obj["kind"] == kind and meta.get("namespace", "") == namespace and meta["name"] == name:
                return obj if readonly else json_copy(obj)
        raise NotFound(f'{kind} "{name}" not found')

    def list(self, kind: str, namespace: str | None = None, *, labels=None) -> list[dict]:
        from katib.backends.base import matches_labels
        from katib.controllers.context import json_copy

        return [json_copy(o) for o in self._objects if o["kind"] == kind
                and (not namespace or o["metadata"].get("namespace", "") == namespace)
                and matches_labels(o, labels)]


class JobPaths:
    """Where the local runner keeps a job's output (LocalRunner.output_path, nothing created)."""

    def __init__(self, root: Path):
        self.root = Path(root).absolute()

    def output_path(self, key: str) -> Path:
        from katib.backends.local_wrapper import dir_name
        return self.root / dir_name(key) / "output.log"


class ReadOnlyPlane:
    """What `run` shows when another process controls the database and every experiment of
    FILE is stored there, with the same spec, and finished: backend (StoredObjects), runner
    (JobPaths), db; start/stop touch nothing."""

    read_only = True

    def __init__(self, *, db, backend: StoredObjects, work_dir: Path, locked: Exception):
        self.db = db
        self.backend = backend
        self.runner = JobPaths(Path(work_dir) / "jobs")
        self.locked = locked          # the DatabaseLocked that made this view read-only
        self.failure: str | None = None
        self.failed = threading.Event()

    def start(self) -> None:
        pass

    def stop(self, *, kill_jobs: bool = False) -> None:
        self.db.close()


def open_read_only(*, db_url: str | None, work_dir: Path, experiments: list[dict],
                   locked: Exception) -> ReadOnlyPlane | None:
    """A ReadOnlyPlane when every experiment of FILE is stored with the same (defaulted) spec
    and finished; None when `run` would have to take control (then: exit 2 with `locked`)."""
    from katib.config import KatibConfig
    from katib.db import ObjectTable, connect

    db = connect(db_url)
    try:
        backend = StoredObjects(ObjectTable(db).load_all())
        admission = experiment_admission(KatibConfig.load(None), get_configmap_from_backend(lambda: backend))
        if all(_finished_as_applied(backend, admission, exp) for exp in experiments):
            return ReadOnlyPlane(db=db, backend=backend, work_dir=work_dir, locked=locked)
    except BaseException:
        db.close()
        raise
    db.close()
    return None


def _finished_as_applied(backend: StoredObjects, admission, exp: dict) -> bool:
    from katib.controllers.context import json_copy
    from katib.controllers.trial import is_completed
    from katib.errors import Invalid

    meta = exp["metadata"]
    try:
        stored = backend.get("Experiment", meta["namespace"], meta["name"], readonly=True)
        wanted = admission("CREATE", json_copy(exp), None)
    except (NotFound, Invalid):
        return False
    if wanted.get("spec") != stored.get("spec") or not is_completed(
            (stored.get("status") or {}).get("conditions") or []):
        return False
    status = stored["status"]
    trials = backend.list("Trial", meta["namespace"], labels={"experiment": meta["name"]})
    return not status.get("trialsRunning") and not status.get("trialsPending") and all(
        is_completed((t.get("status") or {}).get("conditions") or []) for t in trials)
