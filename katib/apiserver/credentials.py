"""The bearer token and the kubeconfig that let local clients in (and nobody else).

The token is random (256 bits), kept mode 0600 next to the database and reused on restart, so
a kubeconfig written once keeps working; the kubeconfig holds the server URL, the CA and the
token, also mode 0600."""
from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from katib.apiserver.tls import write_private_file

CONTEXT = "katib-fake"


def ensure_token(directory: Path) -> str:
    path = Path(directory) / "token"
    if path.exists():
        token = path.read_text().strip()
        if len(token) >= 32:
            return token
    token = secrets.token_urlsafe(32)
    write_private_file(path, (token + "\n").encode())
    return token


def kubeconfig_document(*, server: str, ca_pem: bytes, token: str, name: str = CONTEXT) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(path: Path, *, server: str, ca_pem: bytes, token: str) -> Path:
    """Write (mode 0600, atomically) a kubeconfig for `server`; JSON is valid kubeconfig YAML."""
    doc = kubeconfig_document(server=server, ca_pem=ca_pem, token=token)
    write_private_file(Path(path), (json.dumps(doc, indent=2) + "\n").encode())
    return Path(path)
