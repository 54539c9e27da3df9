"""Suggestion controller: spec.requests → the algorithm → status.suggestions.

Mirrors Katib v1alpha3 suggestion_controller (controllers.md §2) with the algorithm running
in this process. Assignments, their future trial names and the algorithm's state are recorded
in one status write, before any Trial exists (a crash in between repeats nothing).

The algorithm runs off the reconcile path (not upstream: there it was a gRPC call with a 60 s
deadline, made inline): a reconcile starts the call on `ctx.suggestion_executor` and returns;
the worker keeps the reply and enqueues the Suggestion again, and the next reconcile (on the
manager thread, like every write) records it, unless what the call was asked changed meanwhile
(the Suggestion was rewritten, re-created or deleted, the experiment's algorithm or parameters
changed): then the reply is dropped and the call made again. One call per Suggestion at a time;
none has a deadline, a slow one is logged and posted as an event. Without an executor the call
runs inline (the test world: deterministic on a fake clock), and so do the calls of the quick
algorithms (random, grid, sobol: milliseconds at most), for which the hand-over to a worker and
the two reconciles it takes cost more than the call.

An algorithm may answer with fewer assignments than asked (hyperband: a rung waits for its
trials); they are recorded and the rest is asked for again once a trial of the experiment has
moved on (checked at most every WAIT_POLL seconds, backing off, without calling the algorithm
in between). An `exhausted` reply ends the Suggestion (SuggestionExhausted), and the experiment
then ends with ExperimentSuggestionEndReached once its last trials are done."""
from __future__ import annotations

import json
import logging
import os
import queue as queues
import threading
from dataclasses import dataclass, field
from typing import Callable

from katib import failpoints
from katib.api import constants as c
from katib.controllers import conditions as cond
from katib.controllers.context import Context, json_copy
from katib.controllers.index import FAILED, KILLED, SUCCEEDED
from katib.errors import NotFound, TemporaryError

logger = logging.getLogger(__name__)

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.String: no vowels, no 0/1/3
STATE_KEY = "algorithmState"                    # our addition to SuggestionStatus (JSON text)
CONTROLLER = "suggestion"                       # the manager's name for this controller (queue keys)
SLOW_CALL = 10.0                                # seconds: a call still running is reported, then at 2x, 4x...
SLOW_REPORT_MAX = 600.0                         # ... and then every 10 minutes
WAIT_POLL = (1.0, 30.0)                         # seconds: first and longest wait between checks of a short reply


# ---------------------------------------------------------------------------------------
# executors


class InlineExecutor:
    """Runs the call at once, on the caller's thread."""

    def submit(self, fn: Callable[[], None]) -> None:
        fn()


class SuggestionWorkers:
    """A few daemon threads running algorithm calls (numpy releases the GIL while it works).
    Daemons: a process that stops does not wait for a model fit whose answer nobody records."""

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers or min(4, os.cpu_count() or 1)
        self._jobs: queues.SimpleQueue = queues.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work, name=f"suggestion-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put(fn)

    def _work(self) -> None:
        while True:
            self._jobs.get()()


_INLINE = InlineExecutor()


def executor_of(ctx: Context, algorithm: str):
    """Where a call of `algorithm` runs: inline without an executor, and for a quick algorithm
    (random, grid, sobol: handing their calls to a worker cost more than the calls)."""
    from katib.algorithms.registry import is_quick

    executor = ctx.suggestion_executor
    return _INLINE if executor is None or ctx.queue is None or is_quick(algorithm) else executor


# ---------------------------------------------------------------------------------------
# calls in flight


@dataclass
class Call:
    inputs: tuple               # what the reply depends on; it is dropped when these changed
    need: int
    algorithm: str
    started: float              # ctx.clock.monotonic()
    report_at: float            # elapsed seconds at which it is reported (again) as slow
    reply: object = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    due: float | None = None    # when the reconcile that reports it is scheduled


@dataclass
class Wait:
    """A short reply was recorded: ask again once the experiment's trials moved on."""
    inputs: tuple
    progress: tuple
    delay: float = WAIT_POLL[0]
    due: float | None = None    # when the next check is scheduled

    def next_check(self, now: float) -> float | None:
        """Seconds until the next check, None when one is scheduled already (the reconciles
        that other changes bring must not start a second chain of checks)."""
        if self.due is not None and now < self.due:
            return None
        delay, self.delay = self.delay, min(self.delay * 2, WAIT_POLL[1])
        self.due = now + delay
        return delay


def calls_of(ctx: Context) -> dict[tuple[str, str], Call]:
    return ctx.suggestion_calls


def waits_of(ctx: Context) -> dict[tuple[str, str], Wait]:
    return ctx.suggestion_waits


def forget(ctx: Context, namespace: str, name: str) -> None:
    """Drop what is kept for a Suggestion; a reply still to come is then ignored."""
    calls_of(ctx).pop((namespace, name), None)
    waits_of(ctx).pop((namespace, name), None)


def reconcile_suggestion(ctx: Context, namespace: str, name: str) -> float | None:
    try:
        sug = ctx.backend.get("Suggestion", namespace, name)
    except NotFound:
        forget(ctx, namespace, name)
        return None
    if sug["metadata"].get("deletionTimestamp"):
        forget(ctx, namespace, name)
        return None
    before = json_copy(sug.get("status") or {})
    status = sug.setdefault("status", {})
    conds = status.setdefault("conditions", [])
    if cond.is_true(conds, "Succeeded"):
        forget(ctx, namespace, name)
        return None
    again = None
    now = ctx.now()
    if not cond.is_true(conds, "Created"):
        status.setdefault("startTime", now)
        cond.set_condition(conds, "Created", "True", c.SUGGESTION_CREATED_REASON, c.SUGGESTION_CREATED_MESSAGE, now)
    else:
        # The algorithm runs in this process: its "deployment" is ready at once.
        cond.set_condition(conds, "DeploymentReady", "True", c.SUGGESTION_DEPLOYMENT_READY_REASON,
                           c.SUGGESTION_DEPLOYMENT_READY_MESSAGE, now)
        try:
            exp = ctx.backend.get("Experiment", namespace, name, readonly=True)
        except NotFound:
            raise TemporaryError(f"experiment {namespace}/{name} of the suggestion is not found", delay=1.0)
        if cond.is_true(conds, "Failed"):
            forget(ctx, namespace, name)  # terminal: the experiment fails with "Suggestion has failed"
        elif cond.is_true(conds, "Running") or validate(ctx, exp, sug):
            again = sync_assignments(ctx, exp, sug)
    if status != before:
        ctx.backend.update_status(sug)
        if status.get("suggestionCount", 0) > before.get("suggestionCount", 0):
            failpoints.hit("assignments-recorded")  # crash tests: before any Trial exists
    return again


def validate(ctx: Context, exp: dict, sug: dict) -> bool:
    """ValidateAlgorithmSettings, once per Suggestion: Running on success, Failed otherwise."""
    from katib.algorithms.registry import can_suggest, validate_algorithm

    conds = sug["status"]["conditions"]
    spec = exp["spec"]
    algo = spec["algorithm"]["algorithmName"]
    problems = [msg for _, msg in validate_algorithm(
        algo, parameters=spec.get("parameters") or [],
        settings=spec["algorithm"].get("algorithmSettings") or [],
        parallel_trial_count=spec.get("parallelTrialCount") or 0,
        nas_config=spec.get("nasConfig"))]
    if not problems and not can_suggest(algo):
        problems.append(f"algorithm {algo} is not implemented yet by this version of katib")
    now = ctx.now()
    if problems:
        cond.set_condition(conds, "Failed", "True", c.SUGGESTION_FAILED_REASON,
                           c.SUGGESTION_FAILED_MESSAGE_PREFIX + "; ".join(problems), now)
        logger.info("[%s/%s] suggestion failed: %s", exp["metadata"]["namespace"],
                    exp["metadata"]["name"], "; ".join(problems))
        return False
    cond.set_condition(conds, "Running", "True", c.SUGGESTION_RUNNING_REASON, c.SUGGESTION_RUNNING_MESSAGE, now)
    return True


def sync_assignments(ctx: Context, exp: dict, sug: dict) -> float | None:
    """Ask the algorithm for `requests - suggestionCount` assignments and record them; returns
    when to look again (None: when something changes).

    status.suggestions keeps only the assignments whose Trial did not exist yet when it was
    written (upstream keeps all of them, which makes every write of a 10,000-trial experiment
    carry 10,000 entries); suggestionCount counts all. Trials carry their own assignments."""
    status = sug["status"]
    ns, name = sug["metadata"]["namespace"], sug["metadata"]["name"]
    key = (ns, name)
    count = status.get("suggestionCount", len(status.get("suggestions") or []))
    need = (sug.get("spec") or {}).get("requests", 0) - count
    calls, waits = calls_of(ctx), waits_of(ctx)
    if need <= 0:
        forget(ctx, ns, name)
        return None
    if ended(exp):  # nothing will consume more; a restart of the experiment wakes us again
        return None
    inputs = call_inputs(exp, sug)
    call = calls.get(key)
    if call is not None and (call.inputs != inputs or call.need > need):
        if not call.finished.is_set():  # one call at a time: this one's reply will be dropped
            call.inputs = None
            return None
        logger.debug("[%s/%s] algorithm reply dropped: the suggestion changed meanwhile", ns, name)
        call = calls.pop(key)
        call = None
    if call is None:
        wait = waits.get(key)
        progress = trial_progress(ctx, ns, name)
        if wait is not None and wait.inputs == inputs and wait.progress == progress:
            return wait.next_check(ctx.clock.monotonic())
        waits.pop(key, None)
        call = start_call(ctx, exp, sug, need, inputs)
    if not call.finished.is_set():
        return report_slow(ctx, sug, call)
    calls.pop(key)
    if call.error is not None:
        fail(ctx, sug, call)
        return None
    record(ctx, sug, call.reply, need=need, count=count)
    reply = call.reply
    if len(reply.assignments) < need and not reply.exhausted:
        wait = Wait(inputs=call_inputs(exp, sug), progress=trial_progress(ctx, ns, name))
        waits[key] = wait
        return wait.next_check(ctx.clock.monotonic())
    return None


def ended(exp: dict) -> bool:
    """A completed experiment asks for nothing more (a restart raises spec.requests, which wakes us)."""
    conds = (exp.get("status") or {}).get("conditions") or []
    return cond.is_true(conds, "Succeeded") or cond.is_true(conds, "Failed")


def call_inputs(exp: dict, sug: dict) -> tuple:
    """What an algorithm call is asked, besides the trials: the Suggestion (by uid) with its
    count, state and settings, and the experiment's algorithm and parameters."""
    status = sug.get("status") or {}
    spec = exp.get("spec") or {}
    return (sug["metadata"].get("uid"), status.get("suggestionCount", 0), status.get(STATE_KEY),
            json.dumps(status.get("algorithmSettings"), sort_keys=True),
            json.dumps([spec.get("algorithm"), spec.get("parameters"), spec.get("nasConfig")], sort_keys=True))


def trial_progress(ctx: Context, namespace: str, name: str) -> tuple:
    """How many of the experiment's trials have finished (O(1)): a short reply (a rung waiting
    for its trials) is worth asking again when this moved."""
    counts = ctx.index.get(namespace, name).counts
    return counts[SUCCEEDED], counts[FAILED], counts[KILLED]


def start_call(ctx: Context, exp: dict, sug: dict, need: int, inputs: tuple) -> Call:
    """Build the request here (the manager's thread reads the index) and run the algorithm on
    the executor; when it is done the Suggestion is enqueued again."""
    from katib.algorithms.registry import suggest

    ns, name = sug["metadata"]["namespace"], sug["metadata"]["name"]
    request = build_request(ctx, exp, sug, need)
    call = Call(inputs=inputs, need=need, algorithm=request.algorithm, started=ctx.clock.monotonic(),
                report_at=SLOW_CALL)
    calls_of(ctx)[(ns, name)] = call
    work_queue = ctx.queue

    def run() -> None:
        try:
            call.reply = suggest(request)
        except Exception as err:  # noqa: BLE001 - recorded as the Suggestion's failure
            call.error = err
        call.finished.set()
        if work_queue is not None:
            work_queue.add((CONTROLLER, ns, name))

    executor_of(ctx, request.algorithm).submit(run)
    return call


def report_slow(ctx: Context, sug: dict, call: Call) -> float | None:
    """A call still running: say so once it has taken SLOW_CALL seconds, again at each doubling
    (at most SLOW_REPORT_MAX apart).
    Returns when to report next, None when that is scheduled already (its reply wakes the
    Suggestion anyway)."""
    now = ctx.clock.monotonic()
    elapsed = now - call.started
    if elapsed >= call.report_at:
        meta = sug["metadata"]
        message = (f"algorithm {call.algorithm} is still computing {call.need} assignment(s) "
                   f"after {int(elapsed)}s")
        logger.warning("[%s/%s] %s", meta["namespace"], meta["name"], message)
        ctx.event(sug, "Normal", "SuggestionSlow", message)
        while call.report_at <= elapsed:
            call.report_at += min(call.report_at, SLOW_REPORT_MAX)
    due = call.started + call.report_at
    if call.due == due:
        return None
    call.due = due
    return due - now


def fail(ctx: Context, sug: dict, call: Call) -> None:
    """Retrying would loop for ever on the same trials (algorithms are pure); fail as upstream's
    suggestion service does when the algorithm errors (the experiment then fails with it)."""
    err = call.error
    message = f"algorithm {call.algorithm} failed: {type(err).__name__}: {err}"
    cond.set_condition(sug["status"]["conditions"], "Failed", "True", c.SUGGESTION_FAILED_REASON,
                       message, ctx.now())
    logger.warning("[%s/%s] suggestion failed: %s", sug["metadata"]["namespace"], sug["metadata"]["name"], message)


def record(ctx: Context, sug: dict, reply, *, need: int, count: int) -> None:
    """The reply's assignments (named), count, state and settings into the status (one write)."""
    status = sug["status"]
    ns, name = sug["metadata"]["namespace"], sug["metadata"]["name"]
    group = ctx.index.get(ns, name)
    pending = [s for s in status.get("suggestions") or [] if s.get("name") not in group.trials]
    taken = {s.get("name") for s in pending}
    for assignment in reply.assignments[:need]:
        pending.append({"name": new_trial_name(ctx, name, taken, group.trials),
                        "parameterAssignments": [{"name": k, "value": v} for k, v in assignment]})
        count += 1
    status["suggestions"] = pending
    status["suggestionCount"] = count
    status[STATE_KEY] = json.dumps(reply.state, sort_keys=True, separators=(",", ":"))
    merge_settings(status, reply.settings)
    if reply.exhausted and len(reply.assignments) < need:
        cond.set_terminal(status["conditions"], "Succeeded", c.SUGGESTION_EXHAUSTED_REASON,
                          c.SUGGESTION_EXHAUSTED_MESSAGE, ctx.now())
        logger.info("[%s/%s] search space exhausted after %d assignments", ns, name, count)


def build_request(ctx: Context, exp: dict, sug: dict, need: int):
    from katib.algorithms.base import SuggestRequest

    spec = json_copy(exp["spec"])  # the call may run on another thread: nothing shared
    status = sug["status"]
    settings = {s.get("name", ""): s.get("value", "") for s in spec["algorithm"].get("algorithmSettings") or []}
    settings.update({s.get("name", ""): s.get("value", "") for s in status.get("algorithmSettings") or []})
    group = ctx.index.get(exp["metadata"]["namespace"], exp["metadata"]["name"])
    trials = [t.record for t in group.ordered()]
    state = json.loads(status[STATE_KEY]) if status.get(STATE_KEY) else None
    seed = ctx.rng.randrange(2**31) if state is None else None
    return SuggestRequest(
        algorithm=spec["algorithm"]["algorithmName"], parameters=spec.get("parameters") or [],
        objective_type=(spec.get("objective") or {}).get("type", ""), trials=trials, count=need,
        settings=settings, state=state, seed=seed,
        parallel_trial_count=spec.get("parallelTrialCount") or 0,
        max_trial_count=spec.get("maxTrialCount") or 0, nas_config=spec.get("nasConfig"))


def merge_settings(status: dict, settings: dict[str, str]) -> None:
    stored = status.setdefault("algorithmSettings", [])
    for key, value in settings.items():
        for entry in stored:
            if entry.get("name") == key:
                entry["value"] = value
                break
        else:
            stored.append({"name": key, "value": value})
    if not stored:
        status.pop("algorithmSettings")


def new_trial_name(ctx: Context, prefix: str, taken: set[str], trials) -> str:
    while True:
        name = f"{prefix}-" + "".join(ctx.rng.choice(NAME_ALPHABET) for _ in range(8))
        if name not in taken and name not in trials:
            taken.add(name)
            return name
