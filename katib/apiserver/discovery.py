"""Discovery documents (/api, /apis, /api/v1, /apis/<group>/<version>) from the resource table.

Only the legacy (unaggregated) forms are served: kubectl asks for the aggregated
APIGroupDiscoveryList first and, answered with a plain APIGroupList, falls back to one
request per group version."""
from __future__ import annotations

from katib.backends.resources import RESOURCES, Resource

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCE_VERBS = ["get", "patch", "update"]
VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0+katib-fake", "gitCommit": "",
           "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z", "goVersion": "",
           "compiler": "python", "platform": "linux/amd64", "emulationMajor": "1", "emulationMinor": "37",
           "minCompatibilityMajor": "1", "minCompatibilityMinor": "36"}


def by_path() -> dict[tuple[str, str, str], Resource]:
    """(group, version, plural) → Resource."""
    return {(r.group, r.version, r.plural): r for r in RESOURCES.values()}


def group_versions() -> dict[str, list[str]]:
    """group → its versions, preferred first (GA before beta before alpha, as Kubernetes orders)."""
    out: dict[str, list[str]] = {}
    for res in RESOURCES.values():
        versions = out.setdefault(res.group, [])
        if res.version not in versions:
            versions.append(res.version)
    for versions in out.values():
        versions.sort(key=_version_priority)
    return out


def _version_priority(version: str) -> tuple:
    import re
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, version)
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0))


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> dict:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_group_list() -> dict:
    groups = [_group(g, vs) for g, vs in group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(name: str) -> dict | None:
    versions = group_versions().get(name)
    if not name or versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def api_resource_list(group: str, version: str) -> dict | None:
    resources = []
    for res in RESOURCES.values():
        if res.group != group or res.version != version:
            continue
        entry = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced,
                 "kind": res.kind, "verbs": VERBS}
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.categories:
            entry["categories"] = list(res.categories)
        resources.append(entry)
        if res.has_status:
            resources.append({"name": f"{res.plural}/status", "singularName": "", "namespaced": res.namespaced,
                              "kind": res.kind, "verbs": SUBRESOURCE_VERBS})
    if not resources:
        return None
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
