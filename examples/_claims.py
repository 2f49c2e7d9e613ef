"""Summaries over seeds, tables, and verdicts on Truong & Hasson's claims (arXiv:2508.00043).

Models of the same seed share their initialisation and data split across conditions, so every
comparison is paired by seed: with d_s = a_s − b_s the per-seed differences over the n seeds
both conditions have, the 95 % confidence interval of the mean difference is

    d̄ ± t(0.975, n − 1) · SD(d) / √n.

A verdict is given only where that interval excludes the value the claim turns on (0, or a
stated tolerance); otherwise the claim is "not resolved".  One seed gives no interval and no
verdict.  Robustness curves are compared only at the levels where both conditions' mean accuracy
is above chance + 5 pp: below that every model sits at the floor and differences mean nothing.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from _common import mean_sd, mean_se_ci

#: robustness curves stored per model as ``acc_<kind>`` / ``chg_<kind>`` (lists over levels)
CURVES = ("white", "pink", "brown", "salt_and_pepper", "wfc1", "wall")
CURVE_LABELS = {"white": "white noise", "pink": "pink noise (true 1/f power)",
                "brown": "brown noise (amplitude ÷ f, the authors' \"pink\")", "salt_and_pepper": "salt-and-pepper",
                "wfc1": "weight noise on fc1", "wall": "weight noise on all layers"}
CHANCE = 10.0  # %, ten classes
FLOOR = CHANCE + 5.0


def cell(text) -> str:
    """``text`` safe inside a Markdown table cell (a ``|`` such as in ``1 − |r|`` would split it)."""
    return str(text).replace("|", "\\|")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def ci(vals: Sequence[float]) -> Dict:
    """``n``, ``mean``, ``sd`` and the 95 % t interval ``lo``, ``hi`` of the finite values
    (``_common.mean_se_ci``; ``sd``/``lo``/``hi`` None when n < 2)."""
    s = mean_se_ci(vals)
    return {"n": s["n"], "mean": s["mean"], "sd": s["sd"], "lo": s["ci_low"], "hi": s["ci_high"]}


# ------------------------------------------------------------------------------ summaries and tables
def mean_curve(curves: Sequence[Sequence[float]]) -> Tuple[List[float], List[float]]:
    """Point-wise mean and SD of curves (cut to the shortest)."""
    curves = [c for c in curves if c]
    if not curves:
        return [], []
    n = min(len(c) for c in curves)
    ms = [mean_sd([c[k] for c in curves]) for k in range(n)]
    return [m for m, _ in ms], [s for _, s in ms]


def summarise(results: Dict[str, List[Dict]]) -> Dict[str, Dict]:
    """Per condition: ``n`` and, per key, ``[mean, sd]`` of numbers or ``[means, sds]`` of lists
    of numbers, over that condition's models (booleans count as 0/1)."""
    out = {}
    for name, runs in results.items():
        if not runs:
            continue
        s: Dict = {"n": len(runs), "ci": {}}
        for k in sorted(set().union(*[r.keys() for r in runs])):
            vals = [r.get(k) for r in runs]
            if all(isinstance(v, (int, float)) or v is None for v in vals):
                s[k] = list(mean_sd([float(v) if v is not None else None for v in vals]))
                c = ci([float(v) for v in vals if v is not None])
                s["ci"][k] = [c["lo"], c["hi"]]
            elif all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in vals if v is not None):
                s[k] = list(mean_curve([v for v in vals if v is not None]))
        out[name] = s
    return out


def fmt_cell(m: Optional[float], sd: Optional[float], n: int, f: str = "{:.3f}", *,
             interval: Optional[Sequence[Optional[float]]] = None) -> str:
    """``mean ± SD``, or ``mean [low, high]`` given an ``interval``; the mean alone for n = 1."""
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "–"
    if n < 2 or sd is None or sd != sd:
        return f.format(m)
    if interval is not None and interval[0] is not None:
        return f"{f.format(m)} [{f.format(interval[0])}, {f.format(interval[1])}]"
    return f"{f.format(m)} ± {f.format(sd)}"


def table(summary: Dict[str, Dict], names: Sequence[str], keys: Sequence[str], fmt: Dict[str, str], *,
          interval: bool = False, labels: Optional[Dict[str, str]] = None) -> str:
    """A markdown table: one row per condition in ``names`` (that has models), one column per
    key present in some row; mean ± SD over seeds (or mean [95 % CI] with ``interval``)."""
    keys = [k for k in keys if any(k in summary.get(n, {}) for n in names)]
    head = "| condition | n | " + " | ".join(f"`{k}`" for k in keys) + " |"  # code spans: no stray italics
    rows = [head, "|---|---|" + "---|" * len(keys)]
    for name in names:
        s = summary.get(name)
        if s is None:
            continue
        cells = [fmt_cell(*s.get(k, [float("nan"), float("nan")]), s["n"], fmt.get(k, "{:.3f}"),
                          interval=s.get("ci", {}).get(k) if interval else None) for k in keys]
        rows.append(f"| {cell((labels or {}).get(name, name))} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------ paired comparisons
def per_seed(results: Dict[str, List[Dict]], name: str, key: str) -> Dict[int, float]:
    return {r["seed"]: float(r[key]) for r in results.get(name, []) if _finite(r.get(key))}


def paired(results: Dict[str, List[Dict]], a: str, b: str, key: str) -> Dict:
    """:func:`ci` of the per-seed differences a − b of a scalar ``key`` over the seeds both have."""
    ra, rb = per_seed(results, a, key), per_seed(results, b, key)
    return ci([ra[s] - rb[s] for s in sorted(set(ra) & set(rb))])


def informative_levels(results: Dict[str, List[Dict]], names: Sequence[str], kind: str) -> List[int]:
    """Indices of the levels of curve ``kind`` at which every condition in ``names`` has a mean
    accuracy above chance + 5 pp."""
    curves = [r[f"acc_{kind}"] for n in names for r in results.get(n, []) if f"acc_{kind}" in r]
    if not curves:
        return []
    per_cond = [mean_curve([r[f"acc_{kind}"] for r in results.get(n, []) if f"acc_{kind}" in r])[0] for n in names]
    L = min(len(c) for c in per_cond)
    return [i for i in range(L) if all(c[i] > FLOOR for c in per_cond)]


def paired_curve(results: Dict[str, List[Dict]], a: str, b: str, kind: str) -> Tuple[Dict, List[int]]:
    """Paired :func:`ci` of the difference a − b in accuracy change (pp, each model against its
    own clean accuracy) averaged over the informative levels of ``kind``, and those levels."""
    lv = informative_levels(results, [a, b], kind)
    if not lv:
        return ci([]), lv

    def val(r):
        return sum(r[f"chg_{kind}"][i] for i in lv) / len(lv)

    ra = {r["seed"]: val(r) for r in results.get(a, []) if f"chg_{kind}" in r}
    rb = {r["seed"]: val(r) for r in results.get(b, []) if f"chg_{kind}" in r}
    return ci([ra[s] - rb[s] for s in sorted(set(ra) & set(rb))]), lv


def verdict(d: Dict, *, higher: bool = True, tolerance: Optional[float] = None, ceiling: Optional[float] = None) -> str:
    """The verdict on a paired :func:`ci` of a − b.  ``higher``: the claim says a > b.
    ``tolerance``: the claim says a is not below b by more than it (accuracy "largely kept").
    ``ceiling``: the claim says a is not above b by more than it ("no smoothness")."""
    if d["n"] == 0:
        return "not measured"
    if d["n"] < 2:
        return "not resolved (1 seed)"
    if not d["sd"]:
        return "not resolved (no spread over seeds)"
    lo, hi = d["lo"], d["hi"]
    if tolerance is not None:
        return "agrees" if lo > -tolerance else ("disagrees" if hi < -tolerance else "not resolved")
    if ceiling is not None:
        return "agrees" if hi < ceiling else ("disagrees" if lo > ceiling else "not resolved")
    if lo > 0:
        return "agrees" if higher else "disagrees"
    if hi < 0:
        return "disagrees" if higher else "agrees"
    return "not resolved"


def fmt_diff(d: Dict, f: str = "{:+.3g}") -> str:
    if d["n"] == 0:
        return "–"
    if d["n"] < 2:
        return f.format(d["mean"])
    return f"{f.format(d['mean'])} [{f.format(d['lo'])}, {f.format(d['hi'])}]"


def claims(results: Dict[str, List[Dict]], conds: Sequence[Dict], args) -> List[str]:
    """Markdown lines of the claims table at the representative λ: one row per published claim,
    one column per regularized condition.  A cell gives the paired difference against the
    comparison condition (mean [95 % CI] over seeds) and, in the columns the claim is about, the
    verdict.  Rows whose measure this run lacks are left out."""
    lam = 1.0 if 1.0 in args.lambdas else sorted(args.lambdas)[len(args.lambdas) // 2]
    cols = [c for c in conds if c["method"] != "control" and c["lam"] == lam and results.get(c["name"])]
    ws = next((c["name"] for c in cols if c["method"] == "WS"), None)
    img = {"WS"} if args.dataset != "cifar10" else {"AS"}
    where = "MNIST" if args.dataset != "cifar10" else "CIFAR-10"
    rows = [  # (claim, measure, key, comparison, methods the claim is about, verdict options)
        ("WS gives smooth maps", "Moran's I", "morans_i", "control", {"WS"}, {}),
        ("WS gives correlated neighbourhoods", "neighbour r", "neighbor_r", "control", {"WS"}, {}),
        ("AS gives a bimodal inter-unit correlation distribution", "bimodality coeff. of pairwise r",
         "corr_bimodality", "control", {"AS"}, {}),
        ("AS maps are less smooth than WS maps", "Moran's I, against WS", "morans_i", ws, {"AS"}, {"higher": False}),
        ("AS gives no spatial smoothness", "Moran's I, against control (agrees: CI below +0.1)", "morans_i",
         "control", {"AS"}, {"ceiling": 0.1}),
        ("AS maps are striped", "stripe contrast abs(I_vertical − I_horizontal)", "stripe_contrast", "control",
         {"AS"}, {}),
    ]
    rows += [(f"{'/'.join(sorted(img))} improves robustness to image degradation ({where}): {CURVE_LABELS[k]}",
              "acc. change (pp), informative levels", ("curve", k), "control", img, {})
             for k in ("white", "pink", "brown", "salt_and_pepper")]
    rows += [("WS and AS improve robustness to weight perturbation", "acc. change (pp), all layers, informative levels",
              ("curve", "wall"), "control", {"WS", "AS"}, {}),
             ("WS and AS keep the readout geometry under weight noise", "readout RSM cosine, σ = 0.1, all layers",
              "rsm_wall_0.1", "control", {"WS", "AS"}, {}),
             ("WS raises unit input sensitivity", "mean activation variance", "sensitivity", "control", {"WS"}, {}),
             ("WS raises functional localisation", f"expert localisation (d′ > {args.expert_threshold:g})",
              "localization", "control", {"WS"}, {}),
             ("accuracy is largely kept", "test acc. (pp; agrees: CI above −1)", "acc", "control", {"WS", "AS"},
              {"tolerance": 1.0})]
    head = "| published claim | measure | " + " | ".join(cell(c["label"]) for c in cols) + " |"
    lines = [head, "|---|---|" + "---|" * len(cols)]
    for claim, what, key, b, about, opt in rows:
        if b is None:
            continue
        cells, seen = [], False
        for c in cols:
            if c["name"] == b:
                cells.append("–")
                continue
            if isinstance(key, tuple):
                d, lv = paired_curve(results, c["name"], b, key[1])
                extra = "" if lv else " (all levels at chance)"
            else:
                d, extra = paired(results, c["name"], b, key), ""
            seen = seen or d["n"] > 0
            num = fmt_diff(d) + extra
            cells.append(f"**{verdict(d, **opt)}** {num}" if c["method"] in about else f"({num})")
        if seen:
            lines.append(f"| {cell(claim)} | {cell(what)} | " + " | ".join(cells) + " |")
    return lines
