"""Suggestion controller: spec.requests → the algorithm → status.suggestions.

Mirrors Katib v1alpha3 suggestion_controller (controllers.md §2) with the algorithm running
in this process. Assignments, their future trial names and the algorithm's state are recorded
in one status write, before any Trial exists (a crash in between repeats nothing)."""
from __future__ import annotations

import json
import logging

from katib import failpoints
from katib.api import constants as c
from katib.controllers import conditions as cond
from katib.controllers.context import Context, json_copy
from katib.errors import NotFound, TemporaryError

logger = logging.getLogger(__name__)

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.String: no vowels, no 0/1/3
STATE_KEY = "algorithmState"                    # our addition to SuggestionStatus (JSON text)


def reconcile_suggestion(ctx: Context, namespace: str, name: str) -> float | None:
    try:
        sug = ctx.backend.get("Suggestion", namespace, name)
    except NotFound:
        return None
    if sug["metadata"].get("deletionTimestamp"):
        return None
    before = json_copy(sug.get("status") or {})
    status = sug.setdefault("status", {})
    conds = status.setdefault("conditions", [])
    if cond.is_true(conds, "Succeeded"):
        return None
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
            pass  # terminal: the experiment fails with "Suggestion has failed"
        elif cond.is_true(conds, "Running") or validate(ctx, exp, sug):
            sync_assignments(ctx, exp, sug)
    if status != before:
        ctx.backend.update_status(sug)
        if status.get("suggestionCount", 0) > before.get("suggestionCount", 0):
            failpoints.hit("assignments-recorded")  # crash tests: before any Trial exists
    return None


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


def sync_assignments(ctx: Context, exp: dict, sug: dict) -> None:
    """Ask the algorithm for `requests - suggestionCount` assignments and record them.

    status.suggestions keeps only the assignments whose Trial did not exist yet when it was
    written (upstream keeps all of them, which makes every write of a 10,000-trial experiment
    carry 10,000 entries); suggestionCount counts all. Trials carry their own assignments."""
    from katib.algorithms.registry import suggest

    status = sug["status"]
    count = status.get("suggestionCount", len(status.get("suggestions") or []))
    need = (sug.get("spec") or {}).get("requests", 0) - count
    if need <= 0:
        return
    ns, name = sug["metadata"]["namespace"], sug["metadata"]["name"]
    group = ctx.index.get(ns, name)
    pending = [s for s in status.get("suggestions") or [] if s.get("name") not in group.trials]
    request = build_request(ctx, exp, sug, need)
    try:
        reply = suggest(request)
    except Exception as err:  # noqa: BLE001 - algorithms are pure: the same input fails again
        # Retrying would loop for ever on the same trials; fail as upstream's suggestion
        # service does when the algorithm errors (the experiment then fails with it).
        message = f"algorithm {request.algorithm} failed: {type(err).__name__}: {err}"
        cond.set_condition(status["conditions"], "Failed", "True", c.SUGGESTION_FAILED_REASON,
                           message, ctx.now())
        logger.warning("[%s/%s] suggestion failed: %s", ns, name, message)
        return
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
        now = ctx.now()
        cond.set_terminal(status["conditions"], "Succeeded", c.SUGGESTION_EXHAUSTED_REASON,
                          c.SUGGESTION_EXHAUSTED_MESSAGE, now)
        logger.info("[%s/%s] search space exhausted after %d assignments", ns, name, count)


def build_request(ctx: Context, exp: dict, sug: dict, need: int):
    from katib.algorithms.base import SuggestRequest

    spec = exp["spec"]
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
