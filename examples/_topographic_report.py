"""The outputs of examples/topographic_mnist.py (Truong & Hasson, arXiv:2508.00043): its tables,
figures (metrics per condition or against λ, class-mean maps on one colour scale, directional
Moran's I, correlation histograms against the control's, accuracy against noise level) and
report.md."""
from __future__ import annotations

from typing import Dict, List

import torch

import torchtopo as tt
from _claims import CHANCE, CURVE_LABELS, CURVES, FLOOR, table
from _common import pyplot, save_fig

NOISE_LEVELS = [0.01, 0.05, 0.1, 0.15, 0.2]
WEIGHT_SIGMAS = [0.01, 0.02, 0.05, 0.1, 0.2]
XLABELS = {"white": "noise SD σ (pixel units, images in [0, 1])", "pink": "noise SD σ (pixel units)",
           "brown": "noise SD σ (pixel units)", "salt_and_pepper": "share p of pixels set to 0 or 1",
           "wfc1": "weight-noise SD σ (weight units)", "wall": "weight-noise SD σ (weight units)"}
DIRECTIONS = ("horizontal", "vertical", "diagonal", "antidiagonal")
FMT = {"acc": "{:.2f}", "val_acc": "{:.2f}", "epochs_run": "{:.1f}", "best_epoch": "{:.1f}", "plateau": "{:.2f}",
       "train_s": "{:.0f}", "eval_s": "{:.0f}", "poz": "{:.1f}", "ed_acts": "{:.1f}", "ed_weights": "{:.1f}",
       "dead_units": "{:.1f}", "rsm_wall_0.1": "{:.3f}"} | {f"chg_{k}_mean": "{:.2f}" for k in CURVES}


def tables(summary: Dict, conds: List[Dict], args) -> Dict[str, str]:
    """The report's markdown tables (mean ± SD over seeds; robustness: mean [95 % CI])."""
    names = [c["name"] for c in conds]
    dmi = [f"dmi_{d}" for d in DIRECTIONS]
    return {
        "train": table(summary, names, ["acc", "val_acc", "epochs_run", "best_epoch", "plateau", "train_s", "eval_s"], FMT),
        "main": table(summary, names, ["acc", "morans_i", "morans_i_centred", *dmi, "stripe_contrast", "mean_map_share",
                                       "corr_bimodality", "neighbor_r"], FMT),
        "dmi_centred": table(summary, names, [f"{k}_centred" for k in dmi], FMT),
        "rob": table(summary, names, [f"chg_{k}_mean" for k in CURVES] + ["rsm_wall_0.1"]
                     + (["common_mean_change"] if args.common_corruptions else []), FMT, interval=True),
        "repr": table(summary, names, ["corr_abs_mean", "entropy", "poz", "dead_units", "ed_acts", "ed_weights",
                                       "sensitivity", "weight_norm"], FMT),
        "func": table(summary, names, ["expert_fraction", "localization", "dprime_morans_i", "osi",
                                       "orientation_morans_i", "symmetry_abs_dprime", "eccentricity_slope"], FMT),
    }


def _dots(ax, x, vals, color="k"):
    ax.plot([x] * len(vals), vals, "o", ms=3, color=color, alpha=0.7, zorder=3)


def figures(args, summary, results, conds, reps, data, rep_lam: float) -> List[str]:
    """Write the figures into ``args.out``; returns their file names.  ``reps``: the first model
    of the control and of each condition at the representative λ ``rep_lam``."""
    plt = pyplot()
    A, P = tt.analysis, tt.plot
    files: List[str] = []
    xte, yte = data[2], data[3]

    def save(fig, name, tight=True):
        if tight:  # room for the suptitle
            fig.tight_layout(rect=(0, 0, 1, 0.95))
        save_fig(fig, args.out, name, files, dpi=90)

    panels = [("acc", "test accuracy (%)"), ("morans_i", "Moran's I of the fc1 maps"),
              ("morans_i_centred", "Moran's I, mean map removed"), ("mean_map_share", "mean-map share of variance"),
              ("corr_bimodality", "bimodality coeff. of pairwise r"), ("neighbor_r", "neighbour response r"),
              ("entropy", "unit entropy (bits)"), ("poz", "PoZ (% of inputs)"), ("ed_acts", "effective dim. (acts)"),
              ("sensitivity", "input sensitivity (variance)"), ("localization", "expert localisation"),
              ("chg_wall_mean", "acc. change, weight noise (pp)")]
    panels = [p for p in panels if any(p[0] in s for s in summary.values())]
    shown = [c for c in conds if c["name"] in summary and (c["method"] == "control" or c["lam"] == rep_lam)]
    colors = {c["name"]: f"C{i}" for i, c in enumerate(shown)}
    nr = (len(panels) + 3) // 4
    fig, axes = plt.subplots(nr, 4, figsize=(15, 3.2 * nr), squeeze=False)
    if len(args.lambdas) > 1:  # 1. metrics against λ, one line per method / AS form
        prefixes = list(dict.fromkeys(c["name"].rsplit("_", 1)[0] for c in conds if c["method"] != "control"))
        for (key, yl), ax in zip(panels, axes.flat):
            series = {}
            for pre in prefixes:
                ms = [summary.get(f"{pre}_{l:g}", {}).get(key, [float("nan")] * 2) for l in args.lambdas]
                series[pre] = (args.lambdas, [m[0] for m in ms], [m[1] for m in ms])
            P.metric_vs_strength(series, ax=ax, ylabel=yl, control=tuple(summary.get("control", {}).get(key, [float("nan")] * 2)))
        title, name = "metrics against λ (mean ± SD over seeds; black: control)", "metrics_vs_lambda.png"
    else:  # 1. one λ: bars per condition, mean ± SD, one dot per seed
        for (key, yl), ax in zip(panels, axes.flat):
            for i, c in enumerate(shown):
                m, sd = summary[c["name"]].get(key, [float("nan")] * 2)
                ax.bar(i, m, yerr=sd if summary[c["name"]]["n"] > 1 else None, color=colors[c["name"]], alpha=0.6, capsize=3)
                _dots(ax, i, [r[key] for r in results[c["name"]] if key in r])
            ax.set_xticks(range(len(shown)))
            ax.set_xticklabels([c["name"] for c in shown], rotation=30, fontsize=7)
            ax.set_ylabel(yl, fontsize=8)
        title, name = f"metrics per condition at λ = {rep_lam:g} (bar: mean, line: SD, dots: seeds)", "metrics.png"
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title)
    save(fig, name)

    # 2. accuracy against noise level, with chance
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, kind in zip(axes.flat, CURVES):
        xs = WEIGHT_SIGMAS if kind.startswith("w") else NOISE_LEVELS
        for c in shown:
            m, sd = summary[c["name"]].get(f"acc_{kind}", [[], []])
            if m:
                clean = summary[c["name"]]["acc"][0]
                ax.errorbar([0] + xs, [clean] + m, yerr=[0] + sd, marker="o", ms=3, capsize=2, label=c["name"],
                            color=colors[c["name"]])
        ax.axhline(CHANCE, color="k", ls=":", lw=1, label="chance")
        ax.axhspan(0, FLOOR, color="k", alpha=0.06)
        ax.set_xlabel(XLABELS[kind], fontsize=8)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(CURVE_LABELS[kind], fontsize=9)
        ax.set_ylim(0, 100)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("accuracy against noise level (level 0: clean; grey band: chance + 5 pp, excluded from the comparisons)")
    save(fig, "robustness_curves.png")

    # 3. directional Moran's I per condition
    if any("dmi_horizontal" in summary[c["name"]] for c in shown):
        fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
        w = 0.8 / len(shown)
        for ax, tag, tl in ((axes[0], "", "pre-ReLU maps"), (axes[1], "_centred", "maps minus the mean map")):
            for i, c in enumerate(shown):
                xs = [j + (i - (len(shown) - 1) / 2) * w for j in range(len(DIRECTIONS))]
                ms = [summary[c["name"]].get(f"dmi_{d}{tag}", [float("nan")] * 2) for d in DIRECTIONS]
                ax.bar(xs, [m[0] for m in ms], w, color=colors[c["name"]], alpha=0.7, label=c["name"])
                for x, d in zip(xs, DIRECTIONS):
                    _dots(ax, x, [r[f"dmi_{d}{tag}"] for r in results[c["name"]] if f"dmi_{d}{tag}" in r])
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xticks(range(len(DIRECTIONS)))
            ax.set_xticklabels(["horizontal (r, c+1)", "vertical (r+1, c)", "diagonal (r+1, c+1)", "antidiagonal (r+1, c−1)"],
                               fontsize=8)
            ax.set_ylabel("Moran's I, one neighbour direction")
            ax.set_title(tl, fontsize=9)
        axes[0].legend(fontsize=7)
        fig.suptitle("directional Moran's I (bars: mean over seeds, dots: seeds); stripes give opposite signs")
        save(fig, "directional_morans_i.png")

    # 4. correlation structure: histograms against the control's, and r against distance
    others = [c for c in shown if c["name"] != "control"]
    fig, axes = plt.subplots(1, len(others) + 1, figsize=(3.6 * (len(others) + 1), 3.4), squeeze=False)
    centres = (torch.linspace(-1, 1, 41)[:-1] + 1 / 40).numpy()
    ctrl = summary.get("control", {}).get("corr_hist", [[]])[0]
    for ax, c in zip(axes[0], others):
        if ctrl:
            ax.fill_between(centres, ctrl, step="mid", color="0.6", alpha=0.5, label="control")
        ax.step(centres, summary[c["name"]]["corr_hist"][0], where="mid", color=colors[c["name"]], label=c["name"])
        ax.set_xlabel("pairwise response correlation r")
        ax.set_ylabel("density (per unit r)")
        ax.set_title(c["label"], fontsize=8)
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    for c in shown:  # the exact distances binned to whole units
        s, bins = summary[c["name"]], {}
        for d, r in zip(s["corr_distance"][0], s["corr_mean"][0]):
            if r == r:
                bins.setdefault(round(d), []).append(r)
        xs = sorted(bins)
        ax.plot(xs, [sum(bins[x]) / len(bins[x]) for x in xs], marker="o", ms=3, label=c["name"], color=colors[c["name"]])
    ax.set_xlabel("grid distance (units, rounded)")
    ax.set_ylabel("mean response correlation r")
    ax.legend(fontsize=7)
    fig.suptitle("distribution of pairwise r (mean over seeds) against the control's; r against grid distance")
    save(fig, "correlation_structure.png")

    # 5. class-mean maps of the first seed's models, one colour scale, raw and mean map removed
    means = {}
    for n, model in reps.items():
        acts, labels = A.collect_activations(model, "fc1", (xte, yte), batch_size=128, device=args.device)
        means[n] = torch.stack([acts[labels == k].mean(0) if (labels == k).any() else torch.zeros(acts.shape[1])
                                for k in range(10)]).reshape(10, 11, 11)
    for fname, tf, what in (("maps_per_class.png", lambda m: m, "mean pre-ReLU fc1 map per class"),
                            ("maps_per_class_centred.png", lambda m: m - m.mean(0, keepdim=True),
                             "class-mean map minus the mean over classes")):
        maps = {n: tf(m) for n, m in means.items()}
        lim = max(float(m.abs().max()) for m in maps.values()) or 1.0
        fig, axes = plt.subplots(len(maps), 10, figsize=(13, 1.35 * len(maps) + 0.6), squeeze=False)
        for r, (n, m) in enumerate(maps.items()):
            for k in range(10):
                im = axes[r][k].imshow(m[k].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
                axes[r][k].set_xticks([])
                axes[r][k].set_yticks([])
                if r == 0:
                    axes[r][k].set_title(f"digit {k}", fontsize=8)
            axes[r][0].set_ylabel(n, fontsize=7)
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="pre-ReLU activation")
        fig.suptitle(f"{what} (first seed; one colour scale for all)", fontsize=9)
        save(fig, fname, tight=False)
    for n, model in reps.items():
        acts, labels = A.collect_activations(model, "fc1", (xte, yte), batch_size=128, device=args.device)
        fig = P.expert_map(A.selectivity(acts, labels, 10), model.fc1.grid, threshold=args.expert_threshold)
        fig.suptitle(f"{n}: d′ per class, experts (d′ > {args.expert_threshold:g}) outlined", fontsize=9)
        save(fig, f"experts_{n}.png")
    fig = P.corruption_gallery(xte[0], list(tt.robustness.NOISE_CORRUPTIONS), [1, 3, 5], noise_severities=[0.05, 0.1, 0.2])
    save(fig, "noise_examples.png")
    return files


def _at_chance(summary, conds) -> List[str]:
    out = []
    for c in conds:
        s = summary.get(c["name"], {})
        if s and s["acc"][0] <= FLOOR:
            out.append(f"{c['name']} is at chance even on clean images ({s['acc'][0]:.1f} %)")
            continue
        for k in CURVES:
            m = s.get(f"acc_{k}", [[], []])[0]
            xs = WEIGHT_SIGMAS if k.startswith("w") else NOISE_LEVELS
            low = [f"{x:g}" for x, v in zip(xs, m) if v <= FLOOR]
            if low:
                out.append(f"{c['name']}, {CURVE_LABELS[k]}: at chance (≤ {FLOOR:g} %) at level(s) {', '.join(low)}")
    return out


def report(args, data, summary, results, conds, tabs, claim_lines, files, elapsed, counts) -> str:
    """report.md: the tables, figures, notes and the claims table."""
    def fig(name, caption):
        return f"![{caption}]({name})\n\n*{caption}*\n\n" if name in files else ""

    smoke = ("> **Smoke test** (`--quick`/`--tiny`): one seed and at most "
             f"{args.max_epochs} epochs; the models are not trained to a plateau, so nothing below is a "
             "result and no verdicts are stated. Run without `--quick` for the study.\n\n") if args.smoke else ""
    legend = "".join(f"* `{c['name']}`: {c['label']}\n" for c in conds if c["name"] in summary)
    chance = _at_chance(summary, conds)
    full = [c for c in conds if c["name"] in summary and summary[c["name"]].get("expert_fraction", [0])[0] >= 0.999]
    notes = [
        "The AS training code of the paper is not released. `AS` (1 − r) is the natural reading of the text; "
        "`ASabs` (1 − |r|) ignores the sign of r; `ASflat` is a hypothesis about the released code: its "
        "`spatial_loss` applied to the (batch, 121) activations without a transpose, so each \"unit\" is a "
        "contiguous chunk of the batch × units buffer. Which form the paper used is unconfirmed."
        + (f" Not run (this torchtopo has no `sign=` on ActivationSimilarity): {', '.join(args.unavailable)}."
           if args.unavailable else ""),
        f"Training: Adam lr {args.lr:g}, batch {args.batch_size} (the paper's), a seeded 80/20 train/validation "
        f"split; early stopping when the validation loss has not fallen {100 * args.min_delta:g} % below its last "
        f"such value for {args.patience} epochs (cap {args.max_epochs}), keeping the weights of the lowest "
        "validation loss. `plateau` is the share of "
        "models that stopped before the cap.",
        "Pink noise is reported twice: `pink` with true 1/f power (amplitude ÷ √f) and `brown`, the "
        "released code's amplitude ÷ f (power ∝ 1/f²), which the paper calls pink. Noise is added in [0, 1] "
        "pixel space and clamped.",
        f"Expert units: d′ > {args.expert_threshold:g} for some class (the paper's threshold is not published)."
        + (f" Every unit is an expert in {', '.join(c['name'] for c in full)}: raise --expert-threshold."
           if full else ""),
        "Weight noise is absolute (σ in weight units) on fc1 or on all parameters; the RSM cosine compares "
        "the readout (fc2) class-weight correlation matrices before/after.",
    ]
    if not getattr(tt.analysis, "directional_morans_i", None):
        notes.append("This torchtopo has no tt.analysis.directional_morans_i / mean_map_share: those columns are absent.")
    claims_md = ("No verdicts in a smoke test.\n" if args.smoke else
                 "Each cell: the paired difference against the comparison condition (mean over seeds [95 % CI, "
                 "t-based]); in bold the verdict where the claim is about that method, **agrees** / **disagrees** "
                 "only when the interval excludes the value the claim turns on, otherwise **not resolved**; in "
                 "parentheses the same difference for methods the claim is not about. Robustness differences "
                 "are of each model's accuracy change against its own clean accuracy, averaged over the levels "
                 f"where both conditions stay above {FLOOR:g} % (chance + 5 pp). Columns are the AS forms side "
                 "by side: which form reproduces which published finding.\n\n" + "\n".join(claim_lines) + "\n")
    n_models = sum(len(v) for v in results.values())
    # where the models came from: under --jobs the worker processes trained them, this one loaded them
    if getattr(args, "worker_trained", None) is not None:
        provenance = f"{args.worker_trained} trained by the worker processes, the rest loaded from --out/checkpoints"
    else:
        provenance = f"{counts['trained']} trained, {counts['loaded']} loaded from --out/checkpoints"
    if getattr(args, "worker_cpu_s", None):
        provenance += f"); its training processes used {args.worker_cpu_s / 60:.1f} CPU-minutes in all"
    else:
        provenance += ")"
    if n_models < len(conds) * args.seeds:
        smoke += (f"> **Partial run**: {n_models} of the {len(conds) * args.seeds} models are trained (the rest "
                  "not yet: `--no-train` reports what the checkpoints hold); conditions without models are "
                  "missing from the tables and a condition with fewer seeds is compared on the seeds it has.\n\n")
    return "".join([
        "# Topographic regularization: WS vs AS (Truong & Hasson, arXiv:2508.00043)\n\n", smoke,
        f"Dataset: **{args.dataset}**, {data[0].shape[0]} training images (80/20 train/validation split per seed) "
        f"and {data[2].shape[0]} test images; {args.seeds} seed(s) per condition, λ ∈ {args.lambdas}; WS distance "
        f"{args.ws_distance}, AS distance {args.as_distance} (pre-ReLU fc1, 11×11, 8 neighbours). {n_models} models; "
        f"this invocation took {elapsed / 60:.1f} min with {args.threads or torch.get_num_threads()} thread(s) per "
        f"process and {args.jobs} process(es) ({provenance}. Tables: mean ± SD over seeds (a single seed "
        "shows the value alone).\n\n",
        legend + "\n",
        "## Training\n\nacc: test accuracy (%); val_acc: validation accuracy at the kept epoch; epochs_run / "
        "best_epoch: epochs trained and the kept (best validation loss) epoch; train_s / eval_s: seconds per model.\n\n",
        tabs["train"] + "\n\n",
        "## Maps: smooth, striped or salt-and-pepper\n\n",
        "morans_i: Moran's I of each test image's 11×11 pre-ReLU fc1 map (binary 8-neighbour weights), "
        "averaged over images; morans_i_centred: the same after subtracting the mean map over images; dmi_*: "
        "Moran's I with one neighbour direction only (stripes give opposite signs); stripe_contrast: "
        "|dmi_vertical − dmi_horizontal|; mean_map_share: the share of the maps' variance explained by the "
        "stimulus-independent mean map; corr_bimodality: Sarle's (skew² + 1)/kurtosis of the pairwise r "
        "(> 0.555 suggests bimodal); neighbor_r: mean r between neighbouring units.\n\n",
        tabs["main"] + "\n\n", "Directional Moran's I of the mean-subtracted maps:\n\n", tabs["dmi_centred"] + "\n\n",
        fig("metrics.png", "Metrics per condition (bars: mean, lines: SD, dots: seeds)"),
        fig("metrics_vs_lambda.png", "Metrics against λ (black line and band: control)"),
        fig("directional_morans_i.png", "Directional Moran's I per condition"),
        fig("maps_per_class.png", "Class-mean fc1 maps, one colour scale"),
        fig("maps_per_class_centred.png", "Class-mean maps minus their mean, one colour scale"),
        fig("correlation_structure.png", "Pairwise r histograms against the control's; r against grid distance"),
        "## Robustness\n\nchg_*_mean: accuracy change (pp) from the same model's clean accuracy, averaged over "
        "the five levels (input noise σ or p ∈ 0.01 … 0.2; weight noise σ ∈ 0.01 … 0.2); rsm_wall_0.1: readout "
        "RSM cosine at weight noise σ = 0.1 on all layers. Cells: mean [95 % CI over seeds].\n\n",
        tabs["rob"] + "\n\n",
        ("Levels at chance (the comparisons leave them out):\n\n" + "".join(f"* {c}\n" for c in chance) + "\n")
        if chance else "No condition reaches chance at any level.\n\n",
        fig("robustness_curves.png", "Accuracy against noise level"),
        fig("noise_examples.png", "A test digit under the three noises"),
        "## Units, selectivity and probes\n\n",
        "corr_abs_mean: mean |r| over unit pairs; entropy: Shannon entropy (bits, 32 bins) of each unit's "
        "pre-ReLU activations; poz: % of test inputs with zero post-ReLU output; dead_units: never active; "
        "ed_*: participation ratio of the activation covariance and of the fc1 weight rows; sensitivity: "
        "activation variance across stimuli; weight_norm: mean ‖w_i‖ of fc1 rows.\n\n", tabs["repr"] + "\n\n",
        f"expert_fraction: share of units with d′ > {args.expert_threshold:g} for some class; localization: "
        "1 − (mean sheet distance between a class's experts)/(mean distance between random units); "
        "dprime_morans_i: Moran's I of the d′ maps; osi: mean orientation selectivity (gratings); "
        "orientation_morans_i: Moran's I of the preferred-orientation map; symmetry_abs_dprime, "
        "eccentricity_slope: the symmetry and eccentricity probes.\n\n", tabs["func"] + "\n\n",
        *(fig(f"experts_{c['name']}.png", f"{c['name']}: d′ maps, experts outlined") for c in conds),
        "## Notes and deviations from the study\n\n", "".join(f"* {n}\n" for n in notes) + "\n",
        "## Published claims against this run\n\n", claims_md,
    ])
