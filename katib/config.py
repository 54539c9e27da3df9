"""katib-config and the default trial-template ConfigMaps.

Same structure as upstream's ConfigMap `katib-config` (shared spec config.md §1): `data` holds
two JSON strings, `metrics-collector-sidecar` (collector kind → entry) and `suggestion`
(algorithm name → entry). As upstream, the JSON is parsed at lookup time, so a broken section
surfaces as an error of the lookup that needs it, with upstream's texts.

Divergence: algorithms run in-process here, so an entry's `image` may be blank or absent; the
key itself is still required (it is what admits an algorithm name or collector kind). Code
that really needs an image (a cluster's sidecar injection) asks with `require_image=True`
and gets upstream's "Required value ..." error. See docs/divergences.md."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from katib.errors import KatibError
from katib.yamljson import yaml_documents, yaml_error_text

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_CONFIG_FILE = CONFIG_DIR / "katib-config.yaml"
DEFAULT_TRIAL_TEMPLATE_FILES = (CONFIG_DIR / "trial-template.yaml",
                                CONFIG_DIR / "trial-template-labeled.yaml")

CONFIGMAP_NAME = "katib-config"
SUGGESTION_KEY = "suggestion"
COLLECTOR_KEY = "metrics-collector-sidecar"

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DEFAULT_PULL_POLICY = "IfNotPresent"
DEFAULT_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "10Mi", "ephemeral-storage": "500Mi"},
    "limits": {"cpu": "500m", "memory": "100Mi", "ephemeral-storage": "5Gi"},
}
_ZERO_QUANTITY = re.compile(r"^[+-]?0*(\.0*)?([a-zA-Z]+)?$")


class ConfigError(KatibError):
    """katib-config is missing something or cannot be parsed; the text is upstream's."""


@dataclass(frozen=True)
class ImageConfig:
    """One entry of either section (sidecar or suggestion), with upstream's defaults applied."""
    image: str = ""
    image_pull_policy: str = DEFAULT_PULL_POLICY
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    service_account_name: str = ""     # suggestion section only
    command: tuple[str, ...] = ()      # sidecar section only (ours): the collector's command, when
                                       # the image's entrypoint is not the collector


class KatibConfig:
    """A snapshot of the katib-config ConfigMap's `data`."""

    def __init__(self, data: dict[str, Any] | None = None):
        self.data: dict[str, Any] = dict(data or {})

    @classmethod
    def from_configmap(cls, configmap: dict) -> KatibConfig:
        return cls((configmap or {}).get("data") or {})

    @classmethod
    def load(cls, path: str | Path | None = None) -> KatibConfig:
        """Read a YAML file holding the ConfigMap (ours, config/katib-config.yaml, by default)."""
        path = Path(path) if path is not None else DEFAULT_CONFIG_FILE
        try:
            docs = load_yaml_documents(path)
        except OSError as err:
            raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {yaml_error_text(err)}") from None
        for doc in docs:
            if doc.get("kind") == "ConfigMap" and (doc.get("metadata") or {}).get("name") == CONFIGMAP_NAME:
                return cls.from_configmap(doc)
        raise ConfigError(f'{path}: no ConfigMap "{CONFIGMAP_NAME}" in this file')

    def to_configmap(self, namespace: str = "kubeflow") -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace},
                "data": dict(self.data)}

    # ------------------------------------------------------------------------------- lookups

    def algorithm_names(self) -> list[str]:
        """The algorithm names this config admits, in the config's order."""
        return list(self._section(SUGGESTION_KEY, "Failed to find suggestions config in configmap katib-config"))

    def collector_kinds(self) -> list[str]:
        return list(self._section(COLLECTOR_KEY, "Failed to find metrics collector configuration in configmap katib-config"))

    def suggestion(self, name: str, *, require_image: bool = False) -> ImageConfig:
        section = self._section(SUGGESTION_KEY, "Failed to find suggestions config in configmap katib-config")
        if name not in section:
            raise ConfigError(f"Failed to find algorithm {name} config in configmap katib-config")
        entry = _entry(section[name], SUGGESTION_KEY, name)
        if require_image and not entry.image:
            raise ConfigError(f"Required value for image configuration of algorithm name {name}")
        return entry

    def collector(self, kind: str, *, require_image: bool = False) -> ImageConfig:
        section = self._section(COLLECTOR_KEY, "Failed to find metrics collector configuration in configmap katib-config")
        if kind not in section:
            raise ConfigError(f"Cannot support metricsCollector injection for kind {kind}")
        entry = _entry(section[kind], COLLECTOR_KEY, kind)
        if require_image and not entry.image:
            raise ConfigError(f"Required value for imageconfiguration of metricsCollector kind {kind}")
        return entry

    def _section(self, key: str, missing: str) -> dict:
        text = self.data.get(key)
        if text is None:
            raise ConfigError(missing)
        try:
            section = json.loads(text) if isinstance(text, str) else text
        except ValueError as err:
            raise ConfigError(f"invalid JSON in {key} of configmap katib-config: {err}") from None
        if not isinstance(section, dict):
            raise ConfigError(f"{key} of configmap katib-config must be a JSON object")
        return section


def _entry(raw: Any, section: str, key: str) -> ImageConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{section} entry {key} of configmap katib-config must be a JSON object")
    policy = raw.get("imagePullPolicy")
    return ImageConfig(
        image=str(raw.get("image") or "").strip(),
        image_pull_policy=policy if policy in PULL_POLICIES else DEFAULT_PULL_POLICY,
        resources=_resources(raw.get("resources")),
        service_account_name=str(raw.get("serviceAccountName") or "").strip()
        if section == SUGGESTION_KEY else "",
        command=tuple(str(a) for a in raw.get("command") or ()) if section == COLLECTOR_KEY
        and isinstance(raw.get("command"), list) else (),
    )


def _resources(raw: Any) -> dict[str, dict[str, str]]:
    """Upstream's defaults, overridden by each non-zero cpu/memory/ephemeral-storage given."""
    out = {group: dict(values) for group, values in DEFAULT_RESOURCES.items()}
    raw = raw if isinstance(raw, dict) else {}
    for group, values in out.items():
        given = raw.get(group) if isinstance(raw.get(group), dict) else {}
        for name in values:
            quantity = given.get(name)
            if quantity is not None and not _ZERO_QUANTITY.match(str(quantity)):
                values[name] = str(quantity)
    return out


# ------------------------------------------------------------------------ trial-template ConfigMaps

def load_yaml_documents(path: str | Path) -> list[dict]:
    """Every mapping document of a YAML file (empty documents skipped)."""
    text = Path(path).read_text(encoding="utf-8")
    return [d for d in yaml_documents(text) if isinstance(d, dict)]


def default_trial_templates(namespace: str = "kubeflow") -> list[dict]:
    """The shipped trial-template ConfigMaps (upstream's two), placed in `namespace`."""
    maps = []
    for path in DEFAULT_TRIAL_TEMPLATE_FILES:
        for doc in load_yaml_documents(path):
            if doc.get("kind") == "ConfigMap":
                doc.setdefault("metadata", {})["namespace"] = namespace
                maps.append(doc)
    return maps


def default_configmaps(namespace: str = "kubeflow") -> list[dict]:
    """What Katib's manifests install in its namespace: katib-config and the trial templates."""
    return [KatibConfig.load(None).to_configmap(namespace), *default_trial_templates(namespace)]


def get_configmap_from(configmaps: Iterable[dict]) -> Callable[[str, str], dict | None]:
    """A `get_configmap(namespace, name)` over a fixed set of ConfigMap dicts (later wins)."""
    table: dict[tuple[str, str], dict] = {}
    for cm in configmaps:
        meta = cm.get("metadata") or {}
        table[(meta.get("namespace") or "default", meta.get("name") or "")] = cm

    def get_configmap(namespace: str, name: str) -> dict | None:
        return table.get((namespace, name))

    return get_configmap
