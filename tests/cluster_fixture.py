"""The cluster topology on one machine: `katib.py --fake serve --api-only` (the stand-in cluster),
Katib's admission installed into it from config/ (Service + webhook configurations), and the
controller `katib.py serve --kubeconfig ... --webhook-listen 127.0.0.1:0 --advertise-address
127.0.0.1`, which serves the webhooks and publishes its address as the Service's Endpoints
(the fake resolves `clientConfig.service` through them).

    install_admission(server)                    # kubectl apply -f config/service.yaml -f config/webhooks.yaml
    cmd = [..., "serve", "--kubeconfig", K, *WEBHOOK_ARGS]"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_ARGS = ("--webhook-listen", "127.0.0.1:0", "--advertise-address", "127.0.0.1")


def install_admission(server) -> None:
    """What `kubectl apply -k config/` installs for admission: the webhook Service and the two
    webhook configurations (failurePolicy Fail for Experiments: start the controller before
    creating any)."""
    server.kubectl("apply", "-f", str(ROOT / "config" / "service.yaml"), "-f", str(ROOT / "config" / "webhooks.yaml"))
