"""What every reconcile gets: the backend, the DB, the observation store, the clock, the config
and the shared index."""
from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from katib.backends.base import Backend
from katib.clock import Clock
from katib.controllers.index import TrialIndex
from katib.controllers.queue import WorkQueue

logger = logging.getLogger("katib.controllers")


def json_copy(value):
    """A deep copy of JSON-shaped data (API objects), several times faster than copy.deepcopy."""
    return json.loads(json.dumps(value))


@dataclass
class Context:
    backend: Backend
    db: Any                                   # katib.db database handle
    clock: Clock
    config: Any                               # katib.config.KatibConfig
    get_configmap: Callable[[str, str], dict | None]
    index: TrialIndex = field(default_factory=TrialIndex)
    queue: WorkQueue | None = None
    # Non-terminal experiment status writes (trial lists, counters) happen at most this often
    # per experiment; terminal transitions are written at once. 0 = write on every change.
    status_interval: float = 0.0
    last_status_write: dict = field(default_factory=dict)
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)
    # The observation-store protocol (katib.db.ObservationStore: report/replace/get/delete/
    # objective_value); the controllers never reach the DB's functions directly.
    observations: Any = None

    def __post_init__(self):
        if self.observations is None and self.db is not None:  # callers that pass only the DB
            from katib.db import ObservationStore
            self.observations = ObservationStore(self.db)
        if self.seed is not None:
            self.rng.seed(self.seed)
        self._own = threading.local()

    @contextlib.contextmanager
    def own_write(self, kind: str, namespace: str, name: str):
        """Mark a write of this thread whose watch events need not wake the writer's own
        controller again (its reconcile already knows the result)."""
        self._own.key = (kind, namespace, name)
        try:
            yield
        finally:
            self._own.key = None

    def is_own_write(self, kind: str, namespace: str, name: str) -> bool:
        return getattr(self._own, "key", None) == (kind, namespace, name)

    def now(self) -> str:
        return self.clock.stamp()

    def event(self, obj: dict, type: str, reason: str, message: str) -> None:
        try:
            self.backend.record_event(obj, type=type, reason=reason, message=message)
        except Exception:  # events are best effort, as in Kubernetes
            logger.debug("could not record event %s", reason, exc_info=True)
