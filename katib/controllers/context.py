"""What every reconcile gets: the backend, the DB, the observation store, the clock, the config
and the shared index."""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from katib.backends.base import Backend
from katib.clock import Clock
from katib.controllers.index import TrialIndex
from katib.controllers.queue import WorkQueue

logger = logging.getLogger("katib.controllers")
_DELETING = "<deleting>"


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
    # Where algorithm calls run (katib.controllers.suggestion.SuggestionWorkers); None: inline on
    # the reconciling thread (deterministic tests). The calls in flight and the short replies
    # waiting for a trial to finish, per Suggestion.
    suggestion_executor: Any = None
    suggestion_calls: dict = field(default_factory=dict)
    suggestion_waits: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.observations is None and self.db is not None:  # callers that pass only the DB
            from katib.db import ObservationStore
            self.observations = ObservationStore(self.db)
        if self.seed is not None:
            self.rng.seed(self.seed)
        # (controller, kind, namespace, name) -> resourceVersion the controller last wrote, or
        # _DELETING: the change its own watch will bring back, which need not wake it again.
        self._written: dict[tuple[str, str, str, str], str] = {}

    def wrote(self, controller: str, obj: dict) -> dict:
        """Remember that `controller` stored this version of `obj` (what create/update return):
        the watch event carrying exactly this version is its own write. Returns `obj`."""
        meta = obj["metadata"]
        self._written[(controller, obj["kind"], meta.get("namespace") or "", meta["name"])] = \
            str(meta.get("resourceVersion") or "")
        return obj

    def deleting(self, controller: str, kind: str, namespace: str, name: str) -> None:
        """Remember that `controller` deletes this object: the deletion's own changes (the
        mark, finalizers going, the final DELETED) need not wake it."""
        self._written[(controller, kind, namespace, name)] = _DELETING

    def is_own_change(self, controller: str, change) -> bool:
        """Whether a watched change (informer.Change) is one `controller` made itself: the
        version it wrote, or a step of a deletion it started. A later version by anyone else
        is not, even for the same object."""
        obj = change.object
        meta = obj["metadata"]
        key = (controller, obj.get("kind", ""), meta.get("namespace") or "", meta.get("name", ""))
        mark = self._written.get(key)
        if change.type == "DELETED":
            self._written.pop(key, None)
            return mark == _DELETING
        if mark is None:
            return False
        if mark == _DELETING:
            return bool(meta.get("deletionTimestamp"))
        if mark == str(meta.get("resourceVersion") or ""):
            self._written.pop(key, None)
            return True
        return False

    def now(self) -> str:
        return self.clock.stamp()

    def event(self, obj: dict, type: str, reason: str, message: str) -> None:
        try:
            self.backend.record_event(obj, type=type, reason=reason, message=message)
        except Exception:  # events are best effort, as in Kubernetes
            logger.debug("could not record event %s", reason, exc_info=True)
