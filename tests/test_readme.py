"""Every Python block in the README and in ``docs/*.md`` runs as written (each on its own, in a
fresh directory).

A top-level expression whose line ends in a quoted value (``... .content  # 'frog ...'``, or
``# -> 'frog', ...``) must produce it: its first word is compared with the value's.

Only blocks fenced ```` ```python ```` run; a block that cannot run here (it needs weights that
are not shipped, such as a released Doc-to-LoRA checkpoint) is fenced ```` ```py ```` and says so
beside it. No page has ``bash`` blocks that run: the README's quick start runs in CI (``.ci/run``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CLAIM = re.compile(r"#\s*(?:->\s*)?'([^']+)'")


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line of the opening fence, code) of each python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = [(page.relative_to(ROOT).as_posix(), line, code) for page in PAGES for line, code in python_blocks(page)]


def _codes(where: str) -> list[str]:
    return [code for page, _, code in BLOCKS if page == where]


def test_the_readme_has_its_two_langgraph_snippets():
    codes = _codes("README.md")
    assert len(codes) == 2, len(codes)
    assert any("create_memory_agent(" in c for c in codes)
    assert any("WeightMemoryMiddleware(" in c for c in codes)


def test_the_docs_have_their_python_examples():
    assert any("StateGraph(WeightMemoryState)" in c for c in _codes("docs/api.md"))
    assert any("store.put(" in c and "store.search(" in c for c in _codes("docs/store.md"))
    assert any("load_default()" in c and ".internalize(" in c for c in _codes("docs/engine.md"))
    assert any("models.smollm2 import base_dir" in c for c in _codes("docs/real-models.md"))
    assert len(BLOCKS) >= 8, len(BLOCKS)


def test_every_page_fences_its_python_as_python_or_py():
    """A block fenced ``Python`` or ``python3`` would be skipped by the regex above without a word."""
    for page in PAGES:
        fences = re.findall(r"^```(\w+)", page.read_text(encoding="utf-8"), re.M)
        odd = [f for f in fences if f.lower().startswith("py") and f not in ("python", "py")]
        assert not odd, (page.name, odd)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for ``page``'s headings (lowercased, punctuation dropped, spaces to ``-``)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    heads = re.findall(r"^#+\s+(.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_link_between_the_pages_resolves():
    """Every relative link (and its ``#anchor``) in the README and docs points at something that
    exists; docs/training.md and docs/benchmarks.md are written on other branches."""
    elsewhere = {"docs/training.md", "docs/benchmarks.md"}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if "://" in target:
                continue
            path = (page.parent / target).resolve() if target else page
            if path.relative_to(ROOT).as_posix() in elsewhere and not path.exists():
                continue
            assert path.exists(), (page.name, target)
            if anchor:
                assert anchor in _anchors(path), (page.name, target, anchor)


@pytest.mark.slow
@pytest.mark.parametrize(("page", "line", "code"), BLOCKS, ids=[f"{page}:{line}" for page, line, _ in BLOCKS])
def test_readme_python_block_runs_as_written(page, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks write ./adapters, ./memories
    lines = code.splitlines()
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for stmt in ast.parse(code).body:
        source = ast.get_source_segment(code, stmt)
        where = f"{page}:{line + stmt.lineno}"
        claim = CLAIM.search(lines[stmt.end_lineno - 1]) if isinstance(stmt, ast.Expr) else None
        if claim is None:
            exec(compile(ast.Module([stmt], []), where, "exec"), namespace)
            continue
        value = eval(compile(ast.Expression(stmt.value), where, "eval"), namespace)
        expected = claim.group(1).split()[0]
        assert str(value).split()[:1] == [expected], (where, source, value)
