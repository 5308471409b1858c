"""Runs flask-restful 0.3.10's own test suite, taken from its sdist at test time.

Runs of the same tests, each in its own pytest subprocess:
  stock            the sdist's own flask_restful package
  ours             flask_restful_async, importable as `flask_restful` through shim/
  ours_async       ours again, with the resource tests rewritten to AsyncResource and
                   `async def` methods (see `asyncify`)
  ours_asgi        ours, every test-client request going through our ASGI adapter on an
                   event loop (sync views in its thread pool)
  ours_async_asgi  the AsyncResource rewrite through the ASGI adapter: the coroutines run
                   on the loop through the async request pipeline
Both runs get the same environment fixes (support/): a `nose` stand-in, nose-style
generator tests, and flask.signals.signals_available, which Flask 2.3 removed.

The sdist is downloaded with pip into CACHE (default tests/compat/.cache/, ignored by git;
FRA_COMPAT_CACHE overrides it) and reused while present.
"""
import ast
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VERSION = "0.3.10"
CACHE = Path(os.environ.get("FRA_COMPAT_CACHE", HERE / ".cache"))
SDIST_NAME = "Flask-RESTful-%s" % VERSION

#: Upstream test modules that define resources: the ones rewritten for AsyncResource.
ASYNC_MODULES = ("test_api.py", "test_api_with_blueprint.py", "test_accept.py", "test_cors.py")
HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def fetch_sdist(cache: Path = CACHE) -> Path:
    """The unpacked sdist directory, downloading it with pip when not cached."""
    root = cache / SDIST_NAME
    if (root / "tests").is_dir() and (root / "flask_restful").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    archives = list(cache.glob("[Ff]lask[-_][Rr][Ee][Ss][Tt]ful-%s.tar.gz" % VERSION))
    if not archives:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
                        "--no-deps", "--disable-pip-version-check", "-q",
                        "flask-restful==%s" % VERSION, "-d", str(cache)], check=True)
        archives = list(cache.glob("[Ff]lask[-_][Rr][Ee][Ss][Tt]ful-%s.tar.gz" % VERSION))
    if not archives:
        raise RuntimeError("pip did not produce the flask-restful %s sdist in %s" % (VERSION, cache))
    with tarfile.open(archives[0]) as tar:
        tar.extractall(cache, filter="data")
    unpacked = [p for p in cache.iterdir() if p.is_dir() and p.name.lower() == SDIST_NAME.lower()]
    if not unpacked:
        raise RuntimeError("sdist did not unpack to %s" % root)
    return unpacked[0]


class _Asyncify(ast.NodeTransformer):
    """flask_restful.Resource → flask_restful.AsyncResource; in classes built on it, the
    HTTP-verb methods become `async def`."""

    def __init__(self) -> None:
        self.classes = 0
        self.methods = 0

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if (node.attr == "Resource" and isinstance(node.value, ast.Name)
                and node.value.id == "flask_restful"):
            node.attr = "AsyncResource"
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.generic_visit(node)
        if not any(isinstance(b, ast.Attribute) and b.attr == "AsyncResource" for b in node.bases):
            return node
        self.classes += 1
        body = []
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name in HTTP_METHODS:
                self.methods += 1
                item = ast.AsyncFunctionDef(**{f: getattr(item, f) for f in item._fields})
            body.append(item)
        node.body = body
        return node


def asyncify(source: str) -> Tuple[str, int, int]:
    """Rewrite one upstream test module for AsyncResource; (source, classes, methods)."""
    tree = ast.parse(source)
    transformer = _Asyncify()
    tree = ast.fix_missing_locations(transformer.visit(tree))
    return ast.unparse(tree), transformer.classes, transformer.methods


def prepare_run(kind: str, sdist: Path, cache: Path = CACHE) -> Tuple[Path, Dict[str, int]]:
    """A fresh directory holding the upstream tests for one run, and rewrite counts."""
    run_dir = cache / "runs" / kind
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    shutil.copytree(sdist / "tests", run_dir / "tests")
    (run_dir / "pytest.ini").write_text("[pytest]\n")
    counts = {"classes": 0, "methods": 0}
    if kind == "stock":
        shutil.copytree(sdist / "flask_restful", run_dir / "flask_restful")
    elif kind in ("ours_async", "ours_async_asgi"):
        for name in ASYNC_MODULES:
            path = run_dir / "tests" / name
            source, classes, methods = asyncify(path.read_text())
            path.write_text(source)
            counts["classes"] += classes
            counts["methods"] += methods
    return run_dir, counts


def start_run(kind: str, run_dir: Path) -> subprocess.Popen:
    """Start pytest on a prepared run directory (results land in run_dir)."""
    paths = [str(HERE / "support")]
    if kind != "stock":
        paths.insert(0, str(HERE / "shim"))
        paths.append(str(REPO))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["FRA_COMPAT_IMPORT_REPORT"] = str(run_dir / "import-report.txt")
    env.pop("FRA_COMPAT_VIA_ASGI", None)
    if kind.endswith("_asgi"):
        env["FRA_COMPAT_VIA_ASGI"] = "1"
    cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "upstream_plugin",
           "-p", "no:cacheprovider", "-c", str(run_dir / "pytest.ini"),
           "--rootdir", str(run_dir), "--junitxml", str(run_dir / "results.xml"),
           "-o", "junit_family=xunit2"]
    return subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def read_results(run_dir: Path) -> Dict[str, str]:
    """test id → 'passed' | 'failed' | 'error' | 'skipped', from the run's JUnit XML."""
    outcomes: Dict[str, str] = {}
    for case in ET.parse(run_dir / "results.xml").getroot().iter("testcase"):
        test_id = "%s::%s" % (case.get("classname"), case.get("name"))
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
        outcomes[test_id] = outcome
    return outcomes


def imported_package(run_dir: Path) -> List[str]:
    """[module name, file] of what `import flask_restful` gave in the run."""
    return (run_dir / "import-report.txt").read_text().split("\n")[:2]


KINDS = ("stock", "ours", "ours_async", "ours_asgi", "ours_async_asgi")


def asgi_paths(run_dir: Path) -> Dict[str, int]:
    """How many requests of a run through the ASGI adapter took the loop / thread path."""
    path = run_dir / "import-report.txt.paths"
    if not path.exists():
        return {}
    return {name: int(count) for name, count in
            (line.split() for line in path.read_text().splitlines() if line)}


def run_all(kinds: Iterable[str] = KINDS) -> Dict[str, dict]:
    """Run the suites side by side; per kind: outcomes, output, import report, counts."""
    sdist = fetch_sdist()
    started = {}
    for kind in kinds:
        run_dir, counts = prepare_run(kind, sdist)
        started[kind] = (run_dir, counts, start_run(kind, run_dir))
    runs = {}
    for kind, (run_dir, counts, proc) in started.items():
        output, _ = proc.communicate(timeout=600)
        runs[kind] = {"outcomes": read_results(run_dir), "output": output,
                      "imported": imported_package(run_dir), "counts": counts,
                      "paths": asgi_paths(run_dir),
                      "returncode": proc.returncode}
    return runs
