"""The manager: informers → work queue → reconcilers, with requeue and back-off.

Each controller declares what it watches (informer.For/Owns, as controller-runtime's builder);
the manager runs one informer per kind (list, then watch; kinds the backend does not serve
are skipped) and turns their changes into keys. One thread processes the queue (reconciles
never run concurrently), and only after every informer has listed once: a controller must not
act on a partial view (it would create trials that exist). The trial index is fed from the
Trial informer; its changes are applied on the processing thread, before the next reconcile.

A StorageError (full or read-only disk) is not retried: the key is dropped and `on_fatal`
gets one line, so that the process stops instead of retrying for ever (without `on_fatal`
the error propagates to the caller)."""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

from katib.api.jobs import JOB_KINDS
from katib.backends.base import DELETED
from katib.controllers.context import Context
from katib.controllers.experiment import CONTROLLER as EXPERIMENT, reconcile_experiment
from katib.controllers.index import FAILED, KILLED, PENDING, SUCCEEDED, classify
from katib.controllers.informer import (
    Change, For, InformerSet, Owns, Watch, all_of, generation_or_status_changed, not_deleted)
from katib.controllers.queue import WorkQueue
from katib.controllers.suggestion import reconcile_suggestion
from katib.controllers.trial import CONTROLLER as TRIAL, reconcile_trial
from katib.errors import Conflict, NotFound, PermanentError, StorageError, TemporaryError, storage_error

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Controller:
    name: str
    reconcile: Callable[[Context, str, str], float | None]
    watches: tuple[Watch, ...]

    @property
    def kind(self) -> str:
        """The kind it reconciles: that of its For watch (the first)."""
        return self.watches[0].kind


def trial_finished(change) -> bool:
    """A Trial that has just become Succeeded, Failed or Killed (or went away)."""
    if change.type == DELETED:
        return True
    before = classify(change.old) if change.old is not None else PENDING
    after = classify(change.object)
    return before != after and after in (SUCCEEDED, FAILED, KILLED)


def controllers(ctx: Context) -> tuple[Controller, ...]:
    """What each controller reconciles and which changes wake it."""
    def not_own(controller: str):
        return lambda change: not ctx.is_own_change(controller, change)

    def awaited(change) -> bool:
        """The trial's experiment has a short reply waiting (Suggestions share its key)."""
        waits = ctx.suggestion_waits
        return bool(waits) and any(key in waits for key in OWNER_KEYS(change.object))

    return (
        Controller(EXPERIMENT, reconcile_experiment, (
            For("Experiment"), Owns("Suggestion", "Experiment", predicate=not_own(EXPERIMENT)),
            Owns("Trial", "Experiment"))),
        # A trial that finishes may let a short reply go on (hyperband's next rung); without a
        # short reply waiting, the experiment's new requests are what wake the Suggestion.
        Controller("suggestion", reconcile_suggestion, (
            For("Suggestion"), Owns("Trial", "Experiment", predicate=all_of(awaited, trial_finished)))),
        Controller(TRIAL, reconcile_trial, (
            For("Trial", predicate=all_of(not_deleted, not_own(TRIAL))),
            *(Owns(kind, "Trial", predicate=all_of(not_own(TRIAL), generation_or_status_changed))
              for kind in JOB_KINDS))),
    )


OWNER_KEYS = Owns("Trial", "Experiment").map

RECONCILERS = {"experiment": reconcile_experiment, "suggestion": reconcile_suggestion, "trial": reconcile_trial}


class Manager:
    """How the informers deliver:
      * `threaded=True`: on their own threads (`start`, then `run`): a cluster's watches;
      * `threaded=False`: on the processing thread, before each reconcile (`run_until_idle`,
        `run`) — deterministic for tests on a fake clock; with `wake_on_change`, a backend
        that calls subscribers as it writes (the in-process fake) wakes `run` when any
        watched kind changes, so that the fake needs no thread per kind (measured: ~20%
        less control-plane overhead per trial on two cores)."""

    def __init__(self, ctx: Context, *, on_fatal: Callable[[str], None] | None = None, threaded: bool = True,
                 wake_on_change: bool = False):
        self.ctx = ctx
        self.on_fatal = on_fatal
        self.threaded = threaded
        if ctx.queue is None:
            ctx.queue = WorkQueue(ctx.clock)
        self.queue = ctx.queue
        self.controllers = controllers(ctx)
        self.informers = InformerSet(ctx.backend)
        self._index_changes: deque[Change] = deque()
        self._stop = threading.Event()
        self._started = False
        trials = self.informers.informer("Trial")
        if trials is not None:
            trials.add_handler(self._index_changes.append)  # first: the index is current for the keys below
        for ctrl in self.controllers:
            for watch in ctrl.watches:
                informer = self.informers.informer(watch.kind)
                if informer is not None:
                    informer.add_handler(self._enqueuer(ctrl.name, watch), predicate=watch.predicate)
        self._unsubscribe = None
        if wake_on_change and not threaded:
            wake = self.queue.wake
            self._unsubscribe = ctx.backend.subscribe(lambda event: wake(), kinds=tuple(self.informers.informers),
                                                      readonly=True)

    def _enqueuer(self, name: str, watch: Watch) -> Callable[[Change], None]:
        add, keys = self.queue.add, watch.map

        def enqueue(change: Change) -> None:
            for ns, obj_name in keys(change.object):
                add((name, ns, obj_name))
        return enqueue

    # -- informers ------------------------------------------------------------------
    def start(self) -> None:
        """Start the informers' threads (threaded mode); `run` waits for their first lists."""
        if self.threaded and not self._started:
            self._started = True
            self.informers.start(self._stop)

    def wait_for_sync(self, stop: threading.Event | None = None) -> bool:
        return self.informers.wait_for_sync(stop or self._stop)

    def _apply_index_changes(self) -> None:
        changes, observe = self._index_changes, self.ctx.index.observe
        while changes:
            change = changes.popleft()
            observe(change.object, deleted=change.type == DELETED)

    def sync(self) -> None:
        """Reconcile everything once more (as after a restart): every object the informers
        hold, of every kind a controller is For."""
        if not self.threaded:
            self.informers.poll()
        self._apply_index_changes()
        for ctrl in self.controllers:
            informer = self.informers.informers.get(ctrl.kind)
            for obj in informer.list() if informer is not None else ():
                meta = obj["metadata"]
                self.queue.add((ctrl.name, meta.get("namespace") or "", meta["name"]))

    # -- processing -----------------------------------------------------------------
    def process(self, key: tuple) -> None:
        ctrl, ns, name = key
        self._apply_index_changes()
        try:
            again = RECONCILERS[ctrl](self.ctx, ns, name)
        except Conflict:
            logger.debug("[%s/%s] %s conflict, requeued", ns, name, ctrl)
            self.queue.add_after(key, 0.0)
        except NotFound as err:
            logger.debug("[%s/%s] %s: %s", ns, name, ctrl, err)
            self.queue.add_rate_limited(key)
        except TemporaryError as err:
            logger.info("[%s/%s] %s: %s (retry in %.1fs)", ns, name, ctrl, err, err.delay)
            self.queue.add_after(key, err.delay)
        except PermanentError as err:
            logger.error("[%s/%s] %s: %s", ns, name, ctrl, err)
        except StorageError as err:
            self._fatal(key, err)
        except OSError as err:
            fatal = storage_error(err, what=f"[{ns}/{name}] {ctrl}: cannot write",
                                  where=str(err.filename or "to disk"))
            if fatal is None:
                self._retry_later(key)
            else:
                self._fatal(key, fatal)
        except Exception:
            self._retry_later(key)
        else:
            self.queue.forget(key)
            if again is not None:
                self.queue.add_after(key, again)
        finally:
            self.queue.done(key)

    def _retry_later(self, key: tuple) -> None:
        ctrl, ns, name = key
        delay = self.queue.add_rate_limited(key)
        logger.exception("[%s/%s] %s reconcile failed (retry in %.2fs)", ns, name, ctrl, delay)

    def _fatal(self, key: tuple, err: StorageError) -> None:
        """Storage refuses writes: retrying would only wait for ever. The key is not requeued
        (what it was about to write was rolled back; a rerun after freeing space redoes it)."""
        ctrl, ns, name = key
        logger.error("[%s/%s] %s: %s (not retried)", ns, name, ctrl, err)
        if self.on_fatal is None:
            raise err
        self.on_fatal(str(err))

    def run_until_idle(self, max_steps: int = 1_000_000) -> int:
        """Process every ready key (tests: a fake clock never moves by itself)."""
        steps = 0
        while steps < max_steps:
            if not self.threaded:
                self.informers.poll()
            key = self.queue.get(timeout=0)
            if key is None:
                return steps
            self.process(key)
            steps += 1
        raise RuntimeError(f"work queue not idle after {max_steps} steps")

    def run(self, stop: threading.Event, *, poll: float = 0.5) -> None:
        """Process keys until `stop`, once every informer has listed (starting them if needed)."""
        self.start()
        if self.threaded and not self.informers.wait_for_sync(stop):
            return
        while not stop.is_set():
            if not self.threaded:
                self.informers.poll()
            key = self.queue.get(timeout=poll)
            if key is not None:
                self.process(key)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        self.queue.wake()
        self.informers.join()
