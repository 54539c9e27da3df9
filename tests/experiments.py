"""A small grid Experiment whose trials are `sh -c SCRIPT` jobs: the fixture of the tests that
run the real `katib.py` (crashes, storage faults, two processes on one database).

`{value}` in the script is the trial's value of the int parameter `x`; the trial reports
`accuracy=0.<x>` after the script."""
from __future__ import annotations

TEMPLATE = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Trial}}
  namespace: {{.NameSpace}}
spec:
  template:
    spec:
      containers:
      - name: main
        image: none
        command: ["sh", "-c"]
        args: ["SCRIPT echo accuracy=0.{{range .HyperParameters}}{{.Value}}{{end}}"]
      restartPolicy: Never
"""


def shell_experiment(name: str, *, script: str, parallel: int, max_trials: int,
                     x_max: int, x_min: int = 10) -> dict:
    """`script` runs before the metric line (end it with `;`); `x` spans x_min..x_max."""
    return {
        "apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "grid"},
            "parallelTrialCount": parallel, "maxTrialCount": max_trials, "maxFailedTrialCount": 0,
            "parameters": [{"name": "x", "parameterType": "int",
                            "feasibleSpace": {"min": str(x_min), "max": str(x_max)}}],
            "trialTemplate": {"goTemplate": {"rawTemplate": TEMPLATE.replace("SCRIPT", script)}},
        },
    }
