"""Every Python block in the README runs as written (each on its own, in a fresh directory).

A top-level expression whose line ends in a quoted value (``... .content  # 'frog ...'``, or
``# -> 'frog', ...``) must produce it: its first word is compared with the value's.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CLAIM = re.compile(r"#\s*(?:->\s*)?'([^']+)'")


def python_blocks() -> list[tuple[int, str]]:
    """(line of the opening fence, code) of each python block."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks()


def test_the_readme_has_its_python_examples():
    codes = [code for _, code in BLOCKS]
    assert len(codes) >= 6, len(codes)
    assert any("create_memory_agent(" in c for c in codes)
    assert any("WeightMemoryMiddleware(" in c for c in codes)
    assert any("StateGraph(WeightMemoryState)" in c for c in codes)
    assert any("store.put(" in c and "store.search(" in c for c in codes)  # the AdapterStore example


@pytest.mark.slow
@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs_as_written(line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks write ./adapters, ./memories
    lines = code.splitlines()
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for stmt in ast.parse(code).body:
        source = ast.get_source_segment(code, stmt)
        where = f"README.md:{line + stmt.lineno}"
        claim = CLAIM.search(lines[stmt.end_lineno - 1]) if isinstance(stmt, ast.Expr) else None
        if claim is None:
            exec(compile(ast.Module([stmt], []), where, "exec"), namespace)
            continue
        value = eval(compile(ast.Expression(stmt.value), where, "eval"), namespace)
        expected = claim.group(1).split()[0]
        assert str(value).split()[:1] == [expected], (where, source, value)
