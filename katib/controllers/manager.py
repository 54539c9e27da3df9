"""The manager: watch events → work queue → reconcilers, with requeue and back-off.

One thread processes the queue (reconciles never run concurrently), other threads (the
local kubelet, a future HTTP API) only write objects, whose events enqueue keys here.
A StorageError (full or read-only disk) is not retried: the key is dropped and `on_fatal`
gets one line, so that the process stops instead of retrying for ever (without `on_fatal`
the error propagates to the caller)."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from katib.api.jobs import JOB_KINDS
from katib.backends.base import DELETED, WatchEvent
from katib.controllers.context import Context
from katib.controllers.experiment import reconcile_experiment
from katib.controllers.queue import WorkQueue
from katib.controllers.suggestion import reconcile_suggestion
from katib.controllers.trial import reconcile_trial
from katib.errors import Conflict, NotFound, PermanentError, StorageError, TemporaryError, storage_error

logger = logging.getLogger(__name__)

RECONCILERS = {
    "experiment": reconcile_experiment,
    "suggestion": reconcile_suggestion,
    "trial": reconcile_trial,
}


class Manager:
    def __init__(self, ctx: Context, *, on_fatal: Callable[[str], None] | None = None):
        self.ctx = ctx
        self.on_fatal = on_fatal
        if ctx.queue is None:
            ctx.queue = WorkQueue(ctx.clock)
        self.queue = ctx.queue
        self._unsubscribe = ctx.backend.subscribe(
            self.on_event, kinds=("Experiment", "Suggestion", "Trial") + JOB_KINDS, readonly=True)

    # -- events -> keys -------------------------------------------------------------
    def on_event(self, event: WatchEvent) -> None:
        obj = event.object
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        if kind == "Experiment":
            self.queue.add(("experiment", ns, name))
        elif kind == "Suggestion":
            self.queue.add(("suggestion", ns, name))
            self.queue.add(("experiment", ns, name))
        elif kind == "Trial":
            exp_key = self.ctx.index.observe(obj, deleted=event.type == DELETED)
            if event.type != DELETED and not self.ctx.is_own_write("Trial", ns, name):
                self.queue.add(("trial", ns, name))
            if exp_key:
                self.queue.add(("experiment",) + exp_key)
        elif kind in JOB_KINDS and not self.ctx.is_own_write(kind, ns, name):
            for ref in meta.get("ownerReferences") or ():
                if ref.get("kind") == "Trial" and ref.get("controller"):
                    self.queue.add(("trial", ns, ref.get("name", "")))

    def sync(self) -> None:
        """Initial list: seed the index and reconcile everything once (after a restart too)."""
        backend = self.ctx.backend
        for trial in backend.list("Trial"):
            self.ctx.index.observe(trial)
        for kind, ctrl in (("Experiment", "experiment"), ("Suggestion", "suggestion"), ("Trial", "trial")):
            for obj in backend.list(kind):
                self.queue.add((ctrl, obj["metadata"]["namespace"], obj["metadata"]["name"]))

    # -- processing -----------------------------------------------------------------
    def process(self, key: tuple) -> None:
        ctrl, ns, name = key
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
            key = self.queue.get(timeout=0)
            if key is None:
                return steps
            self.process(key)
            steps += 1
        raise RuntimeError(f"work queue not idle after {max_steps} steps")

    def run(self, stop: threading.Event, *, poll: float = 0.5) -> None:
        while not stop.is_set():
            key = self.queue.get(timeout=poll)
            if key is not None:
                self.process(key)

    def close(self) -> None:
        self._unsubscribe()
        self.queue.wake()
