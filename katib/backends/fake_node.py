"""The node of the fake cluster (`katib.py --fake serve --api-only`): the job controllers
(fake_jobs: Jobs → Pods through the API's write path, so webhooks admit them) and the pod
kubelet (local_pods: Pods → local processes). It stands where the direct-process LocalKubelet
stands in control-plane mode (`--fake run`, `--fake serve`), with the same recover/start/close.

On disk, under the work directory: `containers/` (one local-runner job directory per container:
its output, exit status and PIDs) and `pods/` (per pod: its emptyDir volumes and `pids`)."""
from __future__ import annotations

from pathlib import Path

from katib.backends.fake_jobs import JobController
from katib.backends.local_pods import PodKubelet
from katib.backends.local_runner import LocalRunner


class FakeNode:
    def __init__(self, backend, work_dir: Path, *, clock=None, working_dir: str | None = None,
                 base_env: dict | None = None, on_fatal=None):
        from katib.backends.fake_webhooks import service_addresses

        self.runner = LocalRunner(Path(work_dir) / "containers", clock=clock, base_env=base_env)
        self.pods = PodKubelet(backend, self.runner, pods_dir=Path(work_dir) / "pods", clock=clock,
                               working_dir=working_dir, on_fatal=on_fatal, resolve_service=service_addresses)
        self.jobs = JobController(backend, clock=clock, on_fatal=on_fatal)

    def recover(self) -> None:
        self.pods.recover()
        self.jobs.recover()

    def start(self) -> None:
        self.pods.start()
        self.jobs.start()

    def close(self, *, kill: bool = False) -> None:
        self.jobs.close()
        self.pods.close(kill=kill)

    def pod_log(self, namespace: str, name: str, container: str) -> Path:
        """Where the output of the pod's container is (it may not exist yet)."""
        return self.pods.output_path(namespace, name, container)
