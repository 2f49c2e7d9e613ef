"""Figures of examples/topographic_mnist.py (Truong & Hasson, arXiv:2508.00043): metrics against λ,
weight- and input-noise robustness, correlation structure, per-class and expert maps, preferred
orientation maps."""
from __future__ import annotations

from typing import List

import torch

import torchtopo as tt
from _common import pyplot, save_fig


def figures(args, summary, conds, reps, data, rep_lam: float, noise_levels, weight_sigmas) -> List[str]:
    """Write the figures into ``args.out``; returns their file names.  ``reps``: the first model of
    the control and of each method at the representative λ ``rep_lam``."""
    plt = pyplot()
    A, P = tt.analysis, tt.plot
    files: List[str] = []
    xte, yte = data[2], data[3]

    def save(fig, name):
        save_fig(fig, args.out, name, files, dpi=90)

    lams = args.lambdas
    ctrl = summary.get("control", {})

    def vs_lambda(key, ylabel, ax):
        series = {}
        for method in ("WS", "AS"):
            ms = [summary.get(f"{method}_{l:g}", {}).get(key, [float("nan")] * 2) for l in lams]
            series[method] = (lams, [m[0] for m in ms], [m[1] for m in ms])
        P.metric_vs_strength(series, ax=ax, ylabel=ylabel, control=tuple(ctrl.get(key, [float("nan")] * 2)))

    # 1. accuracy, smoothness, entropy/PoZ, localisation vs λ
    panels = [("acc", "test accuracy (%)"), ("morans_i", "Moran's I (fc1 map)"), ("neighbor_r", "neighbour r"),
              ("entropy", "unit entropy (bits)"), ("poz", "PoZ (%)"), ("sensitivity", "input sensitivity (var)"),
              ("localization", "expert localisation"), ("ed_acts", "effective dim. (acts)"), ("osi", "mean OSI")]
    fig, axes = plt.subplots(3, 3, figsize=(12, 9))
    for (key, yl), ax in zip(panels, axes.flat):
        vs_lambda(key, yl, ax)
    fig.suptitle("metrics vs λ (mean ± SD over seeds; black: control)")
    fig.tight_layout()
    save(fig, "metrics_vs_lambda.png")

    show = [c["name"] for c in conds
            if (c["method"] == "control" or c["lam"] == rep_lam) and c["name"] in summary]
    # 2. weight-noise robustness
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, yl, tl in ((axes[0], "wnoise_fc1_change", "accuracy change (pp)", "noise on fc1"),
                            (axes[1], "wnoise_all_change", "accuracy change (pp)", "noise on all layers"),
                            (axes[2], "wnoise_all_rsm", "readout RSM cosine", "readout RSM, all layers")):
        P.accuracy_vs_severity({n: (weight_sigmas, *summary[n][key]) for n in show if key in summary.get(n, {})},
                               ax=ax, xlabel="weight noise σ", ylabel=yl, title=tl)
        ax.set_xscale("log")
    fig.tight_layout()
    save(fig, "weight_noise.png")

    # 3. input-corruption robustness
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, kind in zip(axes, tt.robustness.NOISE_CORRUPTIONS):
        series = {n: (noise_levels, *summary[n]["noise_change"][kind]) for n in show if "noise_change" in summary.get(n, {})}
        P.accuracy_vs_severity(series, ax=ax, xlabel="σ" if kind != "salt_and_pepper" else "p", title=kind)
    fig.tight_layout()
    save(fig, "corruptions.png")
    if args.common_corruptions and all("common_change" in summary.get(n, {}) for n in show):
        kinds = tt.robustness.COMMON_CORRUPTIONS
        fig, axes = plt.subplots(3, 5, figsize=(16, 9))
        for ax, kind in zip(axes.flat, kinds):
            P.accuracy_vs_severity({n: ([1, 2, 3, 4, 5], *summary[n]["common_change"][kind]) for n in show}, ax=ax, title=kind)
        fig.tight_layout()
        save(fig, "common_corruptions.png")

    # 4. correlation structure: curves and histograms (mean over seeds)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    curves = {}
    for n in show:
        s = summary[n]
        curves[n] = {"distance": torch.tensor(s["corr_distance"][0]), "mean": torch.tensor(s["corr_mean"][0]),
                     "std": torch.tensor(s["corr_mean"][1])}
    P.correlation_vs_distance(curves, ax=axes[0], title="response correlation vs grid distance")
    centres = torch.linspace(-1, 1, 41)[:-1] + 1 / 40
    for n in show:
        axes[1].plot(centres.numpy(), summary[n]["corr_hist"][0], label=n)
    axes[1].set_xlabel("pairwise response correlation r")
    axes[1].set_ylabel("share of unit pairs")
    axes[1].legend(fontsize=7)
    axes[1].set_title("distribution of pairwise r", fontsize=9)
    fig.tight_layout()
    save(fig, "correlation_structure.png")

    # 5. per-model maps: class means, experts, orientation preference (first seed)
    for n, model in reps.items():
        acts, labels = A.collect_activations(model, "fc1", (xte, yte), batch_size=128, device=args.device)
        means = torch.stack([acts[labels == c].mean(0) if (labels == c).any() else torch.zeros(acts.shape[1]) for c in range(10)])
        fig = P.grid_maps(means, model.fc1.grid, titles=[str(c) for c in range(10)],
                          suptitle=f"{n}: mean pre-ReLU fc1 map per class")
        save(fig, f"maps_per_class_{n}.png")
        d = A.selectivity(acts, labels, 10)
        fig = P.expert_map(d, model.fc1.grid, threshold=1.0)
        fig.suptitle(f"{n}: d′ per class, experts (d′ > 1) outlined", fontsize=9)
        save(fig, f"experts_{n}.png")
    fig, axes = plt.subplots(1, len(reps), figsize=(3.2 * len(reps), 3.2), squeeze=False)
    for ax, (n, model) in zip(axes[0], reps.items()):
        ot = A.orientation_tuning(model, "fc1", size=xte.shape[-1], channels=xte.shape[1])
        im = ax.imshow(ot["preferred"].reshape(11, 11).numpy(), cmap="hsv", vmin=0, vmax=180)
        ax.set_title(f"{n}: preferred orientation", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="degrees")
    save(fig, "orientation_maps.png")
    fig = P.corruption_gallery(xte[0], list(tt.robustness.NOISE_CORRUPTIONS), [1, 3, 5], noise_severities=[0.05, 0.1, 0.2])
    save(fig, "noise_examples.png")
    return files
