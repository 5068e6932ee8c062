"""Structural rules the issues set for the codebase, checked so they stay true."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "icpkit"


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_every_icp_function_is_under_80_lines():
    long = [
        f"{p.name}:{f.name} ({f.end_lineno - f.lineno + 1} lines)"
        for p in sorted((SRC / "icp").glob("*.py"))
        for f in _functions(p)
        if f.end_lineno - f.lineno + 1 >= 80
    ]
    assert not long, long


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_icp_and_training_never_touch_mlflow_or_the_registry():
    files = [*(SRC / "icp").glob("*.py"), SRC / "training.py", SRC / "workflow.py", *(SRC / "models").glob("*.py")]
    offenders = {
        p.name: sorted(m for m in _imports(p) if m.split(".")[0] == "mlflow" or m.startswith("icpkit.registry"))
        for p in files
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_library_code_never_reads_the_environment():
    readers = [
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        if "os.environ" in p.read_text() or "os.getenv" in p.read_text()
    ]
    # verify.py reads MLFLOW_TRACKING_URI only in its __main__ block (a command, not library code).
    assert readers in ([], ["registry/verify.py"]), readers
