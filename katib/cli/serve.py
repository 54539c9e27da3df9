"""`katib.py --fake [serve]`: the long-lived control plane on the local fake backend, with a
Kubernetes-compatible HTTPS API (katib/apiserver) that kubectl and the `kubernetes` client use.

It continues every experiment stored in the database (trials that were running are
re-attached or recovered) and keeps reconciling until SIGINT/SIGTERM. At start it prints the
API's URL and the kubeconfig to use (`--kubeconfig`, default DB.d/kubeconfig; mode 0600, with
the CA and a bearer token kept next to the database and reused on restart). `--api-only`
serves the API and plays a cluster's node (katib.backends.fake_node: Jobs, TFJobs and PyTorchJobs
get Pods, created through the API, whose containers run as local processes; `kubectl logs`) but
runs neither Katib's controllers nor Katib's in-process Experiment admission: a stand-in for a
cluster before Katib is installed, on which only the admission webhooks registered in it
(`kubectl apply -k config/`) admit objects. In both modes
registered webhooks are called as kube-apiserver calls them (katib.backends.fake_webhooks). `--apply FILE` creates or updates experiments at start-up.
SIGINT/SIGTERM stop it with exit 0 (trial processes keep running and are re-attached on the
next start); a worker thread that cannot go on (full disk...) stops it with `error: <why>` and
exit 2. Without `--fake`, `serve` runs the controllers against a cluster (serve_cluster)."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from katib.cli import serve_cluster

DEFAULT_LISTEN = "127.0.0.1:6443"


def add_parser(subparsers) -> None:
    from katib.cli.run import add_plane_arguments

    p = subparsers.add_parser(
        "serve", help="run the control plane and its Kubernetes API until stopped (the default with --fake)",
        description="With --fake: run the controllers, the local job runner and a Kubernetes-compatible HTTPS "
                    "API on the fake backend until SIGINT or SIGTERM (exit 0), continuing the experiments "
                    "stored in the database; point kubectl at the kubeconfig it prints. Without --fake: run "
                    "the controllers against a Kubernetes cluster. Exit 2 on invalid input, an unusable "
                    "database or a worker that cannot go on.")
    add_plane_arguments(p)
    p.add_argument("--apply", metavar="FILE", action="append", default=[],
                   help="create or update the Experiments of FILE at start-up (repeatable)")
    p.add_argument("--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN,
                   help=f"address of the HTTPS API (default {DEFAULT_LISTEN}; port 0 picks a free one)")
    p.add_argument("--kubeconfig", metavar="PATH",
                   help="with --fake: where to write the kubeconfig for the API (default DB.d/kubeconfig); "
                        "without --fake: the kubeconfig of the cluster to run against")
    p.add_argument("--api-only", action="store_true",
                   help="serve the API and run jobs as pods whose containers are local processes, but not "
                        "Katib's controllers nor its in-process Experiment admission (a stand-in cluster for `katib.py serve --kubeconfig "
                        "--webhook-listen ... --advertise-address 127.0.0.1`, whose registered webhooks admit)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every reconcile (DEBUG)")
    serve_cluster.add_arguments(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    if not getattr(args, "fake", False):
        return serve_cluster.run(args)
    from katib.apiserver.server import parse_listen
    from katib.cli.run import EXIT_ERROR

    try:
        host, port = parse_listen(getattr(args, "listen", None) or DEFAULT_LISTEN)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return _serve(args, host, port)


def _serve(args, host: str, port: int) -> int:
    from katib.cli.run import EXIT_ERROR, apply_all, db_location, open_control_plane, parallel_cap, startup_sigint
    from katib.errors import KatibError

    stop = threading.Event()
    plane = api = None
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, startup_sigint(stop)),
                signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
    try:
        # Start-up may block (a database server that does not answer): SIGINT interrupts it.
        plane, experiments, objects = open_control_plane(args, args.apply)
        if plane is None:
            return EXIT_ERROR
        if not apply_all(plane, experiments, source=", ".join(args.apply), quiet=False,
                         parallel=parallel_cap(args), objects=objects):
            return EXIT_ERROR
        _ensure_namespaces(plane.backend, ("default", "kubeflow", args.namespace))
        work = db_location(args)[1]
        try:
            api = _start_api(plane.backend, host=host, port=port, work=work,
                             kubeconfig=getattr(args, "kubeconfig", None),
                             pod_log=getattr(plane.kubelet, "pod_log", None))
        except (OSError, KatibError, ValueError) as err:
            print(f"error: the API cannot listen on {host}:{port}: {err}", file=sys.stderr)
            return EXIT_ERROR
        api_only = getattr(args, "api_only", False)
        if api_only:
            plane.manager.close()   # a stand-in cluster: no Katib controllers, only the kubelet
            plane.kubelet.recover()
            plane.kubelet.start()
        else:
            plane.start()
        for sig in previous:   # a start-up Ctrl-C swallowed on the way has set `stop` already
            signal.signal(sig, lambda *_: stop.set())
        mode = "API only (no Katib controllers)" if api_only else "control plane"
        print(f"serving the Kubernetes API at {api.url} ({mode}; db {plane.db.url})\n"
              f"kubeconfig: {api.kubeconfig}\n"
              f"  kubectl --kubeconfig {api.kubeconfig} get experiments", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            if plane.failed.is_set():
                print(f"error: {plane.failure}", file=sys.stderr)
                return EXIT_ERROR
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted during start-up", file=sys.stderr)
        return 130
    finally:
        if api is not None:
            api.stop()
        if plane is not None:
            plane.stop(kill_jobs=False)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_api(backend, *, host: str, port: int, work: Path, kubeconfig: str | None, pod_log=None):
    from katib.apiserver.server import ApiServer

    api = ApiServer(backend, host=host, port=port, state_dir=Path(work),
                    kubeconfig=Path(kubeconfig) if kubeconfig else Path(work) / "kubeconfig", pod_log=pod_log)
    api.start()
    return api


def _ensure_namespaces(backend, names) -> None:
    """Namespace objects for what `kubectl get namespaces` should show (the fake needs none)."""
    from katib.errors import AlreadyExists

    for name in dict.fromkeys(names):
        try:
            backend.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except AlreadyExists:
            pass
