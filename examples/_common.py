"""What the example scripts share: the command-line flags, the training loop, the results and
report writer, the figure saver, a checkpoint cache and mean ± SD.  Each script keeps its study.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

import torchtopo as tt

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - tqdm is in the examples extra

    def tqdm(it=None, **kw):
        return it


__all__ = ["add_common_args", "parse", "start", "progress", "fit", "write_results", "pyplot", "save_fig",
           "Checkpoints", "mean_sd", "parse_shard"]


# ------------------------------------------------------------------------------ command line
def add_common_args(p: argparse.ArgumentParser, *, out: str, datasets: Sequence[str], default_dataset: Optional[str] = None,
                    quick_help: str = "a short run (< 2 min on 2 cores)", seeds: Optional[str] = None) -> None:
    """``--out --quick --tiny --dataset --data-root --seed [--seeds] --threads --device --no-plots``.

    ``datasets``: the ``--dataset`` choices (the first is the default unless ``default_dataset``);
    ``seeds``: the help of ``--seeds`` (models per condition), or None for scripts with one seed."""
    p.add_argument("--out", default=out, help="output folder (report.md, results.json, PNGs)")
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # CI smoke test
    p.add_argument("--dataset", default=default_dataset or datasets[0], choices=list(datasets))
    p.add_argument("--data-root", default=None, help="folder of the torchvision dataset (torchtopo never downloads)")
    p.add_argument("--seed", type=int, default=0, help="(first) seed")
    if seeds is not None:
        p.add_argument("--seeds", type=int, default=None, help=seeds)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (1 on a busy shared CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-plots", action="store_true")


def parse(p: argparse.ArgumentParser, argv: Optional[List[str]], *, offline: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; a dataset not in ``offline`` needs ``--data-root``."""
    a = p.parse_args(argv)
    if a.dataset not in offline and a.data_root is None:
        p.error(f"--dataset {a.dataset} needs --data-root DIR (torchtopo never downloads data)")
    return a


def parse_shard(s: str) -> Tuple[int, int]:
    """argparse type of ``--shard K/N`` (0 <= K < N)."""
    try:
        k, n = (int(v) for v in s.split("/"))
    except ValueError:
        k, n = -1, 0
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"must be K/N with 0 <= K < N, got {s!r}")
    return k, n


def start(args: argparse.Namespace) -> float:
    """Create ``--out``, apply ``--threads`` once; returns the start time."""
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    return time.time()


def progress(it: Iterable, desc: str = "", **kw) -> Iterable:
    """A tqdm bar (leave=False) when tqdm is installed, else ``it`` itself."""
    return tqdm(it, desc=desc, leave=False, **kw)


# ------------------------------------------------------------------------------ training
def fit(model: nn.Module, batches: Callable[[int], Iterable], opt: torch.optim.Optimizer, *, epochs: int = 1,
        reg: Optional[tt.Regularizer] = None, sched=None, sched_every: str = "epoch", device="cpu",
        on_epoch: Optional[Callable[[nn.Module], Dict]] = None, log_terms: bool = False,
        step_losses: Optional[list] = None, desc: str = "train") -> List[Dict]:
    """Cross-entropy training (+ ``reg.penalty()`` when a regularizer is attached).

    ``batches(epoch)`` yields that epoch's ``(x, y)``; ``sched.step()`` runs after every batch
    (``sched_every="batch"``) or epoch.  Returns one record per epoch: ``ce`` (mean over
    batches), ``loss_per_sample`` (mean over samples), ``penalty``, with ``log_terms`` the mean
    unscaled loss per term (``reg.losses()``), and what ``on_epoch(model)`` returns.  Each
    step's loss is appended to ``step_losses`` when given.
    """
    history = []
    for epoch in progress(range(epochs), desc):
        model.train()
        tot_ce, tot_w, tot_pen = (torch.zeros((), device=device) for _ in range(3))
        terms: Dict[str, Any] = {}
        nb = n = 0
        data = batches(epoch)
        # tqdm.auto's bar calls iter() on what it wraps once more: a DataLoader would draw its
        # shuffling seed twice, so the bar gets the one iterator
        total = len(data) if hasattr(data, "__len__") else None
        for x, y in progress(iter(data), f"epoch {epoch + 1}", total=total, mininterval=2.0):
            x, y = x.to(device), y.to(device)
            ce = F.cross_entropy(model(x), y)
            loss = ce
            if reg is not None:
                pen = reg.penalty()
                loss = ce + pen
                tot_pen += pen.detach()
                if log_terms:
                    for k, v in reg.losses().items():
                        terms[k] = terms.get(k, 0) + v
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None and sched_every == "batch":
                sched.step()
            tot_ce += ce.detach()
            tot_w += ce.detach() * y.shape[0]
            if step_losses is not None:
                step_losses.append(loss.detach())
            nb, n = nb + 1, n + y.shape[0]
        if sched is not None and sched_every == "epoch":
            sched.step()
        rec = {"epoch": epoch + 1, "ce": float(tot_ce) / max(nb, 1), "loss_per_sample": float(tot_w) / max(n, 1),
               "penalty": float(tot_pen) / max(nb, 1)}
        if log_terms:
            rec["terms"] = {k: float(v) / max(nb, 1) for k, v in terms.items()}
        if on_epoch is not None:
            rec.update(on_epoch(model))
        history.append(rec)
    return history


# ------------------------------------------------------------------------------ outputs
def _atomic_write(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_results(out: str, payload: Dict, report: Optional[str] = None, *, name: str = "results.json") -> None:
    """``out/results.json`` (and ``out/report.md`` from ``report``), each written atomically."""
    os.makedirs(out, exist_ok=True)
    _atomic_write(os.path.join(out, name), json.dumps(payload, indent=1, default=float))
    if report is not None:
        _atomic_write(os.path.join(out, "report.md"), report if report.endswith("\n") else report + "\n")


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_fig(fig, out: str, name: str, files: Optional[List[str]] = None, *, dpi: int = 110) -> str:
    """Save ``fig`` as ``out/name`` (``tt.plot.save``: tight layout, closed) and list ``name`` in ``files``."""
    tt.plot.save(fig, os.path.join(out, name), dpi=dpi)
    if files is not None:
        files.append(name)
    return name


class Checkpoints:
    """Trained models and their evaluations under ``folder``, reused by a rerun when the
    training ``signature`` (a JSON-able dict) and the model's state-dict keys still match."""

    def __init__(self, folder: str, signature: Dict) -> None:
        self.folder, self.signature = folder, signature
        os.makedirs(folder, exist_ok=True)

    def _path(self, tag: str) -> str:
        return os.path.join(self.folder, tag + ".pt")

    def load(self, tag: str, model: nn.Module) -> Optional[Dict]:
        """Load ``tag`` into ``model`` and return the saved extras, or None (absent or stale)."""
        if not os.path.exists(self._path(tag)):
            return None
        blob = torch.load(self._path(tag), map_location="cpu", weights_only=False)
        if blob.get("signature") != self.signature or set(blob["state_dict"]) != set(model.state_dict()):
            return None
        model.load_state_dict(blob["state_dict"])
        return blob

    def save(self, tag: str, model: nn.Module, **extra) -> None:
        torch.save({"state_dict": model.state_dict(), "signature": self.signature, **extra}, self._path(tag))

    def load_json(self, name: str) -> Optional[Dict]:
        path = os.path.join(self.folder, name)
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            return json.load(fh)

    def save_json(self, name: str, obj: Dict) -> None:
        write_results(self.folder, obj, name=name)


# ------------------------------------------------------------------------------ statistics
def mean_sd(vals: Iterable[Optional[float]]) -> Tuple[float, float]:
    """Mean and sample SD of the finite values (None and NaN skipped); (nan, nan) if none."""
    v = [x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd
