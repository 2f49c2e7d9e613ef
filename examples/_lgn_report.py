"""Statistics over seeds, figures and report.md of examples/lgn_lateral_emergence.py (Bertoni,
Montobbio, Sarti & Citti 2021)."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch

import torchtopo as tt
from _common import ci_verdict, fmt_mean, mean_se_ci, pyplot, save_fig

MEASURES = {"sum": "net Σ K", "positive": "excitatory Σ max(K, 0)", "abs": "absolute Σ abs(K)"}


def _num(x: Optional[float], f: str = "{:.3f}") -> str:
    return "–" if x is None else f.format(x)


def aggregate(a, recs: List[Dict]) -> Dict:
    """Paired trained − untrained differences of the emergence measures, and the lateral test
    over the seeds where it is testable."""
    def both(get):
        return [get(r["trained"]) for r in recs], [get(r["untrained"]) for r in recs]

    emergence = {}
    for key, label, get in (("l0_log_r2", "ℓ0 LoG fit R²", lambda d: d["l0"]["r2"]),
                            ("l0_isotropy", "ℓ0 isotropy (radial symmetry)", lambda d: d["l0"]["radial_symmetry"]),
                            ("l1_share_fitted", f"share of ℓ1 filters with Gabor R² > {a.r2_threshold}",
                             lambda d: d["l1"]["share_r2_above"]),
                            ("l1_orientation_bins", "orientation bins covered (of 6)", lambda d: d["l1"]["orientation_bins_covered"])):
        tr, un = both(get)
        d = mean_se_ci([x - y for x, y in zip(tr, un) if x is not None and y is not None])
        emergence[key] = {"label": label, "trained": mean_se_ci(tr), "untrained": mean_se_ci(un), "difference": d,
                          "verdict": ci_verdict(d, positive="trained above untrained",
                                                negative="trained below untrained", what="trained − untrained")}
    testable = [r for r in recs if r["trained"]["lateral"]["testable"]]
    lateral = {}
    for m in MEASURES:
        vals = [r["trained"]["lateral"][m]["r"] - r["trained"]["lateral"][m]["shuffled_r_mean"] for r in testable
                if r["trained"]["lateral"][m]["r"] is not None and r["trained"]["lateral"][m]["shuffled_r_mean"] is not None]
        lateral[m] = mean_se_ci(vals)
    if len(testable) >= 2:
        verdict = ci_verdict(lateral["sum"], positive="disagrees with the study (dissimilarly tuned filters connected more strongly)",
                             negative="agrees with the study (similarly tuned filters connected more strongly)",
                             what="r(Δθ, net K) − shuffled")
    elif len(testable) == 1:
        verdict = "no verdict: testable in only one seed"
    else:
        why = [f"seed {r['seed']}: " + ", ".join(r["trained"]["lateral"]["not_testable_because"]) for r in recs]
        verdict = "not testable in this run (" + "; ".join(why) + ")"
    return {"emergence": emergence, "lateral": lateral, "testable_seeds": [r["seed"] for r in testable],
            "lateral_verdict": verdict,
            "test_accuracy": mean_se_ci([r["test_accuracy"] for r in recs]),
            "loss_change_last_tenth_percent": mean_se_ci([100 * (r["final_loss"] - r["loss_previous_tenth"]) /
                                                          max(abs(r["loss_previous_tenth"]), 1e-12) for r in recs])}


# ------------------------------------------------------------------------------ figures
def _np(t: torch.Tensor):
    return t.detach().cpu().numpy()


def make_figures(out: str, model, after: Dict, before: Dict, losses: List[float], seed: int) -> List[str]:
    """The figures of one seed's network (``seed``: named in the titles)."""
    plt = pyplot()
    files: List[str] = []
    ell0, log = model.lgn.filter.detach(), after["_log"]
    fig, axs = plt.subplots(1, 5, figsize=(13.5, 3.6), gridspec_kw={"width_ratios": [1, 1, 0.06, 0.55, 1.4]})
    axs[3].axis("off")  # room for the colour bar's labels
    ax = [axs[0], axs[1], axs[4]]
    v = float(ell0.abs().max()) + 1e-12
    im = ax[0].imshow(_np(ell0), cmap="RdBu_r", vmin=-v, vmax=v)
    ax[0].set_title(f"ℓ0 learned (seed {seed})", fontsize=9)
    ax[1].imshow(_np(log["fitted"]), cmap="RdBu_r", vmin=-v, vmax=v)
    ax[1].set_title(f"LoG fit σ = {float(log['sigma']):.2f} px, R² = {float(log['r2']):.2f}", fontsize=9)
    fig.colorbar(im, cax=axs[2], label="filter weight (a.u.)")
    k = ell0.shape[0]
    c = (k - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(k) - c, torch.arange(k) - c, indexing="ij")
    r = torch.sqrt(xx**2 + yy**2).flatten()
    ax[2].scatter(_np(r), _np(ell0.flatten()), s=10, label="ℓ0 pixels")
    o = torch.argsort(r)
    ax[2].plot(_np(r[o]), _np(log["fitted"].flatten()[o]), color="k", lw=1, label="LoG fit")
    ax[2].set_xlabel("distance from centre (px)")
    ax[2].set_ylabel("filter weight (a.u.)")
    ax[2].set_title(f"isotropy (radial symmetry) {float(log['radial_symmetry']):.2f}", fontsize=9)
    ax[2].legend(fontsize=7)
    for a_ in ax[:2]:
        a_.set_xlabel("x (px)")
    ax[0].set_ylabel("y (px)")
    save_fig(fig, out, "l0_log_fit.png", files)

    filt, gab = model.v1.conv.weight.detach().sum(1), after["_gabor"]
    n, cols = filt.shape[0], 8
    order = torch.argsort(gab["r2"], descending=True)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(2 * rows, cols, figsize=(cols * 1.3, 2 * rows * 1.35), squeeze=False)
    for t, i in enumerate(order.tolist()):
        rr, cc = 2 * (t // cols), t % cols
        v = float(filt[i].abs().max()) + 1e-12
        axes[rr, cc].imshow(_np(filt[i]), cmap="RdBu_r", vmin=-v, vmax=v)
        axes[rr, cc].set_title(f"{i}: R²={float(gab['r2'][i]):.2f}", fontsize=7)
        axes[rr + 1, cc].imshow(_np(gab["fitted"][i]), cmap="RdBu_r", vmin=-v, vmax=v)
    for a_ in axes.flat:
        a_.set_xticks([])
        a_.set_yticks([])
    fig.suptitle("ℓ1 filters (odd rows) and Gabor fits (even rows), best fit first; 7×7 px, colour: weight "
                 "(red +, blue −, each filter scaled to its max |w|)", fontsize=8)
    save_fig(fig, out, "l1_gabor_fits.png", files)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = torch.linspace(-0.2, 1.0, 25).tolist()
    ax.hist([max(x, -0.2) for x in before["l1"]["r2"] if x is not None], bins=bins, alpha=0.6, label="untrained")
    ax.hist([max(x, -0.2) for x in after["l1"]["r2"] if x is not None], bins=bins, alpha=0.6, label="trained")
    ax.axvline(0.8, color="k", ls="--", lw=0.8, label="R² = 0.8")
    ax.set_xlabel(f"Gabor fit R² of ℓ1 filters (seed {seed})")
    ax.set_ylabel("filters")
    ax.legend(fontsize=8)
    save_fig(fig, out, "l1_gabor_r2.png", files)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    tt.analysis.plot_lateral_selectivity(after["_sel"], ax=ax, label="trained K (net Σ K)")
    ax.set_xlabel("orientation difference Δθ (degrees)")
    ax.set_ylabel("mean Σ K per pair (a.u.)")
    ax.legend(fontsize=8)
    save_fig(fig, out, "lateral_selectivity.png", files)
    save_fig(tt.analysis.plot_association_field(after["_field"]), out, "association_field.png", files)
    units = torch.nonzero(after["_mask"]).flatten()
    units = units[torch.argsort(gab["r2"][units], descending=True)][:8].tolist()
    if units:
        fig = tt.analysis.plot_unit_association_fields(model.v1.lateral_weight.detach(), gab["orientation"], units,
                                                       mask=after["_mask"])
        save_fig(fig, out, "association_fields_units.png", files)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(losses, lw=0.7, label="per step")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (cross-entropy, nats)")
    ax.legend(fontsize=8)
    save_fig(fig, out, "training_loss.png", files)
    return files


# ------------------------------------------------------------------------------ report
def report(a, r: Dict) -> str:
    recs, em = r["seeds"], r["emergence"]
    shown = next((x for x in recs if x["seed"] == r.get("figure_seed")), recs[0])  # the figures' seed
    n = len(recs)
    lines = [
        "# LGN pre-filter and lateral connections: emergence",
        "",
        f"Dataset `{a.dataset}`, {n} seed(s) ({', '.join(str(x['seed']) for x in recs)}), {a.steps} steps × batch "
        f"{a.batch_size} ({a.optimizer}, lr {a.lr}, cosine); `tt.models.lgn_cnn` with {a.channels} ℓ1 filters 7×7, "
        f"lateral kernel {a.lateral_kernel_size}×{a.lateral_kernel_size}, T = {a.lateral_steps} ({a.update}).  "
        f"Run time {r['seconds']:.0f} s.",
        "",
        "**What this run can decide:** whether LoG-like ℓ0 and Gabor-like ℓ1 filters emerge relative to the untrained "
        "network, and — only where enough fitted filters cover the orientations in at least two seeds — whether the "
        "learned K connects similarly tuned filters more strongly.  **What it cannot:** association-field geometry "
        "against SE(2) models beyond the indices below, or the study's exact architecture (its update rule and T are "
        "unconfirmed).",
        "",
        f"**Lateral claim: {r['lateral_verdict']}.**",
        "",
        f"Test accuracy {fmt_mean(r['test_accuracy'], '{:.1f}', unit=' %')} (chance {recs[0]['chance_accuracy']:.1f} %); "
        f"training loss change over the last tenth of training {fmt_mean(r['loss_change_last_tenth_percent'], '{:+.1f}', unit=' %')} "
        "(near 0: a plateau; the cosine schedule ends at lr 0, so a flat end is partly the schedule).",
        "",
        "## Emergence: trained vs untrained, paired by seed",
        "",
        "| measure | untrained | trained | trained − untrained: mean ± SE [95 % CI] | verdict |",
        "|---|---|---|---|---|",
    ]
    for d in em.values():
        lines.append(f"| {d['label']} | {fmt_mean(d['untrained'], '{:.3f}', ci=False)} | {fmt_mean(d['trained'], '{:.3f}', ci=False)} "
                     f"| {fmt_mean(d['difference'], '{:+.3f}')} | {d['verdict']} |")
    lines += ["", "## Per seed", "",
              "| seed | ℓ0 LoG R² | ℓ0 σ (px) | ℓ0 isotropy | ℓ1 fitted (R² > thr) | orientation bins covered | counts per 30° bin | lateral testable |",
              "|---|---|---|---|---|---|---|---|"]
    for x in recs:
        t = x["trained"]
        lat = t["lateral"]
        lines.append(f"| {x['seed']} | {_num(t['l0']['r2'])} | {_num(t['l0']['sigma'], '{:.2f}')} | {_num(t['l0']['radial_symmetry'])} "
                     f"| {t['l1']['n_fitted']} of {len(t['l1']['r2'])} | {t['l1']['orientation_bins_covered']} of 6 | "
                     f"{t['l1']['orientation_bin_counts']} | " + ("yes" if lat["testable"] else "no: " + "; ".join(lat["not_testable_because"])) + " |")
    lines += ["", "## Lateral kernel K: selectivity against orientation difference", "",
              "Pearson r(Δθ, strength) per measure, for the trained K and for K with shuffled entries (mean ± SD over "
              f"{a.shuffles} shuffles); negative r = similarly tuned filters connected more strongly (the study's claim).  "
              "One-sided permutation p-value (orientations shuffled).", "",
              "| seed | measure | units used | r (trained) | p | r (shuffled K) | co-axial index (shuffled) | co-circularity (shuffled) |",
              "|---|---|---|---|---|---|---|---|"]
    for x in recs:
        lat = x["trained"]["lateral"]
        for m, label in MEASURES.items():
            d = lat[m]
            sh = "–" if d["shuffled_r_mean"] is None else f"{d['shuffled_r_mean']:+.3f}" + (
                "" if d["shuffled_r_sd"] is None else f" ± {d['shuffled_r_sd']:.3f}")
            extra = (f"{_num(lat['coaxial_index'], '{:+.3f}')} ({_num(lat['coaxial_index_shuffled'], '{:+.3f}')}) | "
                     f"{_num(lat['cocircularity'], '{:+.3f}')} ({_num(lat['cocircularity_shuffled'], '{:+.3f}')})") if m == "sum" else " | "
            lines.append(f"| {x['seed']} | {label} | {lat['units_used']} ({lat['units_rule']}) | {_num(d['r'], '{:+.3f}')} | "
                         f"{_num(d['p_value'], '{:.3g}')} | {sh} | {extra} |")
    lines += ["", "Over the testable seeds (" + (", ".join(map(str, r["testable_seeds"])) or "none") + "), r − shuffled r: "
              + "; ".join(f"{MEASURES[m]} {fmt_mean(s, '{:+.3f}')}" for m, s in r["lateral"].items()) + ".", "",
              f"Mean Σ K per Δθ bin (seed {shown['seed']}; `empty` = no pair in the bin): "
              + ", ".join(f"{c:.0f}°: " + ("empty" if v is None else f"{v:+.4f}") for c, v in
                          zip(shown["trained"]["lateral"]["sum"]["bin_centers_deg"], shown["trained"]["lateral"]["sum"]["mean_strength"])),
              ""]
    if r.get("figures"):
        why = "the first seed whose lateral claim is testable" if shown["trained"]["lateral"]["testable"] else \
            "no seed's lateral claim is testable: the first seed"
        lines += [f"## Figures (seed {shown['seed']}: {why})", ""] + [f"![{f}]({f})" for f in r["figures"]]
    return "\n".join(lines) + "\n"
