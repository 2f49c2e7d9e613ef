"""Import the repository's scripts (``examples/*.py``, ``benchmarks/*.py``) as modules in tests."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(relpath: str, name: str = None):
    """A fresh module from ``ROOT/relpath`` (each call executes the script's top level again)."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
