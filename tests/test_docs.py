"""The documentation builds with warnings as errors, its code runs, and it documents every
public name.

Builds ``docs/`` in-process (html, then the doctest builder on the same doctrees) into a
temporary folder: about 15-25 s of CPU.  Skipped when Sphinx or the theme is not installed
(``pip install -e ".[docs]"``).
"""
from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="sphinx is not installed: pip install -e '.[docs]'")
pytest.importorskip("furo", reason="the furo theme is not installed: pip install -e '.[docs]'")
pytest.importorskip("myst_parser", reason="myst-parser is not installed: pip install -e '.[docs]'")

from sphinx.cmd.build import build_main  # noqa: E402
from sphinx.util.inventory import InventoryFile  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import torchtopo_docs  # noqa: E402

# Sphinx's own deprecation notices (napoleon, autodoc) are not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

#: The namespaces whose ``__all__`` must be fully documented.
REQUIRED = ["torchtopo", "torchtopo.functional", "torchtopo.models", "torchtopo.analysis",
            "torchtopo.robustness", "torchtopo.plot", "torchtopo.data"]


def _sphinx(builder: str, out: Path, doctrees: Path) -> tuple[int, str]:
    warnings = out.parent / f"{builder}-warnings.txt"
    rc = build_main([
        "-W", "--keep-going", "-q", "-b", builder, "-d", str(doctrees), "-w", str(warnings),
        str(DOCS), str(out),
    ])
    return rc, warnings.read_text(encoding="utf-8") if warnings.exists() else ""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    rc, warnings = _sphinx("html", tmp / "html", tmp / "doctrees")
    return {"tmp": tmp, "html": tmp / "html", "doctrees": tmp / "doctrees", "rc": rc, "warnings": warnings}


def _inventory(site) -> dict:
    with open(site["html"] / "objects.inv", "rb") as f:
        inv = InventoryFile.load(f, "", lambda base, uri: uri)
    names = {}
    for role, entries in inv.data.items() if hasattr(inv, "data") else inv.items():
        for name in entries:
            names.setdefault(name, set()).add(role)
    return names


def _public(qual: str):
    try:
        mod = importlib.import_module(qual)
    except ModuleNotFoundError as e:
        if e.name == qual:
            return None
        raise
    return mod


# ------------------------------------------------------------------------------ the build
def test_html_builds_without_warnings(site):
    assert site["rc"] == 0, f"sphinx-build -W failed:\n{site['warnings']}"
    assert site["warnings"].strip() == "", site["warnings"]


def test_guides_and_quickstart_code_runs(site):
    """The ``testcode``/``doctest`` blocks of the quickstart and the guides execute."""
    assert site["rc"] == 0, "the html build failed; see test_html_builds_without_warnings"
    rc, warnings = _sphinx("doctest", site["tmp"] / "doctest", site["doctrees"])
    report = site["tmp"] / "doctest" / "output.txt"
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    assert rc == 0, f"doctest failures:\n{text[-6000:]}\n{warnings}"
    m = re.search(r"^\s*(\d+) tests\s*$", text, re.M)
    assert m and int(m.group(1)) >= 10, f"expected the guides' tests to run, got:\n{text[-2000:]}"
    assert re.search(r"^\s*0 failures in tests", text, re.M), text[-3000:]


def test_pages_exist_and_link_the_figure(site):
    html = site["html"]
    for page in ["index", "installation", "quickstart", "examples", "performance", "changelog",
                 "guides/topographic", "guides/v1_front", "guides/hebbian", "guides/lgn_lateral",
                 "api/index", "api/generated/torchtopo", "recipes/index"]:
        assert (html / f"{page}.html").exists(), page
    index = (html / "index.html").read_text(encoding="utf-8")
    assert "topomap.png" in index and (html / "_images" / "topomap.png").exists()
    # every API page is reachable from the API index
    api_index = (html / "api" / "index.html").read_text(encoding="utf-8")
    for qual, _ in torchtopo_docs.public_modules():
        assert f"generated/{qual}.html" in api_index, qual


def _external_resources(html: str) -> list:
    """``src``/``href`` of ``<script>`` and ``<link>`` tags that point at another host."""
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html, re.I)
    urls = [m for t in tags for m in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", t, re.I)]
    return [u for u in urls if re.match(r"^(?:https?:)?//", u, re.I)]


def test_external_resource_finder():
    page = ('<script src="_static/a.js"></script><script defer src="https://cdn.x/mathjax.js"></script>'
            '<link rel="stylesheet" href="//fonts.example/css"><a href="https://pytorch.org">ok</a>'
            "<link rel='stylesheet' href='_static/b.css'>")
    assert _external_resources(page) == ["https://cdn.x/mathjax.js", "//fonts.example/css"]


def test_pages_load_nothing_from_the_network(site):
    """No page loads a script or a style sheet from another host, and the maths is rendered by
    the MathJax copy shipped with the site."""
    assert site["rc"] == 0, "the html build failed; see test_html_builds_without_warnings"
    pages = sorted(site["html"].rglob("*.html"))
    assert len(pages) > 20
    bad = {p.relative_to(site["html"]).as_posix(): u for p in pages
           if (u := _external_resources(p.read_text(encoding="utf-8")))}
    assert not bad, f"pages that load from the network: {bad}"
    guide = (site["html"] / "guides" / "topographic.html").read_text(encoding="utf-8")
    m = re.search(r'<script[^>]*src="([^"]*mathjax[^"]*)"', guide)
    assert m, "the guide loads no MathJax"
    assert (site["html"] / "guides" / m.group(1)).resolve().is_file(), m.group(1)
    assert (site["html"] / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def test_example_pages_render_the_docstring_as_text(site):
    """The scripts' docstrings are rendered (lists, inline literals), not shown as raw
    reStructuredText in a code block."""
    page = (site["html"] / "examples" / "topographic_mnist.html").read_text(encoding="utf-8")
    assert "``" not in page  # no raw inline-literal markup left
    assert '<ul class="simple">' in page or "<ul>" in page
    assert 'class="highlight-bash' in page  # the commands are a code block


def test_recipe_pages_exist_and_show_their_scripts(site):
    recipes = DOCS / "recipes"
    for rst in recipes.glob("*.rst"):
        html = (site["html"] / "recipes" / f"{rst.stem}.html").read_text(encoding="utf-8")
        if rst.stem != "index":
            assert 'class="highlight-python' in html and '<span class="n">attach</span>' in html, rst.stem


# --------------------------------------------------------------------- the API reference
def _own_doc(qual: str, name: str, obj) -> str:
    return torchtopo_docs.object_doc(qual, name, obj)


def test_every_public_name_is_documented(site):
    """Each name of each public ``__all__`` is in the objects inventory and (unless it is a
    constant: then its value is shown) has a non-empty docstring of its own."""
    assert site["rc"] == 0, "the html build failed; see test_html_builds_without_warnings"
    inventory = _inventory(site)
    quals = list(dict.fromkeys(REQUIRED + [q for q, _ in torchtopo_docs.public_modules()]))
    missing_inv, missing_doc, checked = [], [], 0
    undocumented_constants = []
    for qual in quals:
        mod = _public(qual)
        if mod is None:
            continue
        assert (mod.__doc__ or "").strip(), f"module {qual} has no docstring"
        assert qual in inventory, f"module {qual} is not in the docs"
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            full = f"{qual}.{name}"
            checked += 1
            if isinstance(obj, types.ModuleType):
                if obj.__name__ not in inventory:
                    missing_inv.append(full)
                if not (obj.__doc__ or "").strip():
                    missing_doc.append(full)
                continue
            if full not in inventory:
                missing_inv.append(full)
            if not _own_doc(qual, name, obj):
                if inspect.isclass(obj) or callable(obj):
                    missing_doc.append(full)
                else:
                    undocumented_constants.append(full)
    assert checked >= 20
    assert not missing_inv, f"public names missing from the built docs: {missing_inv}"
    assert not missing_doc, f"public names without a docstring: {missing_doc}"
    assert not undocumented_constants, (
        "constants without a `#:` doc comment (their value is shown, but say what they are): "
        + ", ".join(undocumented_constants)
    )


def test_class_pages_list_their_methods(site):
    """Every public class's own methods appear on its page (documented or not)."""
    html = (site["html"] / "api" / "generated" / "torchtopo.html").read_text(encoding="utf-8")
    import torchtopo as tt

    for meth in ["torchtopo.Regularizer.penalty", "torchtopo.Regularizer.losses",
                 "torchtopo.Regularizer.remove", "torchtopo.Grid.neighbor_pairs",
                 "torchtopo.TopoLinear.from_linear"]:
        assert f'id="{meth}"' in html, meth
    assert tt.Regularizer.penalty.__doc__


# ------------------------------------------------------------------------------- content
def test_quickstart_is_under_20_lines():
    text = (DOCS / "quickstart.rst").read_text(encoding="utf-8")
    blocks = re.findall(r"^\.\. (?:code-block:: bash|testcode::)\n\n((?:   .*\n|\n)+)", text, re.M)
    install, code = blocks[0], blocks[1]
    lines = [l for l in (install + code).splitlines() if l.strip()]
    assert "pip install" in install and "tt.attach" in code and "reg.penalty()" in code
    assert len(lines) < 20, len(lines)


def test_guides_cite_existing_api_names():
    """Every ``torchtopo...`` name a guide refers to with a role exists."""
    bad = []
    for rst in sorted((DOCS / "guides").glob("*.rst")) + [DOCS / "quickstart.rst", DOCS / "index.rst", DOCS / "changelog.rst", DOCS / "installation.rst"]:
        for target in re.findall(r":(?:func|class|meth|data|mod|attr):`(?:[^`<]*<)?~?(torchtopo[\w.]*)>?`", rst.read_text(encoding="utf-8")):
            parts = target.split(".")
            obj, ok = None, True
            for k in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:k]))
                except ModuleNotFoundError:
                    continue
                for attr in parts[k:]:
                    if not hasattr(obj, attr):
                        ok = False
                        break
                    obj = getattr(obj, attr)
                break
            if not ok or obj is None:
                bad.append(f"{rst.name}: {target}")
    assert not bad, f"guides refer to names that do not exist: {bad}"


# -------------------------------------------------------------------- build-time helpers
def test_sanitize_escapes_plain_text_markup_only():
    lines = [
        "iso-oriented (|δ| < ``tol``) and ``x``² and ``ok``, :math:`|x|`, ``a``/``b``",
        "",
        ".. math::",
        "",
        "   |x| + y",
        ".. math:: \\frac{1}{|P|}",
        "back |a| here, power 1/f^``alpha``",
        "a literal ``(front, 1x1 conv",
        "front.out)`` and ``bn1`` and :math:`|x| +",
        "y|` then |b|",
    ]
    out = torchtopo_docs.sanitize(list(lines), "demo")
    assert out[0] == "iso-oriented (\\|δ\\| < ``tol``) and ``x``\\ ² and ``ok``, :math:`|x|`, ``a``/``b``"
    assert out[2:6] == lines[2:6]  # math untouched
    assert out[6] == "back \\|a\\| here, power 1/f^\\ ``alpha``"
    assert out[7:9] == lines[7:9]  # literals and roles spanning lines untouched
    assert out[9] == "y|` then \\|b\\|"
    assert "demo" in torchtopo_docs.SANITIZED
    # in a simple table the escapes take the room from the gap after them: columns stay put
    table = ["==== ========== =====", "sign d          text", "==== ========== =====",
             "abs  1 - |r|    bimodal", "                peaks", "==== ========== ====="]
    out = torchtopo_docs.sanitize(list(table), "table")
    assert out[3] == "abs  1 - \\|r\\|  bimodal" and out[3].index("bimodal") == table[3].index("bimodal")
    assert out[4] == table[4]


def test_performance_page_from_benchmark_json(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "demo.py").write_text('"""Time the demo."""\n')
    rows = [{"units": 121, "backend": "torch", "ms": 0.123456}, {"units": 16384, "backend": "naive", "ms": 45.6}]
    (bench / "demo.json").write_text(json.dumps({"device": "cpu", "results": rows}))
    text = torchtopo_docs.generate_performance(tmp_path, tmp_path / "out")
    assert "benchmarks/demo.py" in text and "Time the demo." in text
    assert "**device**: cpu" in text
    for cell in ["units", "backend", "ms", "121", "16384", "naive", "0.123", "45.6"]:
        assert f"- {cell}" in text, cell
    # a known benchmark gets its summary: ratios with units, a plot, what was not measured
    (bench / "hah_block.json").write_text(json.dumps({
        "device": "CPU (x86_64, 1 threads)", "shape": {"batch": 2, "c_in": 3, "c_out": 4, "size": 8},
        "results": {"conv-bn-relu": {"median_ms": 2.0, "ratio_vs_conv_bn_relu": 1.0},
                    "hah": {"median_ms": 5.0, "ratio_vs_conv_bn_relu": 2.5}}}))
    text = torchtopo_docs.generate_performance(tmp_path, tmp_path / "out")
    assert "2.50 ×" in text and "forward + backward (ms)" in text and "Not measured: GPU" in text
    assert (tmp_path / "out" / "perf" / "hah_block.png").stat().st_size > 1000
    empty = torchtopo_docs.generate_performance(tmp_path / "nothing", tmp_path / "out2")
    assert "No benchmark results" in empty


def test_installation_extras_table_follows_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.optional-dependencies]\n'
        'docs = ["sphinx>=7.2", "furo"]\nfancy = ["numpy"]\n'
    )
    text = torchtopo_docs.generate_extras(tmp_path, tmp_path / "out")
    assert "``docs``" in text and "``sphinx>=7.2``, ``furo``" in text
    assert "``fancy``" in text and "``numpy``" in text
    real = torchtopo_docs.generate_extras(torchtopo_docs.ROOT, tmp_path / "real")
    for extra in ("triton", "examples", "docs", "dev"):
        assert f"``{extra}``" in real
