"""`katib.py --fake [--db PATH] get experiments|trials|suggestions [NAME]`: what the database
holds, shown as `kubectl get` shows it, for users without kubectl.

It reads the stored objects without taking control of the database (katib.db.control), so it
works while a `run` or `serve` holds it, and shows what that process has committed. It never
creates a database: a missing file is an error (exit 2). Columns are Katib's printer columns
(the CRDs' additionalPrinterColumns: Experiment NAME STATUS AGE; Trial NAME TYPE STATUS AGE;
Suggestion NAME TYPE STATUS REQUESTED ASSIGNED AGE); `-o wide` adds, for experiments, the best
trial, its objective and its assignments, and for trials their assignments and metrics (the
objective and the additional metrics). Output, messages and exit codes follow kubectl: a name
that is not there is `error: experiments.kubeflow.org "x" not found` (exit 1); nothing to list
is `No resources found in default namespace.` on stderr (exit 0)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from katib.errors import KatibError

GROUP = "kubeflow.org"
EXIT_OK, EXIT_NOT_FOUND, EXIT_ERROR = 0, 1, 2

# kind → plural; every spelling kubectl accepts for it: singular, plural, Kind, with .group.
KINDS = {"Experiment": "experiments", "Trial": "trials", "Suggestion": "suggestions"}
OUTPUTS = ("wide", "yaml", "json", "name")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "get", help="show experiments, trials or suggestions stored in the database",
        description="Show the Experiments, Trials or Suggestions of the fake backend's database "
                    "(requires --fake) as `kubectl get` does, also while a run or serve holds it. "
                    "Exit codes: 0 shown (also when there is nothing to show), 1 NAME not found, "
                    "2 bad arguments or an unusable database.")
    p.add_argument("resource", metavar="RESOURCE",
                   help="experiments, trials or suggestions (singular, plural or kind, as kubectl)")
    p.add_argument("name", metavar="NAME", nargs="?", help="the one object to show")
    p.add_argument("--db", dest="get_db", metavar="PATH",
                   help="database file or URL (default katib.db); it is only read, never created")
    p.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument("-o", "--output", choices=OUTPUTS, help="wide, yaml, json or name (default: a table)")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector, e.g. experiment=random-example")
    p.add_argument("--experiment", metavar="EXP",
                   help="trials of experiment EXP (the label selector experiment=EXP)")
    p.add_argument("--no-headers", action="store_true", help="no header line in table output")
    p.set_defaults(handler=run)


def run(args) -> int:
    if not getattr(args, "fake", False):
        return fail("get reads the local fake backend's database: use `katib.py --fake get ...`")
    kind = kind_of(args.resource)
    if kind is None:
        return fail(f'the server doesn\'t have a resource type "{args.resource}" '
                    f"(katib.py get knows experiments, trials and suggestions)")
    selector = args.selector
    if args.experiment is not None:
        if kind != "Trial":
            return fail("--experiment selects trials (the label experiment=EXP): use it with `get trials`")
        selector = ",".join(filter(None, [selector, f"experiment={args.experiment}"]))
    if args.name and args.all_namespaces:
        return fail("a resource cannot be retrieved by name across all namespaces")
    if args.name and selector:
        return fail("name cannot be provided when a selector is specified")
    try:
        store = read_store(getattr(args, "get_db", None) or getattr(args, "db", None))
    except KatibError as err:
        return fail(str(err))
    namespace = None if args.all_namespaces else args.namespace
    if args.name:
        from katib.errors import NotFound
        try:
            objects = [store.get(kind, args.namespace, args.name, readonly=True)]
        except NotFound:
            print(f'error: {KINDS[kind]}.{GROUP} "{args.name}" not found', file=sys.stderr)
            return EXIT_NOT_FOUND
    else:
        objects = sorted(store.list(kind, namespace, labels=selector or None),
                         key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    print_objects(kind, objects, output=args.output, single=bool(args.name), namespace=namespace,
                  headers=not args.no_headers)
    return EXIT_OK


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def kind_of(resource: str) -> str | None:
    text = resource.lower()
    for suffix in (f".v1alpha3.{GROUP}", f".{GROUP}"):
        if text.endswith(suffix):
            text = text[:-len(suffix)]
    for kind, plural in KINDS.items():
        if text in (kind.lower(), plural):
            return kind
    return None


# -- reading the store -----------------------------------------------------------------------
def read_store(url: str | None):
    """The stored objects of the database at `url` (default katib.db), read without taking
    control of it and without creating anything: a StoredObjects (get/list as the fake backend)."""
    from katib.db import DatabaseError, ObjectTable, sqlite_path
    from katib.db.engine import DEFAULT_SQLITE_PATH, open_database
    from katib.runtime import StoredObjects

    url = url or DEFAULT_SQLITE_PATH
    if url == ":memory:":
        raise DatabaseError("an in-memory database holds nothing to show: pass --db with a file or URL")
    path = sqlite_path(url)
    if path is not None and not Path(path).expanduser().is_file():
        raise DatabaseError(f"database {Path(path).expanduser().absolute()} does not exist "
                            f"(`katib.py --fake run FILE --db {path}` creates it)")
    db = open_database(url)
    try:
        return StoredObjects(ObjectTable(db).load_all())
    except DatabaseError as err:
        if any(text in str(err).lower() for text in ("no such table", "doesn't exist", "does not exist")):
            raise DatabaseError(f"database {db.where} holds no katib objects (no objects table)") from None
        raise
    finally:
        db.close()


# -- printing --------------------------------------------------------------------------------
def print_objects(kind: str, objects: list[dict], *, output: str | None, single: bool,
                  namespace: str | None, headers: bool = True, stream=None,
                  now: float | None = None) -> None:
    """As kubectl prints them: a table (or nothing and `No resources found` on stderr), names,
    or the object (`single`) or a v1 List as JSON (4-space indent) or YAML, keys sorted."""
    stream = stream or sys.stdout
    if output in ("json", "yaml"):
        doc = objects[0] if single else {"apiVersion": "v1", "items": objects, "kind": "List",
                                         "metadata": {"resourceVersion": ""}}
        if output == "json":
            stream.write(json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=False) + "\n")
        else:
            from katib.yamljson import yaml_dump
            stream.write(yaml_dump(json.loads(json.dumps(doc, sort_keys=True))))
        return
    if output == "name":
        for obj in objects:
            stream.write(f"{kind.lower()}.{GROUP}/{obj['metadata']['name']}\n")
        return
    if not objects:
        where = f" in {namespace} namespace." if namespace is not None else ""
        print(f"No resources found{where}", file=sys.stderr)
        return
    header, rows = table(kind, objects, wide=output == "wide", with_namespace=namespace is None, now=now)
    stream.write(tabulate(([header] if headers else []) + rows))


def table(kind: str, objects: list[dict], *, wide: bool = False, with_namespace: bool = False,
          now: float | None = None) -> tuple[list[str], list[list[str]]]:
    """The header and rows `kubectl get` prints: the cells of the API server's Table
    (katib.apiserver.tables: Katib's printer columns), as kubectl's printTable shows them
    (upper-case headers, priority columns with -o wide only, an absent value empty, a string
    cut at its first line break), NAMESPACE first with -A; -o wide adds WIDE_COLUMNS."""
    from katib.apiserver.tables import table as server_table

    served = server_table(kind, objects, include_object="None", now=now)
    shown = [i for i, col in enumerate(served["columnDefinitions"]) if wide or not col.get("priority")]
    extra = WIDE_COLUMNS.get(kind, []) if wide else []
    header = [served["columnDefinitions"][i]["name"].upper() for i in shown] + [name for name, _ in extra]
    rows = [[cell_text(row["cells"][i]) for i in shown] + [fn(obj) for _, fn in extra]
            for obj, row in zip(objects, served["rows"])]
    if with_namespace:
        header = ["NAMESPACE"] + header
        rows = [[obj["metadata"].get("namespace", "")] + row for obj, row in zip(objects, rows)]
    return header, rows


def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    for i, char in enumerate(text):
        if char in "\f\n\r":
            return text[:i] + "..."
    return text


def lookup(obj, path: tuple):
    """The value at `path` (keys), None where absent."""
    for step in path:
        obj = obj.get(step) if isinstance(obj, dict) else None
        if obj is None:
            return None
    return obj


def tabulate(rows: list[list[str]]) -> str:
    """kubectl's tabwriter (min width 6, padding 3): every column but the last padded."""
    if not rows:
        return ""
    widths = [max(6, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    return "".join("".join(v.ljust(w) for v, w in zip(r, widths)) + r[-1] + "\n" for r in rows)


# -- -o wide ---------------------------------------------------------------------------------
def _metric_text(metrics: list[dict], only: str | None = None) -> str:
    from katib.report import fmt_value

    shown = []
    for m in metrics or ():
        if only is None or m.get("name") == only:
            try:
                value = float(m.get("value", 0.0))   # a zero value is omitted in JSON
            except (TypeError, ValueError):
                value = None
            shown.append(f"{m.get('name')}={fmt_value(value)}")
    return ",".join(shown)


def _assignments_text(assignments: list[dict]) -> str:
    return ",".join(f"{a.get('name')}={a.get('value')}" for a in assignments or ())


def _best(exp: dict) -> dict:
    return (exp.get("status") or {}).get("currentOptimalTrial") or {}


def _best_objective(exp: dict) -> str:
    metric = lookup(exp, ("spec", "objective", "objectiveMetricName"))
    return _metric_text((_best(exp).get("observation") or {}).get("metrics"), only=metric) if metric else ""


WIDE_COLUMNS = {
    "Experiment": [("BEST TRIAL", lambda e: _best(e).get("bestTrialName") or ""),
                   ("OBJECTIVE", _best_objective),
                   ("ASSIGNMENTS", lambda e: _assignments_text(_best(e).get("parameterAssignments")))],
    "Trial": [("ASSIGNMENTS", lambda t: _assignments_text(lookup(t, ("spec", "parameterAssignments")))),
              ("METRICS", lambda t: _metric_text(lookup(t, ("status", "observation", "metrics"))))],
    "Suggestion": [("ALGORITHM", lambda s: lookup(s, ("spec", "algorithmName")) or "")],
}
