"""The outputs of examples/topographic_mnist.py (Truong & Hasson, arXiv:2508.00043): the figures
(metrics against λ, weight- and input-noise robustness, correlation structure, per-class and
expert maps, preferred-orientation maps) and report.md."""
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


def report(args, data, summary, tables, claim_lines, files, elapsed, lam: float) -> str:
    """report.md: the tables, figures, notes and claim verdicts; ``lam`` the representative λ."""
    def fig(name, caption):
        return f"![{caption}]({name})\n\n*{caption}*\n\n" if name in files else ""

    notes = [
        "Truong & Hasson train on full MNIST (48k/12k) for 10 epochs at Adam lr 1e-3, batch 64. The offline "
        "sample has 3,200 training images after the 80/20 split, i.e. 15× fewer steps per epoch, so on it "
        "the defaults are batch 32 and lr 3e-3 (pass --lr 1e-3 --batch-size 64 for the paper's values); "
        "accuracies are therefore far below full-MNIST levels and every comparison is between small models.",
        "AS uses the pre-ReLU fc1 output and 1 − Pearson r over the batch (the paper's AS training code "
        "is not released; this is the natural reading). WS uses correlation distance on MNIST and cosine on "
        "CIFAR-10, as in the released models.",
        "Expert units: d′ > 1 (the paper's threshold is not published). Localisation is torchtopo's "
        "statistic (1 − mean expert distance / mean random distance), not necessarily the paper's.",
        "Weight noise is absolute (σ in weight units) on fc1 or on all parameters; the RSM cosine compares "
        "the off-diagonal upper triangles of the fc2 class-weight correlation matrices.",
        "Input noise is added in [0, 1] pixel space and clamped; pink noise has true 1/f power "
        "(the released code's amplitude ÷ f is brown noise).",
    ]
    return "".join([
        "# Topographic regularization: WS vs AS (Truong & Hasson)\n\n",
        f"Dataset: **{args.dataset}**, {data[0].shape[0]} training images (80/20 train/validation split per "
        f"seed) and {data[2].shape[0]} test images; {args.epochs} epochs, Adam lr {args.lr:g}, batch "
        f"{args.batch_size}; {args.seeds} model(s) per condition, λ ∈ {args.lambdas}; WS distance "
        f"{args.ws_distance}, AS distance {args.as_distance} (pre-ReLU fc1, 11×11, 8 neighbours). "
        f"Values are mean ± SD over models. This invocation took {elapsed:.0f} s "
        f"({args._counts['trained']} models trained, {args._counts['loaded']} loaded from --out/checkpoints).\n\n",
        "## Accuracy and smoothness\n\n",
        "acc: test accuracy (%); morans_i: Moran's I of each test image's 11×11 pre-ReLU fc1 map "
        "(binary 8-neighbour weights), averaged over images; neighbor_r: mean Pearson r between "
        "neighbouring units' responses over the test set.\n\n",
        tables["main"] + "\n\n",
        fig("metrics_vs_lambda.png", "Metrics against λ (WS, AS; black line and band: control)"),
        "## Robustness\n\n",
        "Accuracy change (percentage points) from the same model's clean accuracy. noise_*: mean over "
        "the levels 0.01, 0.05, 0.1, 0.15, 0.2 of white (σ), pink (σ, true 1/f power) and "
        "salt-and-pepper (p) noise in [0, 1] pixel space; wnoise_*_0.1: Gaussian weight noise σ = 0.1 on "
        "fc1 only or on all layers; wnoise_all_rsm_0.1: cosine similarity of the readout (fc2) "
        "class-weight RSM before/after."
        + (" common_mean_change: mean over the 15 ImageNet-C corruptions × 5 severities "
           "(torchtopo's torch re-implementation, frost synthesised)." if args.common_corruptions else "")
        + "\n\n",
        tables["rob"] + "\n\n",
        fig("weight_noise.png", "Weight-noise robustness (control and λ = %g)" % lam),
        fig("corruptions.png", "Input-noise robustness (control and λ = %g)" % lam),
        fig("common_corruptions.png", "The 15 common corruptions"),
        fig("noise_examples.png", "A test digit under the three noises"),
        "## Representations\n\n",
        "corr_abs_mean: mean |r| over all unit pairs; corr_bimodality: Sarle's bimodality coefficient "
        "(skew² + 1)/kurtosis of the pairwise r (> 0.555 suggests bimodality); entropy: Shannon entropy "
        "(bits, 32 bins) of each unit's pre-ReLU activations; poz: % of test inputs with zero post-ReLU "
        "output; dead_units: units that are never active; ed_*: participation ratio of the activation "
        "covariance and of the fc1 weight rows; sensitivity: activation variance across stimuli; "
        "weight_norm: mean ‖w_i‖ of fc1 rows.\n\n",
        tables["repr"] + "\n\n",
        fig("correlation_structure.png", "Correlation vs grid distance, and the distribution of pairwise r"),
        "## Category selectivity, localisation and probes\n\n",
        "expert_fraction: share of units with d′ > 1 for some class; localization: 1 − (mean sheet "
        "distance between a class's experts)/(mean distance between random units), averaged over classes; "
        "dprime_morans_i: Moran's I of the per-class d′ maps; osi: mean orientation selectivity index "
        "(gratings); orientation_morans_i: Moran's I of the preferred-orientation map (cos 2θ, sin 2θ); "
        "symmetry_abs_dprime: mean |d′| symmetric vs asymmetric patterns; eccentricity_slope: mean slope "
        "of the response to a blob against its distance from the centre.\n\n",
        tables["func"] + "\n\n",
        *(fig(f"maps_per_class_{n}.png", f"{n}: mean fc1 map per class")
          + fig(f"experts_{n}.png", f"{n}: selectivity maps and expert units") for n in summary),
        fig("orientation_maps.png", "Preferred-orientation maps"),
        "## Notes and deviations from the study\n\n",
        "".join(f"* {n}\n" for n in notes) + "\n",
        "## Published claims (Truong & Hasson, arXiv:2508.00043) against this run\n\n",
        "Automatic verdicts: a difference counts when it exceeds 2 standard errors. Models with the same "
        "seed share their initialisation and data split across conditions, so differences are paired by "
        "seed (SE = SD of the per-seed differences / √n); with 3 seeds this is a lenient heuristic, not a "
        "significance test. With one model per condition only the direction is reported.\n\n",
        "\n".join(claim_lines) + "\n",
    ])
