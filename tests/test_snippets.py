"""Every Python snippet a user reads runs as it is written, on its own.

The ```` ```python ```` blocks of ``README.md`` and the ``.. code-block:: python`` blocks of
the ``.rst`` pages under ``docs/`` are extracted and each is executed in a fresh namespace
(nothing imported for it, nothing left over from another block).  A block that is deliberately
not runnable must say so right before it, with the reason:

* Markdown: ``<!-- snippet: not run (reason) -->`` on the line before the fence;
* reST: ``.. snippet: not run (reason)`` (a comment) before the directive.

The ``testcode``/``doctest`` blocks of the guides are run by Sphinx's doctest builder
(``tests/test_docs.py``); the recipe scripts by ``tests/test_recipes.py``.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

NOT_RUN_MD = re.compile(r"<!--\s*snippet:\s*not run\s*\((.+?)\)\s*-->\s*$")
NOT_RUN_RST = re.compile(r"^\.\.\s+snippet:\s*not run\s*\((.+?)\)\s*$")


def markdown_blocks(text: str):
    """``[(line, code, skip_reason)]`` of the ```` ```python ```` fences of a Markdown text."""
    out, lines, k = [], text.splitlines(), 0
    while k < len(lines):
        if lines[k].strip() == "```python":
            start, body = k + 1, []
            k += 1
            while k < len(lines) and lines[k].strip() != "```":
                body.append(lines[k])
                k += 1
            prev = next((l for l in reversed(lines[: start - 1]) if l.strip()), "")
            m = NOT_RUN_MD.search(prev)
            out.append((start + 1, "\n".join(body) + "\n", m.group(1) if m else None))
        k += 1
    return out


def rst_blocks(text: str):
    """``[(line, code, skip_reason)]`` of the ``.. code-block:: python`` directives."""
    out, lines = [], text.splitlines()
    for k, line in enumerate(lines):
        m = re.match(r"^(\s*)\.\. (?:code-block|code|sourcecode):: python3?\s*$", line)
        if not m:
            continue
        indent = len(m.group(1))
        j = k + 1
        while j < len(lines) and lines[j].strip().startswith(":"):  # directive options
            j += 1
        body = []
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            body.append(lines[j])
            j += 1
        prev = next((l for l in reversed(lines[:k]) if l.strip()), "")
        skip = NOT_RUN_RST.match(prev.strip())
        out.append((k + 1, textwrap.dedent("\n".join(body)).strip("\n") + "\n", skip.group(1) if skip else None))
    return out


def all_snippets():
    found = [("README.md", *b) for b in markdown_blocks((ROOT / "README.md").read_text(encoding="utf-8"))]
    for rst in sorted(DOCS.rglob("*.rst")):
        rel = rst.relative_to(ROOT).as_posix()
        if "_build" in rel or "/_generated/" in rel or "/api/generated/" in rel:
            continue
        found += [(rel, *b) for b in rst_blocks(rst.read_text(encoding="utf-8"))]
    return found


SNIPPETS = all_snippets()


# ------------------------------------------------------------------- the extraction itself
def test_extraction_finds_blocks_and_markers():
    md = "text\n\n```python\nx = 1\n```\n\n<!-- snippet: not run (needs a GPU) -->\n```python\ny\n```\n```bash\nls\n```\n"
    assert markdown_blocks(md) == [(4, "x = 1\n", None), (9, "y\n", "needs a GPU")]
    rst = (".. code-block:: python\n   :caption: c\n\n   a = 1\n\n   b = a\n\nafter\n\n"
           ".. snippet: not run (needs torchrun)\n\n.. code-block:: python\n\n   z\n\n"
           ".. code-block:: bash\n\n   ls\n")
    assert rst_blocks(rst) == [(1, "a = 1\n\nb = a\n", None), (12, "z\n", "needs torchrun")]


def test_the_user_facing_snippets_are_found():
    where = {f for f, *_ in SNIPPETS}
    assert "README.md" in where and "docs/index.rst" in where
    skipped = [(f, line, why) for f, line, _, why in SNIPPETS if why]
    # deliberately non-runnable blocks stay rare, each with its reason
    assert len(skipped) <= 3, skipped


def test_readme_snippet_is_short_and_complete():
    (block,) = [code for f, _, code, _ in SNIPPETS if f == "README.md"]
    assert len(block.strip().splitlines()) <= 15
    for needed in ("import torch", "import torchtopo as tt", "tt.attach", "reg.penalty()", "opt ="):
        assert needed in block, needed


# ------------------------------------------------------------------------- run every block
@pytest.mark.parametrize(
    "where,line,code,skip", SNIPPETS, ids=[f"{f}:{line}" for f, line, _, _ in SNIPPETS]
)
def test_snippet_runs_in_a_fresh_namespace(where, line, code, skip, capsys):
    if skip:
        pytest.skip(f"marked not runnable: {skip}")
    torch.manual_seed(0)
    namespace = {"__name__": "__snippet__"}
    exec(compile(code, f"{where}:{line}", "exec"), namespace)  # noqa: S102 - the docs' own code
    capsys.readouterr()
