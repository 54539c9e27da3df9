"""A whole control plane in one test: fake backend, fake clock, real DB (SQLite), real
controllers, and a test-driven kubelet whose jobs finish when the test says so.

    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=5))
    world.run_until_idle()
    world.jobs.finish_all(stdout="Validation-accuracy=0.9\\n")
    world.run_until_idle()
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from katib.backends.kubelet import JOB_KINDS, complete_job, job_key
from katib.clock import FakeClock, rfc3339
from katib.controllers.queue import WorkQueue

MAX_CLOCK_JUMPS = 200  # per run_until_idle: a key failing for ever is retried this often, then left due


def make_experiment(*, name: str = "exp", namespace: str = "default", algorithm: str = "random",
                    parallel_trial_count: int | None = 3, max_trial_count: int | None = 6,
                    max_failed_trial_count: int | None = 3, goal: float | None = None,
                    objective_type: str = "maximize", metric: str = "accuracy",
                    parameters: list[dict] | None = None, resume_policy: str | None = None,
                    settings: list[dict] | None = None, retain: bool | None = None,
                    collector: dict | None = None) -> dict:
    """A valid v1alpha3 Experiment; every keyword overrides one field."""
    spec: dict = {
        "objective": {"type": objective_type, "objectiveMetricName": metric},
        "algorithm": {"algorithmName": algorithm},
        "parameters": parameters if parameters is not None else [
            {"name": "--lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.03"}},
            {"name": "--layers", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "5"}},
        ],
        "trialTemplate": {"goTemplate": {"rawTemplate": JOB_TEMPLATE}},
    }
    if goal is not None:
        spec["objective"]["goal"] = goal
    if settings:
        spec["algorithm"]["algorithmSettings"] = settings
    for key, value in (("parallelTrialCount", parallel_trial_count), ("maxTrialCount", max_trial_count),
                       ("maxFailedTrialCount", max_failed_trial_count), ("resumePolicy", resume_policy),
                       ("metricsCollectorSpec", collector)):
        if value is not None:
            spec[key] = value
    if retain is not None:
        spec["trialTemplate"]["retain"] = retain
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


JOB_TEMPLATE = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Trial}}
  namespace: {{.NameSpace}}
spec:
  template:
    spec:
      containers:
      - name: {{.Trial}}
        image: train
        command:
        - "python3"
        - "train.py"
        {{- with .HyperParameters}}
        {{- range .}}
        - "{{.Name}}={{.Value}}"
        {{- end}}
        {{- end}}
      restartPolicy: Never
"""


class TestKubelet:
    """Jobs run only when the test says so; outcomes go through the real metrics path."""

    def __init__(self, world: "World"):
        self.world = world
        self.dir = Path(tempfile.mkdtemp(prefix="katib-test-jobs-"))

    def jobs(self, *, running_only: bool = True) -> list[dict]:
        out = []
        for kind in JOB_KINDS:
            for job in self.world.backend.list(kind):
                if running_only and (job.get("status") or {}).get("conditions"):
                    continue
                if job["metadata"].get("deletionTimestamp"):
                    continue
                out.append(job)
        return out

    def start_all(self) -> None:
        for job in self.jobs():
            if not job.get("status"):
                self._write(job, {"startTime": self.world.stamp(), "active": 1})

    def finish(self, job: dict, *, stdout: str = "", succeeded: bool = True, message: str = "") -> None:
        out = self.dir / (job_key(job).replace("/", "_") + ".log")
        out.write_text(stdout)
        now = self.world.stamp()
        ctype = "Complete" if succeeded else "Failed"
        status = {"startTime": now, "completionTime": now,
                  "succeeded" if succeeded else "failed": 1,
                  "conditions": [{"type": ctype, "status": "True", "lastProbeTime": now,
                                  "lastTransitionTime": now, "reason": "" if succeeded else "BackoffLimitExceeded",
                                  "message": message}]}
        complete_job(self.world.backend, self.world.ctx.observations, job, status, output=out)

    def finish_all(self, *, stdout: str | None = None, succeeded: bool = True, values=None) -> int:
        """Finish every running job; `values` maps an index to the printed objective value."""
        jobs = self.jobs()
        for i, job in enumerate(jobs):
            text = stdout if stdout is not None else f"{self.world.metric}={values(i, job) if values else 0.5}\n"
            self.finish(job, stdout=text, succeeded=succeeded)
        return len(jobs)

    def _write(self, job: dict, status: dict) -> None:
        job = copy.deepcopy(job)
        job["status"] = status
        self.world.backend.update_status(job)


class SteppedQueue(WorkQueue):
    """The manager's work queue, telling the test when its next delayed key is due."""

    def next_due(self) -> float | None:
        with self._cond:
            return self._delayed[0][0] if self._delayed else None


class World:
    def __init__(self, *, seed: int = 7, db_url: str = ":memory:", persistence=None, metric: str = "accuracy",
                 status_interval: float = 0.0):
        from katib.backends.fake import FakeBackend
        from katib.config import KatibConfig
        from katib.controllers.context import Context
        from katib.controllers.manager import Manager
        from katib.db import connect
        from katib.runtime import get_configmap_from_backend, experiment_admission

        self.clock = FakeClock()
        self.metric = metric
        self.config = KatibConfig.load(None)
        self.db = connect(db_url)
        self.backend = None
        get_configmap = get_configmap_from_backend(lambda: self.backend)

        self.backend = FakeBackend(clock=self.clock, admit=experiment_admission(self.config, get_configmap),
                                   persistence=persistence)
        self.ctx = Context(backend=self.backend, db=self.db, clock=self.clock, config=self.config,
                           get_configmap=get_configmap, seed=seed, status_interval=status_interval,
                           queue=SteppedQueue(self.clock))
        self.manager = Manager(self.ctx, threaded=False)  # informers delivered by run_until_idle
        self.jobs = TestKubelet(self)

    def stamp(self) -> str:
        return rfc3339(self.clock.now())

    def apply(self, obj: dict) -> dict:
        return self.backend.create(obj)

    def run_until_idle(self, *, jump_clock: bool = True) -> int:
        """Process every ready key; then jump the fake clock to the next delayed key (a
        requeue after a delay, a back-off) and go on, until nothing is due any more (at most
        MAX_CLOCK_JUMPS jumps). Returns the number of reconciles. `jump_clock=False`: only
        what is ready now, the clock stays (a crash before a retry came)."""
        steps = self.manager.run_until_idle()
        for _ in range(MAX_CLOCK_JUMPS if jump_clock else 0):
            due = self.manager.queue.next_due()
            if due is None:
                break
            self.clock.set(due)
            steps += self.manager.run_until_idle()
        return steps

    def next_due(self) -> float | None:
        """When the next delayed key is due (fake-clock seconds), None when none waits."""
        return self.manager.queue.next_due()

    def advance(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return self.run_until_idle()

    def experiment(self, name: str = "exp", namespace: str = "default") -> dict:
        return self.backend.get("Experiment", namespace, name)

    def suggestion(self, name: str = "exp", namespace: str = "default") -> dict:
        return self.backend.get("Suggestion", namespace, name)

    def trials(self, namespace: str = "default") -> list[dict]:
        return self.backend.list("Trial", namespace)

    def conditions(self, obj: dict) -> list[tuple[str, str, str]]:
        return [(c["type"], c["status"], c.get("reason", "")) for c in (obj.get("status") or {}).get("conditions") or []]

    def last_condition(self, name: str = "exp") -> tuple[str, str, str]:
        return self.conditions(self.experiment(name))[-1]

    def drive(self, *, values=None, succeeded: bool = True, rounds: int = 1000) -> int:
        """Run the experiment to its end: finish whatever runs, round after round."""
        finished = 0
        for _ in range(rounds):
            self.run_until_idle()
            self.jobs.start_all()
            self.run_until_idle()
            n = self.jobs.finish_all(values=values, succeeded=succeeded)
            if n == 0:
                self.run_until_idle()
                if not self.jobs.jobs():
                    return finished
            finished += n
        raise AssertionError("experiment did not settle")
