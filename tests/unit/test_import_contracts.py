"""The layering is enforced: the project's .importlinter contracts hold, and the home-made one catches what it
should (a synthetic import graph, so no broken code has to be written to prove it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from devtools.importlinter_contracts import PublicModulesContract

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_keeps_every_contract():
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _graph(imports: list[tuple[str, str]]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for module in ["functions", "functions.files", "functions.files.service", "functions.files.tree",
                   "functions.search", "functions.search.reindex", "functions.graph", "functions.graph.registry",
                   "functions.apps", "functions.apps.manager", "mobile_api", "mobile_api.ops", "tests",
                   "tests.test_tree"]:
        graph.add_module(module)
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported, line_number=3, line_contents=f"import {imported}")
    return graph


def _contract(**options) -> PublicModulesContract:
    base = {"containers": ["functions"], "public": ["service"], "also_public": ["functions.graph.registry"],
            "importers": ["functions", "mobile_api"]}
    return PublicModulesContract(name="public", session_options={"root_packages": ["functions"]},
                                 contract_options={**base, **options})


def test_importing_another_functions_internals_breaks_the_contract():
    check = _contract().check(_graph([("functions.search.reindex", "functions.files.tree"),
                                      ("mobile_api.ops", "functions.files.tree")]), verbose=False)
    assert not check.kept
    assert {(x["importer"], x["imported"]) for x in check.metadata["links"]} == {
        ("functions.search.reindex", "functions.files.tree"), ("mobile_api.ops", "functions.files.tree")}


def test_public_modules_own_internals_named_interfaces_and_tests_are_allowed():
    check = _contract().check(_graph([
        ("functions.search.reindex", "functions.files.service"),  # the public service module
        ("functions.files.service", "functions.files.tree"),  # a package's own internals
        ("functions.apps.manager", "functions.graph.registry"),  # a named interface (also_public)
        ("mobile_api.ops", "functions.files"),  # the package itself (create_app)
        ("tests.test_tree", "functions.files.tree"),  # tests are not among the checked importers
    ]), verbose=False)
    assert check.kept, check.metadata["links"]


SERVER = {"gateway", "functions", "mobile_api", "push", "runtime", "tests", "bench", "devtools"}


def _imported_roots(path: Path) -> set[str]:
    import ast

    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_bundled_apps_examples_and_the_sdk_import_nothing_of_the_server():
    """They talk HTTP (and may use sdk/). Each sits in its own directory, not importable from the repository
    root, so import-linter cannot see them: every Python file of apps/, examples/ and sdk/ is read instead,
    whatever apps are added later (their own tests/ directories included)."""
    files = [p for top in ("apps", "examples", "sdk") for p in sorted((ROOT / top).rglob("*.py"))
             if ".venv" not in p.parts and "node_modules" not in p.parts]
    assert files, "no bundled apps or examples found"
    offending = {str(p.relative_to(ROOT)): sorted(_imported_roots(p) & SERVER) for p in files}
    assert {k: v for k, v in offending.items() if v} == {}
