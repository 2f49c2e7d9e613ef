"""tt.plot: each figure renders and saves; matplotlib is imported lazily."""
import subprocess
import sys

import pytest
import torch

import torchtopo as tt

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402


def test_import_torchtopo_does_not_import_matplotlib():
    code = "import sys, torchtopo; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _save(fig, tmp_path, name):
    assert isinstance(fig, Figure)
    p = tmp_path / name
    fig.savefig(p, dpi=40)
    assert p.stat().st_size > 500
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_grid_maps(tmp_path):
    _save(tt.plot.grid_maps(torch.randn(12, 121), (11, 11), titles=[str(i) for i in range(12)], ncols=5), tmp_path, "a.png")
    _save(tt.plot.grid_maps(torch.randn(3, 4, 6), shared_scale=True, suptitle="x"), tmp_path, "b.png")
    _save(tt.plot.grid_maps(torch.randn(16)), tmp_path, "c.png")
    with pytest.raises(ValueError, match="12 units but the grid has 121"):
        tt.plot.grid_maps(torch.randn(2, 12), (11, 11))
    with pytest.raises(ValueError, match="2 maps but 3 titles"):
        tt.plot.grid_maps(torch.randn(2, 9), titles=["a", "b", "c"])
    with pytest.raises(TypeError, match="maps must be a tensor"):
        tt.plot.grid_maps([[1.0]])


def test_curves_and_histograms(tmp_path):
    a = torch.randn(200, 121)
    c = tt.analysis.correlation_vs_distance(a, (11, 11))
    _save(tt.plot.correlation_vs_distance({"model": c}, title="t"), tmp_path, "cvd.png")
    _save(tt.plot.correlation_histogram({"model": c["pair_r"], "other": c["pair_r"] * 0.5}), tmp_path, "h.png")
    _save(tt.plot.accuracy_vs_severity({"a": ([0.1, 0.2], [-1.0, -3.0]), "b": ([0.1, 0.2], [-2.0, -4.0], [0.5, 0.5])}),
          tmp_path, "s.png")
    _save(tt.plot.metric_vs_strength({"WS": ([0.3, 1, 3], [1, 2, 3], [0.1, 0.1, 0.1])}, control=(0.5, 0.1), ylabel="y"),
          tmp_path, "m.png")


def test_expert_map_and_gallery(tmp_path):
    d = torch.randn(10, 121) * 2
    _save(tt.plot.expert_map(d, (11, 11), threshold=1.0), tmp_path, "e.png")
    with pytest.raises(ValueError, match="dprime must be a"):
        tt.plot.expert_map(torch.randn(121))
    x = torch.rand(1, 16, 16)
    _save(tt.plot.corruption_gallery(x, ["white", "fog"], [1, 5], noise_severities=[0.1, 0.2]), tmp_path, "g.png")
    with pytest.raises(ValueError, match="one \\(C, H, W\\) image"):
        tt.plot.corruption_gallery(torch.rand(2, 1, 8, 8), ["white"], [1], noise_severities=[0.1])


def test_save_writes_creates_folders_and_closes(tmp_path):
    import matplotlib.pyplot as plt

    fig = tt.plot.accuracy_vs_severity({"a": ([1, 2], [0.0, -1.0])})
    p = tt.plot.save(fig, tmp_path / "sub" / "dir" / "f.png", dpi=50)
    assert p == tmp_path / "sub" / "dir" / "f.png" and p.stat().st_size > 500
    assert not plt.fignum_exists(fig.number)
    q = tt.plot.save(tt.plot.grid_maps(torch.randn(2, 9)), str(tmp_path / "g.pdf"))
    assert q.suffix == ".pdf" and q.read_bytes()[:4] == b"%PDF"
