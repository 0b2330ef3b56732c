"""The house rules, read from the source: rooms a newcomer can find their way in.

No module over 600 lines, no function body over 100 lines and at most three over 80 (docstrings
excluded), no import cycle between the package's modules (imports inside functions count), the
public names unchanged, every file the README links present, and benchmarks/ at most 40% of the
package's size.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import eqx_ffn

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "eqx_ffn"

PUBLIC = {
    "ACTIVATIONS", "FFN", "INITS", "LOSSES", "OPTIMIZERS", "CompilationCacheWarning", "Dense",
    "DivergenceWarning", "GaussNewton", "History", "LevenbergMarquardt", "ModelFileError",
    "NonFiniteLossWarning", "Objective", "OptaxSolver", "Solver", "Standardized", "Standardizer",
    "datasets", "enable_compilation_cache", "ensemble_member", "ensemble_predict", "fit",
    "fit_ensemble", "jacobian", "linearize", "load", "make_step", "plot", "predict",
    "predict_proba", "ravel", "read_header", "save", "summary",
}  # fmt: skip


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules(PACKAGE)


def _lines(path: Path) -> int:
    return path.read_text(encoding="utf-8").count("\n")


def _body_lengths(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            start = first.end_lineno + 1 if is_doc else first.lineno  # type: ignore[operator]
            out.append((f"{path.relative_to(ROOT)}:{node.name}", node.end_lineno - start + 1))
    return out


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target, *(f"{target}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found.update(c for c in candidates if c in MODULES and c != name)
    return found


def test_no_module_over_600_lines():
    big = {str(p.relative_to(ROOT)): _lines(p) for p in MODULES.values() if _lines(p) > 600}
    assert not big, big


def test_function_bodies_are_short():
    lengths = [item for p in MODULES.values() for item in _body_lengths(p)]
    assert not [item for item in lengths if item[1] > 100], "bodies over 100 lines"
    over_80 = [item for item in lengths if item[1] > 80]
    assert len(over_80) <= 3, over_80


def test_at_least_three_subpackages():
    subpackages = [p.parent for p in PACKAGE.glob("*/__init__.py")]
    assert len(subpackages) >= 3, subpackages


def test_no_import_cycle():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    graph["eqx_ffn"] = set()  # the root only re-exports (lazily); nothing inside imports it
    assert not [n for n, deps in graph.items() if "eqx_ffn" in deps], "imports of the root"
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_public_names_kept():
    assert PUBLIC <= set(eqx_ffn.__all__)  # the 35 names of the last release, none lost
    for name in PUBLIC:
        assert getattr(eqx_ffn, name) is not None


def test_files_the_readme_and_code_cite_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    cited = re.findall(r"`((?:docs|benchmarks|examples)/[\w./-]+\.\w+)`", readme)
    for path in PACKAGE.rglob("*.py"):
        cited += re.findall(r"\b((?:docs|benchmarks)/[\w./-]+\.(?:md|json|png))", path.read_text())
    missing = sorted({c for c in links + cited if not (ROOT / c).exists()})
    assert not missing, missing


def test_benchmarks_are_at_most_40_percent_of_the_package():
    package = sum(_lines(p) for p in MODULES.values())
    benchmarks = sum(_lines(p) for p in (ROOT / "benchmarks").rglob("*.py"))
    assert benchmarks <= 0.4 * package, (benchmarks, package)
