"""Summaries over seeds, result tables and automatic verdicts on published claims.

A claim compares a measure between two conditions (say WS at λ = 1 against the control).  Models
of the same seed share their initialisation and data split across conditions, so when both
conditions have the same seeds the difference is paired by seed (SE = SD of the per-seed
differences / √n); otherwise the two means are compared with a Welch standard error.  A
difference counts when it exceeds 2 SE: with a few seeds a lenient heuristic, not a test.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from _common import mean_sd

Diff = Tuple[float, float, float, float]  # (mean a − b, its SE, mean a, mean b)


def mean_curve(curves: Sequence[Sequence[float]]) -> Tuple[List[float], List[float]]:
    """Point-wise mean and SD of curves (cut to the shortest)."""
    curves = [c for c in curves if c]
    if not curves:
        return [], []
    n = min(len(c) for c in curves)
    ms = [mean_sd([c[k] for c in curves]) for k in range(n)]
    return [m for m, _ in ms], [s for _, s in ms]


def summarise(results: Dict[str, List[Dict]], *, skip: Sequence[str] = ()) -> Dict[str, Dict]:
    """Per condition: ``n`` and, per key, ``[mean, sd]`` of scalars, ``[means, sds]`` of curves
    and ``{kind: [means, sds]}`` of dicts of curves, over that condition's models; keys in
    ``skip`` are not summarised."""
    out = {}
    for name, runs in results.items():
        if not runs:
            continue
        s = {"n": len(runs)}
        for k in sorted(set().union(*[r.keys() for r in runs])):
            vals = [r.get(k) for r in runs]
            if all(isinstance(v, (int, float)) or v is None for v in vals):
                s[k] = list(mean_sd(vals))
            elif all(isinstance(v, list) for v in vals if v is not None) and k not in skip:
                s[k] = list(mean_curve([v for v in vals if v is not None]))
            elif all(isinstance(v, dict) for v in vals if v is not None):
                s[k] = {kk: list(mean_curve([v[kk] for v in vals if v is not None])) for kk in vals[0]}
        out[name] = s
    return out


def fmt_cell(m: Optional[float], sd: float, n: int, f: str = "{:.3f}") -> str:
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "–"
    return f.format(m) + (f" ± {f.format(sd)}" if n > 1 else "")


def table(summary: Dict[str, Dict], names: Sequence[str], keys: Sequence[str], fmt: Dict[str, str]) -> str:
    """A markdown table: one row per condition in ``names``, mean ± SD of each key."""
    head = "| condition | n | " + " | ".join(f"`{k}`" for k in keys) + " |"  # code spans: no stray italics
    rows = [head, "|---|---|" + "---|" * len(keys)]
    for name in names:
        s = summary.get(name)
        if s is None:
            continue
        cells = [fmt_cell(*s.get(k, [float("nan"), float("nan")]), s["n"], fmt.get(k, "{:.3f}")) for k in keys]
        rows.append(f"| {name} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def difference(summary: Dict[str, Dict], a: str, b: str, key: str,
               results: Optional[Dict[str, List[Dict]]] = None) -> Optional[Diff]:
    """(mean difference a − b, its standard error, mean a, mean b), paired by seed when the
    per-model ``results`` of both conditions cover the same seeds (>= 2), else Welch; None
    when either side was not measured."""
    if a not in summary or b not in summary or key not in summary[a] or key not in summary[b]:
        return None
    (ma, sa), (mb, sb) = summary[a][key], summary[b][key]
    if any(isinstance(v, float) and math.isnan(v) for v in (ma, mb)):
        return None
    if results is not None:
        ra = {r["seed"]: r.get(key) for r in results.get(a, [])}
        rb = {r["seed"]: r.get(key) for r in results.get(b, [])}
        common = sorted(k for k in set(ra) & set(rb)
                        if isinstance(ra[k], (int, float)) and isinstance(rb[k], (int, float))
                        and ra[k] == ra[k] and rb[k] == rb[k])
        if len(common) >= 2 and len(common) == len(ra) == len(rb):
            m, sd = mean_sd([ra[k] - rb[k] for k in common])
            return m, sd / math.sqrt(len(common)), ma, mb
    na, nb = summary[a]["n"], summary[b]["n"]
    se = math.sqrt((sa**2) / na + (sb**2) / nb) if na > 1 and nb > 1 else float("nan")
    return ma - mb, se, ma, mb


def verdict(d: Optional[Diff], higher_is_claim: bool = True, tolerance: Optional[float] = None) -> str:
    """``higher_is_claim``: the claim says a > b.  ``tolerance``: the claim says a is not lower
    than b by more than this (accuracy "largely kept")."""
    if d is None:
        return "cannot tell (not measured)"
    diff, se, ma, mb = d
    if tolerance is not None:
        margin = max(tolerance, 2 * se) if se == se else tolerance
        if diff >= 0:
            return f"agrees (no drop: {diff:+.2f})"
        if -diff <= tolerance:
            return f"agrees (drop {-diff:.2f} ≤ {tolerance:g})"
        if -diff <= margin:
            return f"cannot tell (drop {-diff:.2f} > {tolerance:g} but within 2 SE = {margin:.2f})"
        return f"disagrees (drop {-diff:.2f} > {margin:.2f})"
    sign = 1 if higher_is_claim else -1
    if se != se or se == 0:
        if diff == 0:
            return "cannot tell (equal)"
        return ("agrees in direction (1 model per condition, no test)" if sign * diff > 0 else
                "disagrees in direction (1 model per condition, no test)")
    t = sign * diff / se
    if t > 2:
        return f"agrees (difference {diff:+.3g}, {abs(diff / se):.1f} SE)"
    if t < -2:
        return f"disagrees (difference {diff:+.3g}, {abs(diff / se):.1f} SE the other way)"
    return f"cannot tell (difference {diff:+.3g} is within 2 SE = {2 * se:.3g})"


def claim_table(summary: Dict[str, Dict], rows: Sequence[Tuple], results: Optional[Dict[str, List[Dict]]] = None) -> List[str]:
    """Markdown lines of a verdict table; each row is ``(claim, key, a, b, measure)`` with an
    optional dict ``{"higher": bool, "tolerance": float}`` as a sixth item."""
    lines = ["| published claim | measure | our run |", "|---|---|---|"]
    for claim, key, a, b, what, *opt in rows:
        kw = opt[0] if opt else {}
        d = difference(summary, a, b, key, results)
        nums = "" if d is None else f" — {a} {d[2]:.3g} vs {b} {d[3]:.3g}"
        lines.append(f"| {claim} | {what or key} | {verdict(d, kw.get('higher', True), kw.get('tolerance'))}{nums} |")
    return lines
