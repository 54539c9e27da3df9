"""Experiment controller: Experiment → Suggestion requests → Trials; summary and end conditions.

Mirrors Katib v1alpha3 experiment_controller (controllers.md §1) with the deliberate fixes
listed in docs/divergences.md: an exhausted algorithm ends the experiment, lowering
parallelism deletes nothing, trials still active when the experiment completes are Killed, and
an assignment the trial template cannot be rendered for becomes a Failed trial (upstream retries
it for ever)."""
from __future__ import annotations

import logging

from katib import failpoints
from katib.api import constants as c
from katib.controllers import conditions as cond
from katib.controllers import experiment_status as es
from katib.controllers.context import Context, json_copy
from katib.controllers.job_status import decode_run_spec
from katib.controllers.index import PENDING, RUNNING
from katib.errors import AlreadyExists, Invalid, NotFound

logger = logging.getLogger(__name__)

CONTROLLER = "experiment"   # the manager's name for this controller (queue keys)

FINALIZER = c.FINALIZER_PROMETHEUS


def reconcile_experiment(ctx: Context, namespace: str, name: str) -> float | None:
    """One level-based pass; returns seconds until it wants to run again, or None."""
    try:
        stored = ctx.backend.get("Experiment", namespace, name, readonly=True)
    except NotFound:
        ctx.index.forget_experiment(namespace, name)
        ctx.last_status_write.pop((namespace, name), None)
        return None
    if reconcile_finalizer(ctx, stored):
        return None
    # Work on a shallow copy: the trial lists of a large experiment are never copied, only
    # replaced when the summary is rewritten (at most every ctx.status_interval seconds).
    before = stored.get("status") or {}
    status = dict(before)
    status["conditions"] = json_copy(before.get("conditions") or [])
    exp = {**stored, "status": status}
    conds = status["conditions"]
    group = ctx.index.get(namespace, name)
    if is_completed(conds):
        if restartable(exp, group):
            cond.remove(conds, "Succeeded", "Failed")
            status["completionTime"] = None  # running again (upstream keeps the old time)
            cond.set_condition(conds, "Restarting", "True", c.EXPERIMENT_RESTARTING_REASON,
                               c.EXPERIMENT_RESTARTING_MESSAGE, ctx.now())
            logger.info("[%s/%s] restarted: maxTrialCount is now %s", namespace, name,
                        exp["spec"].get("maxTrialCount"))
        else:
            return finish_completed(ctx, exp, before)
    if not cond.is_true(conds, "Created"):
        status.setdefault("startTime", ctx.now())
        status.setdefault("completionTime", None)
        cond.set_condition(conds, "Created", "True", c.EXPERIMENT_CREATED_REASON, c.EXPERIMENT_CREATED_MESSAGE,
                           ctx.now())
        ctx.event(exp, "Normal", c.EXPERIMENT_CREATED_REASON, c.EXPERIMENT_CREATED_MESSAGE)
        return write_status(ctx, exp, before, force=True)
    reconcile_running(ctx, exp)
    return write_status(ctx, exp, before, force=conds != (before.get("conditions") or []))


def reconcile_finalizer(ctx: Context, stored: dict) -> bool:
    """Add our finalizer, or remove it when the experiment is being deleted. True when this
    pass is over (it wrote, or the experiment is going away)."""
    finalizers = stored["metadata"].get("finalizers") or []
    deleting = bool(stored["metadata"].get("deletionTimestamp"))
    if deleting == (FINALIZER in finalizers):
        exp = json_copy(stored)
        kept = [f for f in finalizers if f != FINALIZER]
        exp["metadata"]["finalizers"] = kept if deleting else finalizers + [FINALIZER]
        ctx.backend.update(exp)
        return True
    return deleting


def is_completed(conds: list[dict]) -> bool:
    return cond.is_true(conds, "Succeeded") or cond.is_true(conds, "Failed")


def restartable(exp: dict, group) -> bool:
    """A LongRunning experiment that ended on maxTrialCount restarts when the limit is raised."""
    conds = exp["status"].get("conditions") or []
    succeeded = cond.find(conds, "Succeeded")
    if not (succeeded and succeeded.get("status") == "True"
            and succeeded.get("reason") == c.EXPERIMENT_MAX_TRIALS_REACHED_REASON):
        return False
    if exp["spec"].get("resumePolicy", c.DEFAULT_RESUME_POLICY) != c.ResumePolicy.LONG_RUNNING:
        return False
    max_trials = exp["spec"].get("maxTrialCount")
    return max_trials is None or max_trials > es.completed(group)


def reconcile_running(ctx: Context, exp: dict) -> None:
    """ReconcileExperiment: end conditions, then more trials if still running (the summary is
    written by write_status)."""
    ns, name = exp["metadata"]["namespace"], exp["metadata"]["name"]
    group = ctx.index.get(ns, name)
    conds = exp["status"]["conditions"]
    sug = get_suggestion(ctx, ns, name)
    unconsumed = unconsumed_assignments(sug, group) if sug else []
    sug_conds = ((sug or {}).get("status") or {}).get("conditions") or []
    ended = cond.find(sug_conds, "Succeeded")
    exhausted = bool(ended) and ended.get("status") == "True" and ended.get("reason") == c.SUGGESTION_EXHAUSTED_REASON
    end = es.end_condition(exp["spec"], group, suggestion_exhausted=exhausted, unconsumed=len(unconsumed))
    if end is None and cond.is_true(sug_conds, "Failed"):
        end = es.SUGGESTION_FAILED
    if end is not None:
        complete(ctx, exp, end)
        return
    cond.set_condition(conds, "Running", "True", c.EXPERIMENT_RUNNING_REASON, c.EXPERIMENT_RUNNING_MESSAGE, ctx.now())
    reconcile_trials(ctx, exp, group, sug, unconsumed)


def complete(ctx: Context, exp: dict, end: tuple[str, str, str]) -> None:
    ctype, reason, message = end
    conds = exp["status"]["conditions"]
    now = ctx.now()
    cond.set_terminal(conds, ctype, reason, message, now)
    exp["status"]["completionTime"] = now  # upstream leaves it unset when the Suggestion failed
    logger.info("[%s/%s] %s: %s", exp["metadata"]["namespace"], exp["metadata"]["name"], ctype, reason)
    ctx.event(exp, "Normal" if ctype == "Succeeded" else "Warning", reason, message)


def get_suggestion(ctx: Context, ns: str, name: str) -> dict | None:
    """The experiment's Suggestion, read-only."""
    try:
        return ctx.backend.get("Suggestion", ns, name, readonly=True)
    except NotFound:
        return None


def unconsumed_assignments(sug: dict, group) -> list[dict]:
    """Recorded assignments that have no Trial yet (a crash may sit between the two writes).
    The Suggestion keeps only assignments whose Trial did not exist at its last write."""
    suggestions = (sug.get("status") or {}).get("suggestions") or []
    return [s for s in suggestions if s.get("name") not in group.trials]


def reconcile_trials(ctx: Context, exp: dict, group, sug: dict | None, unconsumed: list[dict]) -> None:
    ns, name = exp["metadata"]["namespace"], exp["metadata"]["name"]
    count = ((sug or {}).get("status") or {}).get("suggestionCount", 0)
    plan = es.plan_trials(exp["spec"], group, suggestion_count=count, unconsumed=len(unconsumed))
    if sug is None:
        if plan.add > 0:
            create_suggestion(ctx, exp, plan.requests)
        return
    ended = cond.is_true((sug.get("status") or {}).get("conditions"), "Succeeded")
    if not ended and (sug.get("spec") or {}).get("requests") != plan.requests:  # ended: nothing to ask
        # Its own write: what the experiment needs next is the Suggestion's answer, not this.
        ctx.wrote(CONTROLLER, ctx.backend.update({"apiVersion": sug["apiVersion"], "kind": sug["kind"],
                                                  "metadata": json_copy(sug["metadata"]),
                                                  "spec": {**sug.get("spec", {}), "requests": plan.requests}}))
    for assignment in unconsumed:
        create_trial(ctx, exp, assignment)


def create_suggestion(ctx: Context, exp: dict, requests: int) -> None:
    meta = exp["metadata"]
    body = {
        "apiVersion": c.API_VERSION, "kind": c.SUGGESTION,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                     "labels": dict(meta.get("labels") or {}),
                     "annotations": dict(meta.get("annotations") or {}),
                     "ownerReferences": [owner_ref(exp)]},
        "spec": {"algorithmName": exp["spec"]["algorithm"]["algorithmName"], "requests": requests},
    }
    try:
        ctx.backend.create(body)
        logger.info("[%s/%s] suggestion created, %d requested", meta["namespace"], meta["name"], requests)
    except AlreadyExists:
        pass


def owner_ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def render_run_spec(ctx: Context, exp: dict, trial_name: str, params: list[dict]) -> tuple[str, str | None]:
    """(runSpec, None), or ("", why) when the template cannot become a Job for these values
    (a ConfigMap edited after admission, a parameter value that breaks the YAML...)."""
    from katib.api.templates import render_trial_template

    try:
        run_spec = render_trial_template(exp, trial_name=trial_name, assignments=params,
                                         get_configmap=ctx.get_configmap)
        decode_run_spec(run_spec)
    except Exception as err:
        return "", f"spec.trialTemplate cannot be rendered into a Job for this trial: {err}"
    return run_spec, None


def create_trial(ctx: Context, exp: dict, assignment: dict) -> None:
    """Create the Trial of a recorded assignment. One that cannot be rendered is created all the
    same, without a runSpec and with the error in an annotation: the trial controller fails it,
    so it counts as failed and the experiment ends by its usual rules (one write, crash-safe)."""
    meta, spec = exp["metadata"], exp["spec"]
    trial_name = assignment["name"]
    params = assignment.get("parameterAssignments") or []
    run_spec, problem = render_run_spec(ctx, exp, trial_name, params)
    labels = dict(meta.get("labels") or {})
    labels[c.LABEL_EXPERIMENT] = meta["name"]
    trial = {
        "apiVersion": c.API_VERSION, "kind": c.TRIAL,
        # Created with the trial controller's finalizer: one write fewer per trial.
        "metadata": {"name": trial_name, "namespace": meta["namespace"], "labels": labels,
                     "ownerReferences": [owner_ref(exp)], "finalizers": [c.FINALIZER_CLEAN_DB]},
        "spec": {"objective": json_copy(spec.get("objective")),
                 "parameterAssignments": [dict(p) for p in params],
                 "runSpec": run_spec,
                 "metricsCollector": json_copy(spec.get("metricsCollectorSpec") or {})},
    }
    if problem is not None:
        trial["metadata"]["annotations"] = {c.TRIAL_TEMPLATE_ERROR_ANNOTATION: problem}
    if (spec.get("trialTemplate") or {}).get("retain"):
        trial["spec"]["retainRun"] = True
    try:
        ctx.index.observe(ctx.backend.create(trial))  # the next pass sees it before its watch event
        failpoints.hit("trial-created")
        logger.info("[%s/%s] trial %s created", meta["namespace"], meta["name"], trial_name)
        if problem is not None:
            ctx.event(exp, "Warning", c.EVENT_RECONCILE_FAILED, f"Trial {trial_name}: {problem}")
            logger.warning("[%s/%s] trial %s: %s", meta["namespace"], meta["name"], trial_name, problem)
    except AlreadyExists:
        pass
    except Invalid as err:
        logger.warning("[%s/%s] trial %s refused: %s", meta["namespace"], meta["name"], trial_name, err)


def finish_completed(ctx: Context, exp: dict, before: dict) -> float | None:
    """A completed experiment: stop leftover trials, keep the summary current until none is
    active, and for ResumePolicy Never terminate the Suggestion."""
    ns, name = exp["metadata"]["namespace"], exp["metadata"]["name"]
    group = ctx.index.get(ns, name)
    for s in list(group.trials.values()):
        if s.state in (PENDING, RUNNING):
            kill_trial(ctx, ns, s.name, exp)
    if exp["spec"].get("resumePolicy", c.DEFAULT_RESUME_POLICY) == c.ResumePolicy.NEVER:
        terminate_suggestion(ctx, ns, name)
    return write_status(ctx, exp, before, force=es.active(group) == 0)


def kill_trial(ctx: Context, ns: str, trial_name: str, exp: dict) -> None:
    try:
        trial = ctx.backend.get("Trial", ns, trial_name)
    except NotFound:
        return
    conds = trial.setdefault("status", {}).setdefault("conditions", [])
    if any(cond.is_true(conds, t) for t in ("Succeeded", "Failed", "Killed")):
        return  # it ended before the index heard of it
    now = ctx.now()
    if cond.set_terminal(conds, "Killed", c.TRIAL_KILLED_REASON,
                         f"Trial is killed because experiment {exp['metadata']['name']} has completed", now):
        trial["status"]["completionTime"] = now
        ctx.backend.update_status(trial)
        ctx.event(trial, "Normal", c.TRIAL_KILLED_REASON, c.TRIAL_KILLED_MESSAGE)


def terminate_suggestion(ctx: Context, ns: str, name: str) -> None:
    sug = get_suggestion(ctx, ns, name)
    if sug is None:
        return
    if any(cond.is_true((sug.get("status") or {}).get("conditions"), t) for t in ("Succeeded", "Failed")):
        return
    sug = json_copy(sug)
    conds = sug.setdefault("status", {}).setdefault("conditions", [])
    now = ctx.now()
    cond.set_terminal(conds, "Succeeded", c.SUGGESTION_SUCCEEDED_REASON, c.SUGGESTION_SUCCEEDED_MESSAGE, now)
    ctx.backend.update_status(sug)


def write_status(ctx: Context, exp: dict, before: dict, *, force: bool) -> float | None:
    """Write conditions and the trial summary if they changed. Without `force`, a summary
    rewrite happens at most every ctx.status_interval seconds per experiment: a 10,000-trial
    summary is large, and rewriting it on every trial event would make the run quadratic."""
    key = (exp["metadata"]["namespace"], exp["metadata"]["name"])
    now = ctx.clock.monotonic()
    last = ctx.last_status_write.get(key)
    if not force and ctx.status_interval > 0 and last is not None and now - last < ctx.status_interval:
        return ctx.status_interval - (now - last)
    group = ctx.index.get(*key)
    exp["status"] = es.summarize(group, exp["status"])
    if exp["status"] == before:
        return None
    ctx.backend.update_status(exp)
    ctx.last_status_write[key] = now
    return None
