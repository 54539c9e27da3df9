"""Imports go one way (STYLE.md §1): pure layers never reach the edges; the collector is
standalone. Walks every import statement with `ast`, function-local imports included."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("katib.backends", "katib.db", "katib.webhook", "katib.controllers", "katib.cli", "katib.runtime",
         "aiohttp", "kubernetes", "peewee")
PURE_LAYERS = ("katib/api", "katib/algorithms", "katib/gotemplate", "collector")
BASE_UTILITIES = ("errors", "serde", "yamljson", "clock", "logs", "config")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def files_under(*relative: str) -> list[Path]:
    out = []
    for rel in relative:
        target = ROOT / rel
        out += sorted(target.rglob("*.py")) if target.is_dir() else ([target] if target.exists() else [])
    return out


def hits(names: set[str], prefixes) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


def test_the_walker_sees_function_local_and_relative_imports():
    assert "katib.algorithms.registry.validate_space" in imports(ROOT / "katib/api/validation.py")
    assert "katib.gotemplate.parse" in imports(ROOT / "katib/api/templates.py")
    assert "katib.algorithms.base.SuggestReply" in imports(ROOT / "katib/algorithms/registry.py")


@pytest.mark.parametrize("path", files_under(*PURE_LAYERS), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_layers_do_not_import_edges(path):
    assert hits(imports(path), EDGES) == []


@pytest.mark.parametrize("path", files_under("collector"), ids=lambda p: str(p.relative_to(ROOT)))
def test_collector_imports_nothing_from_katib(path):
    assert hits(imports(path), ["katib"]) == []


@pytest.mark.parametrize("path", files_under(*(f"katib/{m}.py" for m in BASE_UTILITIES)),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_base_utilities_import_only_each_other(path):
    allowed = {f"katib.{m}" for m in BASE_UTILITIES}
    inside = hits(imports(path), ["katib"])
    assert [n for n in inside if n != "katib" and n not in allowed
            and n.rpartition(".")[0] not in allowed] == []


@pytest.mark.parametrize("path", files_under("katib/controllers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_controllers_do_not_know_which_backend_they_run_on(path):
    concrete = ("katib.backends.fake", "katib.backends.fake_store", "katib.backends.kube",
                "katib.backends.kubelet", "katib.backends.local_runner", "katib.runtime", "katib.cli",
                "kubernetes", "aiohttp", "peewee")
    assert hits(imports(path), concrete) == []


@pytest.mark.parametrize("path", files_under("katib/backends", "katib/db"), ids=lambda p: str(p.relative_to(ROOT)))
def test_edges_do_not_import_the_controllers(path):
    assert hits(imports(path), ["katib.controllers", "katib.cli"]) == []


def test_the_command_line_does_not_load_scipy_until_an_algorithm_needs_it():
    """scipy.stats alone costs most of a second: `validate` and friends must not pay for it."""
    import subprocess
    import sys

    code = ("import sys, katib.cli, katib.algorithms.registry, katib.runtime; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Each third-party edge library lives in one place (STYLE.md §1).
HOMES = {
    "kubernetes": ("katib/backends/kube.py", "katib/backends/kube_"),
    "aiohttp": ("katib/apiserver/", "katib/webhook/"),
    "peewee": ("katib/db/",),
    "playhouse": ("katib/db/",),
}


@pytest.mark.parametrize("path", files_under("katib", "katib.py", "collector"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_edge_libraries_are_imported_only_in_their_home(path):
    rel = str(path.relative_to(ROOT))
    misplaced = [lib for lib, homes in HOMES.items()
                 if hits(imports(path), [lib]) and not rel.startswith(homes)]
    assert misplaced == []
