"""`katib.py serve` without `--fake`: the controllers against a Kubernetes cluster.

`--kubeconfig PATH` (default: in-cluster inside a pod, else $KUBECONFIG or ~/.kube/config)
says which cluster; `--db` is Katib's DB (observation logs), shared by the replicas. With
`--leader-elect` only the holder of the Lease `--lease-namespace`/katib
reconciles; a standby waits, and takes over `--lease-duration` seconds after the leader's last
renewal. A leader that loses the lease (renewals failing past the deadline, another holder)
exits at once with `error: leader election lost...` (exit 1): a restart by its Deployment is
the recovery, as with controller-runtime. SIGINT/SIGTERM stop it with exit 0, releasing the
lease. Exit 2: an unusable kubeconfig, an unreachable API server, a cluster without Katib's
CRDs, an unusable database."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

DEFAULT_LEASE_DURATION = 15.0
DEFAULT_LEASE_NAMESPACE = os.environ.get("KATIB_CORE_NAMESPACE") or "kubeflow"
EXIT_LOST = 1


def _positive_seconds(text: str) -> float:
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 second: {text}")
    return value


def add_arguments(parser) -> None:
    """Flags of the cluster mode (`--kubeconfig` is serve's, shared with --fake)."""
    import argparse

    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=False,
                        help="without --fake: reconcile only while holding the Lease (for several replicas); "
                             "--no-leader-elect turns it off")
    parser.add_argument("--lease-duration", type=_positive_seconds, default=DEFAULT_LEASE_DURATION,
                        metavar="SECONDS",
                        help=f"without --fake: how long a leader's lease lasts without renewal (default "
                             f"{DEFAULT_LEASE_DURATION:g}); renewed every 2/15 of it, lost after 2/3 of it")
    parser.add_argument("--lease-namespace", default=DEFAULT_LEASE_NAMESPACE, metavar="NS",
                        help="namespace of the Lease (default: $KATIB_CORE_NAMESPACE or kubeflow)")
    parser.add_argument("--health-listen", metavar="HOST:PORT",
                        help="without --fake: serve plain-HTTP /healthz and /readyz there for the probes "
                             "(e.g. :8080; port 0 picks a free one); default: not served")
    parser.add_argument("--webhook-listen", metavar="HOST:PORT",
                        help="without --fake: serve the admission webhooks and the observation API over HTTPS "
                             "there (e.g. 0.0.0.0:8443; port 0 picks one); default: not served")
    parser.add_argument("--cert-dir", metavar="DIR",
                        help="the webhook server's tls.crt/tls.key, used as they are; without them the "
                             "certificate shared by the replicas (Secret katib-webhook) is written there "
                             "(default: a directory under $TMPDIR)")
    parser.add_argument("--webhook-service", default="katib", metavar="NAME",
                        help="the Service in front of the webhooks, named in the certificate (default katib)")
    parser.add_argument("--advertise-address", metavar="IP",
                        help="without --fake: publish IP and the --webhook-listen port as an address of the "
                             "webhook Service's Endpoints (removed at stop), for a stand-in cluster such as "
                             "`katib.py --fake serve --api-only`, which has no endpoints controller; never on a "
                             "real cluster, whose endpoints controller owns them (needs endpoints get/create/"
                             "update in --lease-namespace, which config/rbac.yaml does not grant)")
    parser.add_argument("--identity", metavar="NAME",
                        help="this replica's holderIdentity in the Lease (default HOSTNAME_PID)")


def run(args) -> int:
    from katib.cli.run import EXIT_ERROR, db_location
    from katib.cluster import ClusterControlPlane, ClusterUnusable, HealthServer, connect_cluster, parse_listen
    from katib.errors import KatibError
    from katib.runtime import one_line

    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from katib.leader import default_identity

    args.identity = args.identity or default_identity()
    try:
        health_at = parse_listen(args.health_listen) if args.health_listen else None
        webhook_at = parse_listen(args.webhook_listen, "--webhook-listen") if getattr(args, "webhook_listen", None) else None
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    if getattr(args, "advertise_address", None) and webhook_at is None:
        print("error: --advertise-address needs --webhook-listen", file=sys.stderr)
        return EXIT_ERROR
    try:
        backend = connect_cluster(args.kubeconfig, identity=args.identity)
    except (ClusterUnusable, KatibError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    plane = ClusterControlPlane(backend, db_url=db_location(args)[0], seed=args.seed)
    elector = health = webhooks = advertised = None
    try:
        if webhook_at is not None:
            import tempfile

            from katib.cluster import start_webhooks
            cert_dir = args.cert_dir or tempfile.mkdtemp(prefix="katib-webhook-")
            try:
                webhooks = start_webhooks(backend, plane, host=webhook_at[0], port=webhook_at[1], cert_dir=cert_dir,
                                          namespace=args.lease_namespace, service=args.webhook_service)
            except (OSError, KatibError, ValueError) as err:
                print(f"error: webhooks on {args.webhook_listen}: {one_line(err)}", file=sys.stderr)
                return EXIT_ERROR
            if args.advertise_address:
                from katib.cluster import advertise
                try:
                    advertise(backend, namespace=args.lease_namespace, service=args.webhook_service,
                              ip=args.advertise_address, port=webhooks.port)
                except KatibError as err:
                    print(f"error: --advertise-address: {one_line(err)}", file=sys.stderr)
                    return EXIT_ERROR
                advertised = (args.advertise_address, webhooks.port)
            print(f"webhooks: {webhooks.url} (certificates in {cert_dir})", file=sys.stderr, flush=True)
        if health_at is not None:
            try:
                health = HealthServer(*health_at, healthy=lambda: not plane.failed.is_set(), ready=lambda: True)
            except OSError as err:
                print(f"error: --health-listen {args.health_listen}: {err.strerror or err}", file=sys.stderr)
                return EXIT_ERROR
            print(f"health: {health.url}/healthz", file=sys.stderr, flush=True)
        if args.leader_elect:
            elector = _elect(backend, args, stop)
            if elector is None:
                return 0   # stopped while standing by
        try:
            plane.start()
        except KatibError as err:
            print(f"error: {one_line(err)}", file=sys.stderr)
            return EXIT_ERROR
        print(f"reconciling on {backend.host} (db {plane.db.url}"
              + (f"; leader {elector.identity})" if elector else ")"), file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            if plane.failed.is_set():
                print(f"error: {plane.failure}", file=sys.stderr)
                return EXIT_ERROR
        return 0
    finally:
        if advertised is not None:
            from katib.cluster import withdraw
            withdraw(backend, namespace=args.lease_namespace, service=args.webhook_service, ip=advertised[0],
                     port=advertised[1])
        if webhooks is not None:
            webhooks.stop()
        if health is not None:
            health.stop()
        plane.stop()
        if elector is not None:
            elector.release()
        backend.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _elect(backend, args, stop: threading.Event):
    """Stand by until this replica leads (the elector then keeps renewing on its thread);
    None if `stop` came first."""
    from katib.leader import LeaderElector

    won = threading.Event()
    elector = LeaderElector(backend, namespace=args.lease_namespace, identity=args.identity,
                            lease_duration=args.lease_duration, on_started_leading=won.set,
                            on_stopped_leading=_lost)
    print(f"waiting to lead: lease {args.lease_namespace}/{elector.name} as {elector.identity}",
          file=sys.stderr, flush=True)
    threading.Thread(target=elector.run, args=(stop,), name="leader-election", daemon=True).start()
    while not won.wait(0.2):
        if stop.is_set():
            return None
    print(f"leading: lease {args.lease_namespace}/{elector.name} acquired as {elector.identity}",
          file=sys.stderr, flush=True)
    return elector


def _lost(reason: str) -> None:
    """Stop reconciling at once: no cleanup that could still write (controller-runtime exits)."""
    try:
        print(f"error: {reason}", file=sys.stderr, flush=True)
    finally:
        os._exit(EXIT_LOST)
