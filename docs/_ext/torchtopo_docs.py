"""Build-time generators for the torchtopo docs (a local Sphinx extension).

* **API reference** — one page per public namespace (``torchtopo`` and the submodules listed in
  :data:`PUBLIC_SUBMODULES` that exist), listing *every* name of the module's ``__all__``: a
  summary table, then one autodoc entry per name, grouped by the module that defines it.  A new
  public name appears in the docs as soon as it is added to an ``__all__``.
* **Examples** — one section per ``examples/*.py`` script: its docstring, how to run it, and the
  figures found in ``docs/_static/examples/<name>/``.
* **Performance** — per benchmark JSON file: for the known ones, short tables of ratios and a
  plot (``torchtopo_perf.py``); for others, the generic tables.

Generated files are written under ``docs/api/generated/`` and ``docs/_generated/`` only when
their content changes (so incremental builds stay incremental); both folders are git-ignored.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import re
import textwrap
import types
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from torchtopo_perf import RENDERERS
from torchtopo_perf import TITLES as PERF_TITLES

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
API_OUT = DOCS / "api" / "generated"
GEN_OUT = DOCS / "_generated"

#: Public namespaces documented besides ``torchtopo`` itself, in page order.  A name missing
#: from the installed package is skipped; any submodule listed in ``torchtopo.__all__`` is
#: documented too.
PUBLIC_SUBMODULES = ["functional", "models", "analysis", "robustness", "plot", "data", "v1", "kernels"]

#: Titles of the groups on the ``torchtopo`` page, by defining module; other modules get the
#: first sentence of their docstring.
GROUP_TITLES = {
    "torchtopo.grid": "Geometry",
    "torchtopo.regularizer": "Terms and attachment",
    "torchtopo.topographic": "Topographic layers and terms (Truong & Hasson; TDANN)",
    "torchtopo.lgn": "LGN pre-filter and lateral connections (Bertoni et al.)",
    "torchtopo.hebbian": "Hebbian/anti-Hebbian layers and terms (Cekic et al.)",
    "torchtopo.v1": "V1 front-end",
    "torchtopo.v1.front": "V1 front-end",
    "torchtopo.v1.stem": "V1 front-end in front of a model",
    "torchtopo.adversarial": "Attacks and robustness of the HaH study",
    "torchtopo.analysis.collect": "Collecting activations",
    "torchtopo.analysis.maps": "Map statistics",
    "torchtopo.analysis.units": "Unit statistics",
    "torchtopo.analysis.categories": "Category selectivity",
    "torchtopo.analysis.probes": "Stimuli and tuning probes",
    "torchtopo.analysis.fits": "Filter fits: Laplacian of Gaussian and Gabor",
    "torchtopo.analysis.lateral": "Lateral-kernel analyses",
    "torchtopo.functional.topographic": "Topographic losses",
    "torchtopo.functional.hebbian": "Hebbian/anti-Hebbian functions",
    "torchtopo.functional.gabor": "Gabor filters",
    "torchtopo.robustness.corruptions": "Image corruptions",
    "torchtopo.robustness.weights": "Weight perturbations",
    "torchtopo.robustness.evaluate": "Evaluation under corruption and weight noise",
    "torchtopo.models._registry": "Model registry",
    "torchtopo.models.topographic": "Topographic CNNs (Truong & Hasson)",
    "torchtopo.models.v1": "V1 front-end models (VOneNet)",
    "torchtopo.models.hebbian": "HaH models (Cekic et al.)",
    "torchtopo.models.lgn": "LGN-CNN (Bertoni et al.)",
    "torchtopo.kernels": "Triton kernels",
}

PAGE_TITLES = {
    "torchtopo": "torchtopo (top level)",
    "torchtopo.functional": "torchtopo.functional",
    "torchtopo.models": "torchtopo.models",
    "torchtopo.analysis": "torchtopo.analysis",
    "torchtopo.robustness": "torchtopo.robustness",
    "torchtopo.plot": "torchtopo.plot",
    "torchtopo.data": "torchtopo.data",
    "torchtopo.v1": "torchtopo.v1",
    "torchtopo.kernels": "torchtopo.kernels",
}


# ----------------------------------------------------------------------------------- utils
def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _heading(text: str, char: str, overline: bool = False) -> str:
    line = char * max(len(text), 3)
    return (f"{line}\n" if overline else "") + f"{text}\n{line}\n"


_ABBREV = re.compile(r"(?:\bal|\be\.g|\bi\.e|\bcf|\bvs|\betc|\bFig|\bEq|\bno|§\d+)\.$", re.I)


def _first_sentence(doc: Optional[str]) -> str:
    """First sentence of a docstring, with rst kept balanced enough for a table cell."""
    if not doc:
        return ""
    para = inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ").strip()
    if para.startswith(".."):
        return ""
    s = para
    for m in re.finditer(r"[.!?](?=\s|$)", para):
        cand = para[: m.end()]
        if _ABBREV.search(cand):
            continue
        if cand.count("(") != cand.count(")") or cand.count("`") % 2:
            continue
        s = cand
        break
    if s.count("`") % 2 or s.count("*") % 2 or s.count("|") % 2:
        return ""
    return s


def public_modules() -> List[Tuple[str, types.ModuleType]]:
    """``[(qualified name, module)]`` of the documented namespaces, ``torchtopo`` first."""
    import torchtopo

    out = [("torchtopo", torchtopo)]
    seen = {"torchtopo"}
    candidates = list(PUBLIC_SUBMODULES)
    for name in getattr(torchtopo, "__all__", []):
        if isinstance(getattr(torchtopo, name, None), types.ModuleType) and name not in candidates:
            candidates.append(name)
    k = 0
    while k < len(candidates):
        sub = candidates[k]
        k += 1
        qual = f"torchtopo.{sub}"
        if qual in seen:
            continue
        try:
            mod = importlib.import_module(qual)
        except ModuleNotFoundError as e:
            if e.name == qual:  # not written (yet): skip; any other import error is a bug
                continue
            raise
        seen.add(qual)
        names = list(getattr(mod, "__all__", []) or [])
        if names:
            out.append((qual, mod))
        # a submodule listed in a documented module's __all__ gets its own page too
        for name in names:
            obj = getattr(mod, name, None)
            if isinstance(obj, types.ModuleType) and obj.__name__.startswith("torchtopo."):
                rel = obj.__name__[len("torchtopo."):]
                if rel not in candidates:
                    candidates.append(rel)
    return out


def _kind(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj)
                          or hasattr(obj, "__wrapped__")):
        return "function"
    return "data"


def _import_sources(module_name: str, attr: str, depth: int = 4) -> List[str]:
    """``[module_name]`` plus the modules that ``attr`` is imported from, following
    ``from .x import attr`` re-exports up to ``depth`` levels (a package re-exporting a name
    that its submodule took from a private one)."""
    out = [module_name]
    for _ in range(depth):
        mod = importlib.import_module(out[-1])
        try:
            tree = ast.parse(inspect.getsource(mod))
        except (OSError, TypeError, SyntaxError):
            break
        pkg = out[-1] if hasattr(mod, "__path__") else out[-1].rsplit(".", 1)[0]
        nxt = None
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(a.name == attr and a.asname in (None, attr) for a in node.names):
                try:
                    nxt = importlib.util.resolve_name("." * node.level + (node.module or ""), pkg)
                except (ImportError, ValueError):
                    nxt = None
                break
        if nxt is None or nxt in out:
            break
        out.append(nxt)
    return out


def attribute_doc(module_name: str, attr: str) -> str:
    """The ``#:`` comment or string literal documenting module attribute ``attr``.

    Looks in ``module_name`` and, when the name is re-exported, in the module it came from.
    """
    from sphinx.pycode import ModuleAnalyzer

    candidates = _import_sources(module_name, attr)
    for name in candidates:
        try:
            docs = ModuleAnalyzer.for_module(name).find_attr_docs()
        except Exception:
            continue
        lines = docs.get(("", attr))
        if lines:
            return "\n".join(lines).strip()
    return ""


def object_doc(module_name: str, name: str, obj: Any) -> str:
    """The object's own docstring (never one inherited from its type)."""
    if _kind(obj) == "data":
        return attribute_doc(module_name, name)
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _group_of(qual: str, name: str, obj: Any) -> str:
    kind = _kind(obj)
    if kind == "module":
        return "__submodules__"
    if kind == "data":
        src = [m for m in _import_sources(qual, name) if not any(p.startswith("_") for p in m.split("."))]
        return src[-1] if src else qual
    mod = getattr(obj, "__module__", None) or qual
    return mod


def _group_title(group: str, page: str) -> str:
    if group == "__submodules__":
        return "Submodules"
    if group == "__data__":
        return "Constants"
    if group in GROUP_TITLES:
        return GROUP_TITLES[group]
    for prefix, title in GROUP_TITLES.items():
        if group.startswith(prefix + "."):
            return title
    try:
        mod = importlib.import_module(group)
        s = _first_sentence(mod.__doc__).rstrip(".")
        # drop a trailing citation in parentheses and markup, keep it short
        s = re.sub(r"\s*\(.*?\)\s*$", "", s)
        if s and len(s) <= 70 and "`" not in s and "*" not in s:
            return s[0].upper() + s[1:]
    except Exception:
        pass
    short = group.rsplit(".", 1)[-1].lstrip("_")
    return short.replace("_", " ").capitalize() or group


# ------------------------------------------------------------------------- docstring fixes
#: Docstrings that needed :func:`sanitize` (reported at the end of the build, for their authors).
SANITIZED: Dict[str, List[str]] = {}

_SUBST = re.compile(r"(?<![\\\w|])\|(?=[^\s|])([^|\n]{0,40}?[^\s|\\])\|(?![\w|])")
def _START_OK(ch: str) -> bool:
    """May ``ch`` precede an inline markup start-string (docutils' rule)?"""
    import unicodedata

    return ch.isspace() or ch in "-:/'\"<([{\\" or unicodedata.category(ch) in ("Pd", "Ps", "Pi", "Pf", "Po")


_END_OK = re.compile(r"[\s\-.,:;!?\\/'\")\]}>\u2010-\u2027\u00bb\u2019\u201d]")  # may follow an inline literal


def sanitize(lines: List[str], what: str = "") -> List[str]:
    """Fix, in place, two markup slips common in plain-text formulas, outside literal and math
    blocks and outside inline literals/roles:

    * ``|x|`` (an absolute value) that reStructuredText reads as a substitution reference:
      escaped to ``\\|x\\|``;
    * an inline literal glued to a following character (````x````\u00b2, ````x````s), which
      reStructuredText does not end: an escaped space is inserted.

    Each fixed docstring is recorded in :data:`SANITIZED` so that the build can list them.
    """
    block_indent: Optional[int] = None
    open_tok: Optional[str] = None  # an inline literal or role left open on the previous line
    in_table = False  # inside a simple table (``===  ===`` borders): escapes must keep columns
    for n, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if block_indent is not None:
            if stripped and indent <= block_indent:
                block_indent = None
            else:
                continue
        if not stripped:
            open_tok = None  # inline markup never spans paragraphs
            in_table = False
            continue
        if open_tok is None:
            if stripped.startswith((">>>", "+-", "+=", "| ")) or stripped == "|":
                continue  # doctest lines, grid tables, line blocks
            if stripped.startswith(".. "):  # a directive line (e.g. a one-line ``.. math::``)
                if "::" in stripped:
                    block_indent = indent
                continue
        if _TABLE_BORDER.match(line):
            in_table = True
        segments, open_tok = _segments(line, open_tok)
        new = []
        for k, (kind, a, b) in enumerate(segments):
            text = line[a:b]
            if kind == "text":
                sub = _SUBST.sub(r"\\|\1\\|", text)
                if in_table and len(sub) > len(text):  # keep a simple table's columns aligned
                    sub = _narrow_gap(sub, len(sub) - len(text))
                new.append(sub)
                continue
            if kind == "lit":
                prev = line[a - 1:a]
                if prev and not _START_OK(prev):
                    new.append("\\ ")
                new.append(text)
                nxt = line[b:b + 1]
                if nxt and not _END_OK.match(nxt):
                    new.append("\\ ")
                continue
            new.append(text)
        fixed = "".join(new)
        if fixed != line:
            SANITIZED.setdefault(what or "?", []).append(line.strip())
            lines[n] = fixed
        if open_tok is None and stripped.endswith("::"):
            block_indent = indent
    return lines


_TABLE_BORDER = re.compile(r"^\s*=+(?:\s+=+)+\s*$")


def _narrow_gap(text: str, n: int) -> str:
    """Remove ``n`` spaces from the first gap of more than ``n`` spaces in ``text`` (the gap
    between two columns of a simple table), so that the columns after it stay in place."""
    m = re.search(" {%d,}" % (n + 2), text)
    return text if m is None else text[: m.start()] + text[m.start() + n:]


_OPEN = re.compile(r"(:[\w:.+-]+:)?(``|`)")


def _segments(line: str, open_tok: Optional[str]) -> Tuple[List[Tuple[str, int, int]], Optional[str]]:
    """Split ``line`` into ``(kind, start, end)`` spans: "text", "lit" (an inline literal),
    "role" (interpreted text: roles, math, references) and "cont" (markup continued from or to
    another line, left alone); return them and the markup left open at the end of the line."""
    out: List[Tuple[str, int, int]] = []
    i = 0
    if open_tok is not None:
        j = line.find(open_tok)
        if j < 0:
            return [("cont", 0, len(line))], open_tok
        i = j + len(open_tok)
        while open_tok == "`" and i < len(line) and line[i] == "_":
            i += 1
        out.append(("cont", 0, i))
        open_tok = None
    while i < len(line):
        m = _OPEN.search(line, i)
        if m is None:
            out.append(("text", i, len(line)))
            break
        out.append(("text", i, m.start()))
        delim = m.group(2)
        j = line.find(delim, m.end() + 1)
        if j < 0:
            out.append(("cont", m.start(), len(line)))
            open_tok = delim
            break
        end = j + len(delim)
        while delim == "`" and end < len(line) and line[end] == "_":
            end += 1
        out.append(("lit" if delim == "``" and not m.group(1) else "role", m.start(), end))
        i = end
    return out, open_tok


def _public_bases(app, name, obj, options, bases) -> None:
    """Show public bases: a private or unexported torchtopo base class is replaced by its
    first ancestor that is documented (or that lives outside torchtopo)."""
    public = {id(getattr(m, n, None)) for _, m in public_modules() for n in getattr(m, "__all__", [])}
    new: List[Any] = []
    for b in bases:
        for c in getattr(b, "__mro__", (b,)):
            if c is object:
                break
            if not str(getattr(c, "__module__", "")).startswith("torchtopo") or id(c) in public:
                if c not in new:
                    new.append(c)
                break
    bases[:] = new or bases


def _process_docstring(app, what, name, obj, options, lines) -> None:
    if what == "data" and "." in name:
        # napoleon reads a constant's ``#:`` doc "Orientation preference, degrees (...): 4 bins"
        # as "type: description"; a module constant's doc is plain text: use it as written
        module_name, attr = name.rsplit(".", 1)
        try:
            raw = attribute_doc(module_name, attr)
        except Exception:
            raw = ""
        if raw:
            lines[:] = raw.splitlines() + [""]
            sanitize(lines, name)
            return
    if what in ("data", "attribute") and lines:
        # a constant without its own ``#:`` doc would show its *type's* docstring (dict(), int())
        tdoc = inspect.getdoc(type(obj)) or ""
        if tdoc and lines[0].strip() and tdoc.startswith(lines[0].strip()):
            lines[:] = []
            return
    sanitize(lines, name)


def _report_sanitized(app, exception) -> None:
    if exception is None and SANITIZED:
        from sphinx.util import logging

        log = logging.getLogger("torchtopo_docs")
        log.info("torchtopo_docs: markup fixed at build time in these docstrings (fix them at the source):")
        for name, lines in sorted(SANITIZED.items()):
            for line in lines:
                log.info(f"  {name}: {line}")
        Path(app.doctreedir, "sanitized_docstrings.json").write_text(json.dumps(SANITIZED, indent=1, ensure_ascii=False))


# ------------------------------------------------------------------------------ API pages
def _entry(kind: str, full: str, obj: Any = None) -> str:
    if kind == "class":
        bases = [b for b in getattr(obj, "__bases__", ()) if b is not object]
        return (
            f".. autoclass:: {full}\n"
            "   :members:\n"
            "   :undoc-members:\n"
            + ("   :show-inheritance:\n" if bases else "")
            + "   :member-order: bysource\n"
        )
    if kind == "function":
        return f".. autofunction:: {full}\n"
    return f".. autodata:: {full}\n"


def _data_entry(full: str, obj: Any) -> str:
    try:
        long = len(repr(obj)) > 300
    except Exception:
        long = True
    return f".. autodata:: {full}\n" + ("   :no-value:\n" if long else "")


def api_page(qual: str, mod: types.ModuleType, documented: Dict[int, str]) -> str:
    names = list(getattr(mod, "__all__", []))
    title = PAGE_TITLES.get(qual, qual)
    parts = [_heading(title, "=")]
    parts.append(f".. py:module:: {qual}\n")
    doc = inspect.getdoc(mod) or ""
    intro = DOCS / "api" / "intro" / (qual.replace("torchtopo", "torchtopo", 1) + ".rst")
    if intro.exists():
        parts.append(f".. include:: ../intro/{intro.name}\n")
    elif doc:
        # the module docstring's first paragraph (the rest is reference material in the code)
        first = doc.split("\n\n")[0].splitlines()
        parts.append("\n".join(sanitize(first, qual)) + "\n")

    groups: Dict[str, List[Tuple[str, Any]]] = {}
    order: List[str] = []
    for name in names:
        if not hasattr(mod, name):
            raise AttributeError(f"{qual}.__all__ lists {name!r} but the module has no such attribute")
        obj = getattr(mod, name)
        g = _group_of(qual, name, obj)
        g = g if g.startswith("__") else _group_title(g, qual)  # merge modules of one title
        if g not in groups:
            groups[g] = []
            order.append(g)
        groups[g].append((name, obj))
    # constants and submodules last
    order = [g for g in order if not g.startswith("__")] + [g for g in order if g.startswith("__")]

    def new_table() -> List[str]:
        return [".. list-table::", "   :class: api-summary", "   :widths: 30 70", ""]

    overview: List[str] = []
    body = []
    for g in order:
        title = _group_title(g, qual) if g.startswith("__") else g
        body.append(_heading(title, "-"))
        table = new_table()
        for name, obj in groups[g]:
            full = f"{qual}.{name}"
            kind = _kind(obj)
            summary = _first_sentence(object_doc(qual, name, obj))
            if kind == "module":
                target = f"torchtopo-api-{obj.__name__.replace('.', '-')}"
                ref = f":ref:`{obj.__name__} <{target}>`"
                body.append(f"* {ref}: {_first_sentence(obj.__doc__)}\n")
                table += [f"   * - {ref}", f"     - {_first_sentence(obj.__doc__) or ' '}"]
                continue
            role = {"class": "class", "function": "func", "data": "data"}[kind]
            key = id(obj)
            if kind != "data" and key in documented:
                orig = documented[key]
                body.append(
                    f".. py:data:: {name}\n   :no-index-entry:\n\n"
                    f"   Alias of :{role}:`{orig}` (the same object).\n"
                )
                table += [f"   * - :data:`~{full}`", f"     - Alias of :{role}:`{orig}`."]
                continue
            if kind != "data":
                documented[key] = full
            body.append(_data_entry(full, obj) if kind == "data" else _entry(kind, full, obj))
            table += [f"   * - :{role}:`~{full}`", f"     - {summary or ' '}"]
        if len(order) > 1:
            overview.append(f".. rubric:: {title}\n")
        overview.append("\n".join(table) + "\n")
    parts.append(f".. _torchtopo-api-{qual.replace('.', '-')}:\n")
    parts.extend(overview)
    parts.extend(body)
    return "\n".join(parts)


def generate_api() -> List[str]:
    """Write one page per public namespace; return their docnames (for the toctree)."""
    documented: Dict[int, str] = {}
    pages = []
    for qual, mod in public_modules():
        text = api_page(qual, mod, documented)
        _write_if_changed(API_OUT / f"{qual}.rst", text)
        pages.append(f"/api/generated/{qual}")
    toc = ".. toctree::\n   :maxdepth: 1\n\n" + "".join(f"   {p}\n" for p in pages)
    _write_if_changed(API_OUT / "toctree.inc.rst", toc)
    # stale pages of namespaces that no longer exist
    keep = {f"{q}.rst" for q, _ in public_modules()} | {"toctree.inc.rst"}
    for p in API_OUT.glob("*.rst"):
        if p.name not in keep:
            p.unlink()
    return pages


# ------------------------------------------------------------------------------ examples
def _script_doc(path: Path) -> str:
    try:
        return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except SyntaxError:
        return ""


#: Where the per-example pages are generated (git-ignored).
EX_OUT = DOCS / "examples"

#: Page order of the examples (the guides' order); others follow alphabetically.
EXAMPLE_ORDER = ["topographic_mnist", "v1_front_robustness", "hebbian_divisive", "lgn_lateral_emergence"]

#: Examples whose committed report is shown as a link only (if its Markdown does not render).
REPORT_AS_LINK: set = set()


def _docstring_rst(doc: str, what: str) -> str:
    """A script's docstring (after its first paragraph) as reStructuredText to render: the
    indented command paragraphs become ``bash`` code blocks, the rest is the docstring's own
    markup (inline literals, lists, emphasis), with :func:`sanitize`'s fixes."""
    paras = doc.split("\n\n")[1:]
    out: List[str] = []
    for para in paras:
        lines = [l for l in para.split("\n")]
        if all(l.startswith("    ") or not l.strip() for l in lines):
            out.append(".. code-block:: bash\n\n" + "\n".join(lines))
        else:
            out.append(para)
    return "\n".join(sanitize("\n\n".join(out).split("\n"), what))


def _example_page(path: Path) -> str:
    name = path.stem
    doc = _script_doc(path)
    first = doc.split("\n\n")[0].replace("\n", " ").strip() if doc else ""
    out = [f"# `{name}.py`\n"]
    if first:
        out.append(first + "\n")
    if doc and len(doc.split("\n\n")) > 1:
        out.append("```{eval-rst}\n" + _docstring_rst(doc, f"examples/{name}.py") + "\n```\n")
    out.append(
        "## Run it\n\n"
        "```bash\n"
        f"python examples/{name}.py --quick --out runs/{name}\n"
        f"python examples/{name}.py --help\n"
        "```\n\n"
        f"`--quick` takes minutes on a laptop CPU; `--help` lists every option.  The script writes "
        f"`report.md`, `results.json` and PNG figures into `--out` (default `runs/{name}`).\n"
    )
    fig_dir = DOCS / "_static" / "examples" / name
    figs = sorted(fig_dir.rglob("*.png")) if fig_dir.is_dir() else []
    report = fig_dir / "report.md"
    meta = {}
    if (fig_dir / "run.json").exists():
        try:
            meta = json.loads((fig_dir / "run.json").read_text(encoding="utf-8"))
        except ValueError:
            meta = {}
    cmd = meta.get("command", f"python examples/{name}.py --quick")
    if not figs and not report.exists():
        out.append(
            "## A quick run\n\n*No results are committed for this example yet:* run "
            "`python docs/scripts/example_figures.py " + name + "` to produce them.\n"
        )
        return "\n".join(out)
    quick = "--quick" in cmd.split()
    extra = []
    if meta.get("seconds"):
        extra.append(f"{float(meta['seconds']):,.0f} s wall time")
    if meta.get("machine"):
        extra.append(str(meta["machine"]))
    if meta.get("note"):
        extra.append(str(meta["note"]))
    where = f" ({'; '.join(extra)})" if extra else ""
    if quick:
        caveat = ("a smoke test: small models trained briefly on the offline data, so read it for "
                  "what the report shows and how, not for the paper's numbers")
    else:
        caveat = ("its own report says what this run can and cannot decide, with the number of "
                  "seeds and the confidence intervals behind every verdict")
    out.append(
        f"## {'A quick run' if quick else 'A committed run'}\n\n"
        f"What `{cmd}` wrote{where}: {caveat}.\n"
    )
    referenced = set()
    if report.exists():
        text = report.read_text(encoding="utf-8")
        referenced = {f for f in figs if f.relative_to(fig_dir).as_posix() in text}
        if name in REPORT_AS_LINK:
            out.append(f"[report.md](../_static/examples/{name}/report.md)\n")
        else:
            out.append(
                f"```{{include}} ../_static/examples/{name}/report.md\n"
                ":relative-images:\n:heading-offset: 2\n```\n"
            )
    rest = [f for f in figs if f not in referenced]
    if rest:
        out.append("### Figures\n" if report.exists() else "")
        for f in rest:
            rel = f.relative_to(fig_dir).as_posix()
            caption = rel[:-4].replace("/", " / ").replace("_", " ")
            out.append(
                f"```{{figure}} ../_static/examples/{name}/{rel}\n:width: 90%\n:alt: {caption}\n\n{caption}\n```\n"
            )
    return "\n".join(out)


def generate_examples() -> None:
    ex_dir = ROOT / "examples"
    scripts = sorted(p for p in ex_dir.glob("*.py") if not p.name.startswith("_")) if ex_dir.is_dir() else []
    scripts.sort(key=lambda p: (EXAMPLE_ORDER.index(p.stem) if p.stem in EXAMPLE_ORDER else len(EXAMPLE_ORDER), p.stem))
    out = []
    if not scripts:
        out.append("No example scripts were found in ``examples/``.\n")
    rows = [".. list-table::", "   :class: api-summary", "   :widths: 30 70", ""]
    for path in scripts:
        _write_if_changed(EX_OUT / f"{path.stem}.md", _example_page(path))
        first = _first_sentence(_script_doc(path)) or " "
        rows += [f"   * - :doc:`/examples/{path.stem}`", f"     - {first}"]
    for stale in EX_OUT.glob("*.md") if EX_OUT.is_dir() else []:
        if not (ex_dir / f"{stale.stem}.py").exists():
            stale.unlink()
    if scripts:
        out.append("\n".join(rows) + "\n")
        out.append(".. toctree::\n   :hidden:\n\n" + "".join(f"   /examples/{p.stem}\n" for p in scripts))
    _write_if_changed(GEN_OUT / "examples.inc.rst", "\n".join(out))


# --------------------------------------------------------------------------- performance
def _cell(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1e6 or a < 0.001:
            return f"{v:.3g}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 10:
            return f"{v:.2f}"
        return f"{v:.3f}"
    if v is None:
        return "—"
    if isinstance(v, (list, tuple)):
        return "×".join(str(x) for x in v) if all(isinstance(x, int) for x in v) else json.dumps(v)
    if isinstance(v, dict):
        return json.dumps(v)
    s = str(v).replace("|", "/").replace("\n", " ")
    return s if s.strip() else " "


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _flat(d: Any) -> bool:
    return isinstance(d, dict) and all(
        _scalar(v) or (isinstance(v, list) and all(_scalar(x) for x in v)) for v in d.values()
    )


def _rows_in(data: Any) -> List[Tuple[str, List[dict]]]:
    """Find the tables inside a benchmark's JSON: lists of dicts, and dicts whose values are
    all flat dicts (``{case: {metric: value}}``, one row per case)."""
    found = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list) and node and all(isinstance(r, dict) for r in node):
            found.append((path, [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in node]))
            return
        if isinstance(node, dict) and len(node) >= 2 and all(_flat(v) and v for v in node.values()):
            found.append((path, [{"case": k, **v} for k, v in node.items()]))
            return
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, (dict, list)):
                    walk(v, f"{path}.{k}" if path else str(k))

    walk(data, "")
    return found


def _nested_scalars(data: Any) -> List[Tuple[str, dict]]:
    """Dicts below the top level holding scalars (e.g. a benchmark's ``targets``), with their
    dotted path: shown as bullet lists, since they are summaries, not tables."""
    found = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        scalars = {k: v for k, v in node.items() if _scalar(v)}
        if path and scalars and not all(isinstance(v, dict) for v in node.values()):
            found.append((path, scalars))
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{path}.{k}" if path else str(k))

    walk(data, "")
    return found


def _meta_in(data: Any) -> List[Tuple[str, Any]]:
    """Top-level scalars, short lists of scalars and small flat dicts (a bullet list)."""
    if not isinstance(data, dict):
        return []
    out = []
    for k, v in data.items():
        if _scalar(v):
            if v is not None:
                out.append((k, v))
        elif isinstance(v, list) and all(_scalar(x) for x in v) and len(v) <= 12:
            out.append((k, ", ".join(str(x) for x in v)))
        elif _flat(v) and v and len(v) <= 12 and all(_scalar(x) for x in v.values()):
            out.append((k, ", ".join(f"{a}={_cell(b)}" for a, b in v.items())))
    return out


def _table(rows: List[dict], limit: int = 200) -> str:
    cols: List[str] = []
    for r in rows:
        for k, v in r.items():
            # raw per-repeat lists (e.g. ``all_s``) stay in the JSON file: a table cell can't show them
            if k not in cols and not isinstance(v, (dict, list)):
                cols.append(k)
    lines = [".. list-table::", "   :header-rows: 1", "   :class: bench-table", ""]
    if len(cols) > 7 and len(rows) <= 6:
        # wide and short: one column per row (the first field names it), one row per metric
        key = cols[0]
        lines.append("   * - " + "\n     - ".join([key] + [_cell(r.get(key)) for r in rows]))
        for c in cols[1:]:
            lines.append("   * - " + "\n     - ".join([c] + [_cell(r.get(c)) for r in rows]))
        return "\n".join(lines) + "\n"
    lines.append("   * - " + "\n     - ".join(cols))
    for r in rows[:limit]:
        lines.append("   * - " + "\n     - ".join(_cell(r.get(c)) for c in cols))
    text = "\n".join(lines) + "\n"
    if len(rows) > limit:
        text += f"\n({len(rows) - limit} more rows in the JSON file.)\n"
    return text


def generate_performance(root: Path = ROOT, out_dir: Path = GEN_OUT) -> str:
    """Write ``performance.inc.rst`` (tables from ``root/benchmarks/*.json``); return its text."""
    bdir = root / "benchmarks"
    # committed results (benchmarks/, benchmarks/results/, docs/_static/benchmarks/) and local
    # runs (runs/benchmarks/, the scripts' default --out); per benchmark, the newest file wins
    newest: Dict[str, Path] = {}
    for pattern in ("benchmarks/*.json", "benchmarks/results/*.json",
                    "docs/_static/benchmarks/*.json", "runs/benchmarks/*.json"):
        for f in root.glob(pattern):
            if f.stem not in newest or f.stat().st_mtime > newest[f.stem].stat().st_mtime:
                newest[f.stem] = f
    files = [newest[k] for k in sorted(newest)]
    scripts = sorted(p for p in bdir.glob("*.py") if not p.name.startswith("_")) if bdir.is_dir() else []
    out = []
    readme = bdir / "README.md"
    if readme.exists() and out_dir == GEN_OUT:
        page = ("# How the benchmarks measure\n\n"
                "The method and caveats of each script, from `benchmarks/README.md`.\n\n"
                "```{include} ../benchmarks/README.md\n:heading-offset: 1\n```\n")
        _write_if_changed(DOCS / "benchmarks_method.md", page)
        out.append(".. toctree::\n   :hidden:\n\n   /benchmarks_method\n")
        out.append(":doc:`How each benchmark measures </benchmarks_method>` (method and caveats, from "
                   "``benchmarks/README.md``).\n")
    if scripts:
        out.append(_heading("Benchmark scripts", "-"))
        for s in scripts:
            doc = _first_sentence(_script_doc(s))
            out.append(f"* ``benchmarks/{s.name}``" + (f": {doc}" if doc else ""))
        out.append("")
    if not files:
        out.append(_heading("Results", "-"))
        out.append(
            ".. note::\n\n   No benchmark results are committed yet.  Run the scripts above, e.g.\n"
            "   ``python benchmarks/neighbor_penalty.py``; each prints its table and writes a JSON\n"
            "   file (by default into ``runs/benchmarks/``), which this page turns into tables at\n"
            "   the next build.  Commit results into ``docs/_static/benchmarks/`` to publish them.\n"
        )
    for f in files:
        rel = f.relative_to(root)
        script = bdir / f"{f.stem}.py"
        out.append(_heading(PERF_TITLES.get(f.stem, f.stem), "-"))
        about = _first_sentence(_script_doc(script)) if script.exists() else ""
        out.append((about + "  " if about else "") + f"From ``{rel}``.\n")
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            out.append(f".. warning::\n\n   ``{rel}`` could not be read as JSON ({type(e).__name__}).\n")
            continue
        if f.stem in RENDERERS and isinstance(data, dict):
            out.append(RENDERERS[f.stem](data, out_dir))
            if DOCS in f.parents and out_dir == GEN_OUT:
                out.append(f"Every case, with minima and all repeats: :download:`{f.name} </{f.relative_to(DOCS).as_posix()}>`.\n")
            continue
        meta = [(k, v) for k, v in _meta_in(data) if k != "benchmark"]
        if meta:
            out.append("\n".join(f"* **{k}**: {_cell(v)}" for k, v in meta) + "\n")
        tables = _rows_in(data)
        if not tables:
            out.append(".. code-block:: json\n\n" + textwrap.indent(json.dumps(data, indent=1)[:4000], "   ") + "\n")
        for path, rows in tables:
            if path and len(tables) > 1:
                out.append(f"**{path}**\n")
            out.append(_table(rows))
        table_paths = {p for p, _ in tables}
        for path, scalars in _nested_scalars(data):
            if path not in table_paths and not any(path.startswith(p + ".") for p in table_paths if p):
                out.append(f"**{path}**\n")
                out.append("\n".join(f"* {k}: {_cell(v)}" for k, v in scalars.items()) + "\n")
    text = "\n".join(out)
    _write_if_changed(out_dir / "performance.inc.rst", text)
    return text


# -------------------------------------------------------------------------------- extras
#: What each optional-dependency group of pyproject.toml is for (unknown ones show no purpose).
EXTRA_PURPOSE = {
    "triton": "the fused GPU kernels (CUDA, Linux)",
    "examples": "the scripts in ``examples/``, the dataset loaders, :mod:`torchtopo.plot`, the offline MNIST sample",
    "docs": "building this documentation and running its code",
    "dev": "running the test suite",
}


def generate_extras(root: Path = ROOT, out_dir: Path = GEN_OUT) -> str:
    """A table of ``pyproject.toml``'s extras, so the installation page cannot drift from it."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = None
    extras: Dict[str, List[str]] = {}
    pyproject = root / "pyproject.toml"
    if tomllib is not None and pyproject.exists():
        with open(pyproject, "rb") as f:
            extras = tomllib.load(f).get("project", {}).get("optional-dependencies", {}) or {}
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 15 45 40", "",
             "   * - extra", "     - installs", "     - for"]
    for name, reqs in extras.items():
        pkgs = ", ".join(f"``{r}``" for r in reqs) or " "
        lines += [f"   * - ``{name}``", f"     - {pkgs}", f"     - {EXTRA_PURPOSE.get(name, ' ')}"]
    text = "\n".join(lines) + "\n" if extras else "(``pyproject.toml`` lists no extras.)\n"
    _write_if_changed(out_dir / "extras.inc.rst", text)
    return text


# ---------------------------------------------------------------------------------- hooks
def _generate(app) -> None:
    generate_extras()
    generate_api()
    generate_examples()
    generate_performance()


def setup(app):
    app.connect("builder-inited", _generate)
    app.connect("autodoc-process-docstring", _process_docstring, priority=900)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("build-finished", _report_sanitized)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
