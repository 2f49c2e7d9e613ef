"""TopoLinear, the study CNNs, the offline data and the packaging."""
import io
import os
import subprocess
import sys
import zipfile

import pytest
import torch
from torch import nn

import torchtopo as tt


def test_kernels_ship_as_torchtopo_kernels_editable():
    import torchtopo.kernels as k

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert os.path.samefile(os.path.dirname(k.__file__), os.path.join(here, "kernels"))
    assert isinstance(k.HAS_TRITON, bool)


@pytest.mark.slow
def test_wheel_contains_every_package(tmp_path):
    pytest.importorskip("setuptools")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), here],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("torchtopo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "torchtopo/kernels/__init__.py" in names
    assert "torchtopo/py.typed" in names
    # every package directory in the source tree ships
    for root, dirs, files in os.walk(os.path.join(here, "torchtopo")):
        dirs[:] = [d for d in dirs if not d.startswith("__")]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), here)
                assert rel in names, f"{rel} missing from the wheel"
    for f in os.listdir(os.path.join(here, "kernels")):
        if f.endswith(".py"):
            assert f"torchtopo/kernels/{f}" in names
    # the licence: the file itself, and the SPDX expression in the metadata (PEP 639)
    (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    with zipfile.ZipFile(wheel) as z:
        text = z.read(licence).decode()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = z.read(meta_name).decode()
    with open(os.path.join(here, "LICENSE"), encoding="utf-8") as f:
        assert text == f.read()
    assert text.startswith("MIT License") and "torchtopo developers" in text
    assert "License-Expression: MIT" in meta.splitlines()
    assert "License-File: LICENSE" in meta.splitlines()
