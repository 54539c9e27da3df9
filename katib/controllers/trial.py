"""Trial controller: Trial → Job → observation and conditions.

Mirrors Katib v1alpha3 trial_controller (controllers.md §3). Fixes kept on purpose: events and
completionTime only on real transitions; a job that succeeded without the objective metric
fails the trial with reason MetricsUnavailable instead of leaving it pending forever; a Killed
trial's job is always deleted so its process stops; a failed trial's condition message carries
the Job's failure reason and message ("Trial has failed: Error: exit code 2"), and a trial
created without a runSpec (its template could not be rendered) fails with that error.

Ours as well: a job that succeeded without metrics because the pod webhook missed its pod
(unreachable at that moment, failurePolicy Ignore: a controller replica dying mid-review, a
leader change) runs once more instead of failing the trial. The trial's annotation
TRIAL_RERUN_ANNOTATION records the uid of the job deleted for that, before the deletion (a
crash in between resumes it); a job of another uid under that annotation is the second run,
whose outcome stands. A job being deleted is waited for, not judged."""
from __future__ import annotations

import logging
import math

from katib import failpoints
from katib.api import constants as c
from katib.api import injection
from katib.api.jobs import pod_templates
from katib.controllers import conditions as cond
from katib.controllers import job_status
from katib.controllers.context import Context, json_copy
from katib.controllers.experiment import owner_ref
from katib.db.observations import parse_value
from katib.errors import AlreadyExists, NotFound

logger = logging.getLogger(__name__)

FINALIZER = c.FINALIZER_CLEAN_DB
CONTROLLER = "trial"


def reconcile_trial(ctx: Context, namespace: str, name: str) -> float | None:
    try:
        trial = ctx.backend.get("Trial", namespace, name)
    except NotFound:
        return None
    meta = trial["metadata"]
    finalizers = meta.setdefault("finalizers", [])
    if meta.get("deletionTimestamp"):
        if FINALIZER in finalizers:
            ctx.observations.delete(name)
            finalizers.remove(FINALIZER)
            ctx.backend.update(trial)
        return None
    if FINALIZER not in finalizers:
        finalizers.append(FINALIZER)
        ctx.backend.update(trial)
        return None
    before = json_copy(trial.get("status") or {})
    status = trial.setdefault("status", {})
    conds = status.setdefault("conditions", [])
    if not cond.is_true(conds, "Created"):
        status.setdefault("startTime", ctx.now())
        status.setdefault("completionTime", None)
        cond.set_condition(conds, "Created", "True", c.TRIAL_CREATED_REASON, c.TRIAL_CREATED_MESSAGE, ctx.now())
    current = reconcile_job(ctx, trial)  # upstream waits a pass after Created; nothing needs that
    if status != before:
        ctx.wrote(CONTROLLER, ctx.backend.update_status(trial))
    if current is not None and is_completed(conds):  # only once the completion is stored
        failpoints.hit("trial-completed")  # crash tests: completion stored, Job not yet deleted
        delete_job(ctx, trial, current)
    return None


def is_completed(conds: list[dict]) -> bool:
    return any(cond.is_true(conds, t) for t in ("Succeeded", "Failed", "Killed"))


def desired_job(trial: dict) -> dict:
    """The runSpec object with the trial as controller owner and the istio opt-out on pods.
    (A trial is reconciled several times; its runSpec is parsed once.)"""
    job = job_status.decode_run_spec(trial["spec"].get("runSpec") or "")
    job.setdefault("metadata", {})["ownerReferences"] = [owner_ref(trial)]
    for template in pod_templates(job):
        annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[c.ISTIO_INJECT_ANNOTATION] = "false"
    return job


def reconcile_job(ctx: Context, trial: dict) -> dict | None:
    """Create the job, or move the trial's conditions along with it; returns the job if it
    exists."""
    conds = trial["status"]["conditions"]
    done = is_completed(conds)
    template_error = (trial["metadata"].get("annotations") or {}).get(c.TRIAL_TEMPLATE_ERROR_ANNOTATION)
    if template_error is not None:
        if not done:
            fail(ctx, trial, c.TRIAL_INVALID_TEMPLATE_REASON, f"{c.TRIAL_FAILED_MESSAGE}: {template_error}")
        return None
    try:
        job = desired_job(trial)
    except Exception as err:
        if not done:
            fail(ctx, trial, c.TRIAL_INVALID_RUN_SPEC_REASON, f"{c.TRIAL_FAILED_MESSAGE}: invalid runSpec: {err}")
        return None
    kind = job["kind"]
    jmeta = job["metadata"]
    jns, jname = jmeta.get("namespace") or trial["metadata"]["namespace"], jmeta.get("name")
    jmeta["namespace"] = jns
    try:
        current = ctx.backend.get(kind, jns, jname)
    except NotFound:
        current = None
    if current is None:
        if not done:
            try:
                ctx.wrote(CONTROLLER, ctx.backend.create(job))
                failpoints.hit("job-created")  # crash tests: Job stored, trial status not yet
                ctx.event(trial, "Normal", c.EVENT_JOB_CREATED, f"Job {jname} has been created")
            except AlreadyExists:
                pass
        return None
    if done:
        return current
    if current["metadata"].get("deletionTimestamp"):
        return None   # going (a re-run, or deleted by hand): created again once it is gone
    state, message = job_status.evaluate(current)
    if state == job_status.SUCCEEDED:
        succeed_or_flag(ctx, trial, current)
    elif state == job_status.FAILED:
        text = f"{c.TRIAL_FAILED_MESSAGE}: {message}" if message else c.TRIAL_FAILED_MESSAGE
        fail(ctx, trial, c.TRIAL_FAILED_REASON, text,
             event=(c.EVENT_JOB_FAILED, f"Job {jname} has failed: {message}"))
    elif state == job_status.RUNNING:
        if cond.set_condition(conds, "Running", "True", c.TRIAL_RUNNING_REASON, c.TRIAL_RUNNING_MESSAGE, ctx.now()):
            ctx.event(trial, "Normal", c.EVENT_JOB_RUNNING, f"Job {jname} is running: {message}")
    return current


def delete_job(ctx: Context, trial: dict, job: dict) -> None:
    """A completed trial's job goes, unless retained; a Killed trial's always (to stop it)."""
    if trial["spec"].get("retainRun") and not cond.is_true(trial["status"]["conditions"], c.TrialConditionType.KILLED):
        return
    meta = job["metadata"]
    if meta.get("deletionTimestamp"):
        return
    ctx.deleting(CONTROLLER, job["kind"], meta["namespace"], meta["name"])
    ctx.backend.delete(job["kind"], meta["namespace"], meta["name"], propagation="Foreground")
    ctx.event(trial, "Normal", c.EVENT_JOB_DELETED, f"Job {meta['name']} has been deleted")


def succeed_or_flag(ctx: Context, trial: dict, job: dict) -> None:
    jname = job["metadata"]["name"]
    objective = trial["spec"].get("objective") or {}
    metric = objective.get("objectiveMetricName", "")
    value = ctx.observations.objective_value(trial["metadata"]["name"], metric, objective.get("type", ""))
    status = trial["status"]
    if value is None:
        collector = trial["spec"].get("metricsCollector") or {}
        why = missing_collector(ctx, collector, job)
        if why is not None and why.webhook_missed:
            if rerun_job(ctx, trial, job, why):
                return
            why = f"{why}; the same on the job's second run"
        fail(ctx, trial, c.TRIAL_METRICS_UNAVAILABLE_REASON,
             f"{c.TRIAL_METRICS_UNAVAILABLE_MESSAGE}: " + (why or f"the job succeeded but reported no value of "
                                                           f"{metric} ({describe_collector(collector)})"),
             event=(c.EVENT_METRICS_UNAVAILABLE, f"Metrics are not available for Job {jname}"
                    + (f": {why}" if why else "")))
        return
    observation = status.setdefault("observation", {"metrics": []})
    metrics = observation.setdefault("metrics", []) or []
    extra = latest_values(ctx, trial["metadata"]["name"],
                          [n for n in objective.get("additionalMetricNames") or () if n != metric])
    ours = {metric} | {m["name"] for m in extra}
    observation["metrics"] = [m for m in metrics if m.get("name") not in ours] + [{"name": metric, "value": value}] + extra
    now = ctx.now()
    if cond.set_terminal(status["conditions"], "Succeeded", c.TRIAL_SUCCEEDED_REASON, c.TRIAL_SUCCEEDED_MESSAGE, now):
        status["completionTime"] = now
        ctx.event(trial, "Normal", c.EVENT_JOB_SUCCEEDED, f"Job {jname} has succeeded")


def rerun_job(ctx: Context, trial: dict, job: dict, why: str) -> bool:
    """Delete `job` to have it created again, once per trial (see the module docstring); False
    when `job` is already the second run."""
    meta = trial["metadata"]
    annotations = meta.setdefault("annotations", {})
    jmeta = job["metadata"]
    uid = str(jmeta.get("uid") or "")
    marked = annotations.get(c.TRIAL_RERUN_ANNOTATION)
    if marked is not None and marked != uid:
        return False
    if marked is None:
        annotations[c.TRIAL_RERUN_ANNOTATION] = uid
        stored = ctx.wrote(CONTROLLER, ctx.backend.update(trial))
        meta["resourceVersion"] = stored["metadata"]["resourceVersion"]
    failpoints.hit("job-rerun-marked")  # crash tests: the mark stored, the Job not yet deleted
    logger.info("[%s/%s] job %s runs again: %s", meta["namespace"], meta["name"], jmeta["name"], why)
    try:
        # not ctx.deleting: the job's going must wake the trial, to create it again
        ctx.backend.delete(job["kind"], jmeta["namespace"], jmeta["name"], propagation="Foreground")
    except NotFound:
        pass
    ctx.event(trial, "Warning", c.EVENT_JOB_RERUN, f"Job {jmeta['name']} runs again: {why}")
    return True


def missing_collector(ctx: Context, collector: dict, job: dict) -> injection.Missing | None:
    """Why no collector ran in the job's pods (katib.api.injection), judged from the pods the
    cluster made for it; None when there are none to judge by or one ran."""
    kind = (collector.get("collector") or {}).get("kind") or c.CollectorKind.STDOUT
    if kind not in injection.SIDECAR_KINDS:
        return None
    namespace = job["metadata"]["namespace"]
    pods = ctx.backend.list("Pod", namespace)
    if not pods:
        return None
    try:
        labels = (ctx.backend.get("Namespace", "", namespace).get("metadata") or {}).get("labels") or {}
    except NotFound:
        labels = {}
    return injection.missing_collector(kind, job["kind"], job["metadata"]["name"], pods, namespace, labels)


def latest_values(ctx: Context, trial_name: str, names: list[str]) -> list[dict]:
    """`{name, value}` of each metric's latest value that is a finite number, in the order of
    `names`; a metric without one is left out. (Our addition: v1alpha3 keeps additional
    metrics in the DB only.)"""
    out = []
    for name in names:
        for log in reversed(ctx.observations.get(trial_name, name)):
            value = parse_value(log.value)
            if value is not None and math.isfinite(value):
                out.append({"name": name, "value": value})
                break
    return out


def describe_collector(spec: dict) -> str:
    """Where the metrics were looked for, in words: "StdOut collector", "File collector reading
    /katib/metrics.log", plus the filter when it is not the default one."""
    kind = (spec.get("collector") or {}).get("kind") or c.CollectorKind.STDOUT
    source = spec.get("source") or {}
    text = f"{kind} collector"
    path = (source.get("fileSystemPath") or {}).get("path")
    if kind in (c.CollectorKind.FILE, c.CollectorKind.TENSORFLOW_EVENT) and path:
        text += f" reading {path}"
    formats = (source.get("filter") or {}).get("metricsFormat") or []
    if formats and list(formats) != [c.DEFAULT_METRICS_FILTER]:
        text += " with filter " + ", ".join(repr(f) for f in formats)
    return text


def fail(ctx: Context, trial: dict, reason: str, message: str, *, event: tuple[str, str] | None = None) -> None:
    status = trial["status"]
    now = ctx.now()
    if cond.set_terminal(status["conditions"], "Failed", reason, message, now):
        status["completionTime"] = now
        ev_reason, ev_message = event or (reason, message)
        ctx.event(trial, "Warning", ev_reason, ev_message)
        logger.info("[%s/%s] trial failed: %s", trial["metadata"]["namespace"], trial["metadata"]["name"], message)
