"""Benchmark of the neighbour-distance penalties (the WS and AS losses of Truong & Hasson,
arXiv:2508.00043): forward + backward.

For each case (grid H×H units, vector length D: the weight rows for WS, the batch for AS) it
times forward + backward and measures the peak extra memory of

* each available torchtopo backend (``torch``; ``triton`` on CUDA tensors),
* ``naive gather``: index the neighbour pairs, ``v[i]``, ``v[j]`` (materialises P×D),
* ``topoloss`` (WS only): TopoNets' LaplacianPyramid loss on the same weight reshaped to an
  H×H×D sheet (the ``topoloss`` package when it imports, else a re-implementation of its
  formula (Deb et al., ICLR 2025), labelled ``topoloss (re-impl.)``),
* ``full NxN`` (AS only): the full N×N correlation matrix, where it fits in ``--max-mem-gb``,
* ``ref (w*w).sum()``: one elementwise pass over the same tensor, forward + backward,

prints a table with the baseline beside it, the target ratios, and writes JSON.

Timings are the median (and minimum) of ``--repeats`` interleaved runs after a warm-up: the
machine this was written on is shared, so single timings are noisy.  CPU peak memory is the
growth of the process's resident set (``VmHWM`` after resetting it through
``/proc/self/clear_refs``) in a child process whose glibc returns every large block to the OS
(``MALLOC_MMAP_THRESHOLD_``), so it is the true high-water mark of extra allocations (the gradient
included).  On CUDA: ``torch.cuda.max_memory_allocated``, and the achieved bandwidth of the
Triton backend against a measured device-to-device copy.

Usage::

    python benchmarks/neighbor_penalty.py --quick
    python benchmarks/neighbor_penalty.py --out runs/bench/neighbor_penalty.json
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as NF

import torchtopo as tt
import torchtopo.functional as F
from torchtopo.functional import resolve_backend

EPS_REL = 1e-2  # torchtopo's ε² = 0.01 × the mean over units of ‖x̃‖², inside the norms
def _topoloss_version() -> str:
    try:
        from importlib.metadata import version

        return " " + version("topoloss") if _topoloss_lp is not None else ""
    except Exception:  # pragma: no cover
        return ""


TOPOLOSS_FACTOR = 3.0  # down/up-sampling factor of the LaplacianPyramid loss (both axes)

try:  # the real package, in the benchmark's environment only (not a torchtopo dependency)
    from topoloss.losses.laplacian_pyramid import laplacian_pyramid_loss as _topoloss_lp

    TOPOLOSS_LABEL = "topoloss"
except Exception:  # pragma: no cover - depends on the environment
    _topoloss_lp = None
    TOPOLOSS_LABEL = "topoloss (re-impl.)"


def _topoloss_reimpl(sheet: torch.Tensor, factor_w: float, factor_h: float) -> torch.Tensor:
    """TopoNets' LaplacianPyramid loss (Deb et al., ICLR 2025): blur the (h, w, e) sheet by bilinear
    down-sampling by ``factor`` and up-sampling back; 1 − mean cosine(sheet, blurred)."""
    g = sheet.permute(2, 0, 1).unsqueeze(0)
    down = NF.interpolate(g, scale_factor=(1 / factor_h, 1 / factor_w), mode="bilinear")
    up = NF.interpolate(down, size=g.shape[2:], mode="bilinear")
    a = g[0].flatten(1).T
    b = up[0].flatten(1).T
    return 1 - NF.cosine_similarity(a, b, dim=-1).mean()


def topoloss_lp(sheet: torch.Tensor) -> torch.Tensor:
    f = min(TOPOLOSS_FACTOR, sheet.shape[0], sheet.shape[1])
    if _topoloss_lp is not None:
        return _topoloss_lp(sheet, factor_w=f, factor_h=f)
    return _topoloss_reimpl(sheet, f, f)


# ------------------------------------------------------------------------ implementations
def _naive_distance(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, distance: str, dim: int) -> torch.Tensor:
    """d for every pair (i, j) of units of ``x`` (units on ``1 - dim``, vectors on ``dim``), the
    plain way: gather both sides, reduce."""
    if distance in ("euclidean", "sqeuclidean"):
        s = (x.index_select(1 - dim, i) - x.index_select(1 - dim, j)).square().sum(dim)
        return s.clamp_min(0).sqrt() if distance == "euclidean" else s
    if distance == "correlation":
        x = x - x.mean(dim, keepdim=True)
    n2 = x.square().sum(dim)
    n = (n2 + EPS_REL * n2.mean()).sqrt()
    a, b = x.index_select(1 - dim, i), x.index_select(1 - dim, j)
    return 1 - (a * b).sum(dim) / (n[i] * n[j])


def build(impl: str, case: dict, device: str, dtype: torch.dtype) -> Callable[[], None]:
    """A closure running one forward + backward of ``impl`` on fresh data for ``case``."""
    H, D, kind, distance = case["H"], case["D"], case["kind"], case["distance"]
    grid = tt.Grid(H, H)
    N = grid.n_units
    gen = torch.Generator().manual_seed(0)
    if kind == "WS":
        x = torch.randn(N, D, generator=gen).to(device=device, dtype=dtype).requires_grad_()
    else:  # AS: a batch of D stimuli for N units
        x = torch.randn(D, N, generator=gen).to(device=device, dtype=dtype).requires_grad_()

    if impl in ("torch", "triton", "torch+compile"):
        fn = F.weight_similarity if kind == "WS" else F.activation_similarity
        backend = "triton" if impl == "triton" else "torch"

        def loss():
            if impl != "torch+compile":
                return fn(x, grid, distance=distance, backend=backend)
            old = os.environ.get("TORCHTOPO_COMPILE")
            os.environ["TORCHTOPO_COMPILE"] = "1"  # read at forward time, kept for backward
            try:
                return fn(x, grid, distance=distance, backend=backend)
            finally:
                if old is None:
                    del os.environ["TORCHTOPO_COMPILE"]
                else:
                    os.environ["TORCHTOPO_COMPILE"] = old

    elif impl == "naive gather":
        i, j = grid.neighbor_pairs(device)

        def loss():
            return _naive_distance(x, i, j, distance, 1 if kind == "WS" else 0).mean()

    elif impl == "topoloss":

        def loss():
            return topoloss_lp(x.view(H, H, D))

    elif impl == "full NxN":
        i, j = grid.neighbor_pairs(device)

        def loss():
            z = x - x.mean(0, keepdim=True)
            n2 = z.square().sum(0, keepdim=True)
            z = z / (n2 + EPS_REL * n2.mean()).sqrt()
            C = z.T @ z  # (N, N)
            return (1 - C[i, j]).mean()

    elif impl == "ref":

        def loss():
            return (x * x).sum()

    else:  # pragma: no cover
        raise ValueError(impl)

    def step():
        x.grad = None
        loss().backward()

    step.zero = lambda: setattr(x, "grad", None)  # type: ignore[attr-defined]
    step.loss = loss  # type: ignore[attr-defined]  # (tests check the implementations agree)
    return step


def estimate_bytes(impl: str, case: dict, elsize: int = 4) -> float:
    """Rough peak extra bytes, to skip what would not fit."""
    N, D = case["H"] ** 2, case["D"]
    P = 4 * N
    if impl == "naive gather":
        return 6.0 * P * D * elsize
    if impl == "full NxN":
        return 2.0 * N * N * elsize + 3.0 * N * D * elsize
    return 6.0 * N * D * elsize


def impls_for(case: dict, backends: List[str], quick: bool = False) -> List[str]:
    out = ["ref"] + backends
    if quick and case["H"] > 128:  # quick mode: only the backends at 256×256 (linear growth)
        return out
    out += ["naive gather"]
    out += ["topoloss"] if case["kind"] == "WS" else ["full NxN"]
    return out


# ------------------------------------------------------------------------------ measuring
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_case(steps: Dict[str, Callable], device: str, repeats: int) -> Dict[str, dict]:
    """Median and minimum seconds per forward + backward, impls interleaved per repeat."""
    for s in steps.values():  # warm-up (and lazy initialisation)
        s()
    _sync(device)
    times: Dict[str, list] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, s in steps.items():
            _sync(device)
            t0 = time.perf_counter()
            s()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "all_s": v} for k, v in times.items()}


def _status_mb() -> Dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) / 1024.0
    return out


def peak_extra_mb(step: Callable, device: str) -> Optional[float]:
    """Peak extra memory (MiB) of one forward + backward, after a warm-up run."""
    step()
    step.zero()  # the gradient counts as extra memory
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:  # pragma: no cover - not Linux
        return None
    base = _status_mb()["VmRSS"]
    step()
    return _status_mb()["VmHWM"] - base


def _memory_child(spec_path: str) -> None:
    spec = json.load(open(spec_path))
    torch.set_num_threads(spec["threads"])
    res = {}
    for key, (case, impl) in spec["jobs"].items():
        step = build(impl, case, "cpu", getattr(torch, spec["dtype"]))
        res[key] = peak_extra_mb(step, "cpu")
        del step
        gc.collect()
    print("MEMJSON" + json.dumps(res))


def cpu_memory(jobs: Dict[str, tuple], threads: int, dtype: str) -> Dict[str, Optional[float]]:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"jobs": jobs, "threads": threads, "dtype": dtype}, f)
        path = f.name
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0",
               OMP_NUM_THREADS=str(threads))
    try:
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--_memory-child", path],
                           capture_output=True, text=True, env=env, timeout=3600)
        for line in r.stdout.splitlines():
            if line.startswith("MEMJSON"):
                return json.loads(line[7:])
        print("memory child failed:", r.stderr[-2000:], file=sys.stderr)
        return {k: None for k in jobs}
    finally:
        os.unlink(path)


def copy_bandwidth(device: str, nbytes: int = 1 << 30) -> float:
    """Bytes per second of a device-to-device copy (read + write counted)."""
    x = torch.empty(nbytes // 4, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    torch.cuda.synchronize()
    ts = []
    for _ in range(10):
        t0 = torch.cuda.Event(enable_timing=True)
        t1 = torch.cuda.Event(enable_timing=True)
        t0.record()
        y.copy_(x)
        t1.record()
        torch.cuda.synchronize()
        ts.append(t0.elapsed_time(t1) / 1e3)
    return 2 * nbytes / statistics.median(ts)


def gpu_bandwidth_report(device: str, repeats: int) -> List[dict]:
    """Triton WS/AS forward + backward at 256×256 units × 256 against the copy bandwidth.

    Minimal traffic of a fused forward + backward: read X (forward), read X and write the
    gradient (backward): 3·N·D·elsize bytes.  That is what the kernels move for cosine when the
    neighbours' re-reads hit the cache; correlation reads X once more for the units' means.
    """
    bw = copy_bandwidth(device)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for kind, distance in (("WS", "cosine"), ("AS", "correlation")):
            case = {"kind": kind, "H": 256, "D": 256, "distance": distance}
            step = build("triton", case, device, dtype)
            t = time_case({"triton": step}, device, repeats)["triton"]["median_s"]
            elsize = torch.tensor([], dtype=dtype).element_size()
            achieved = 3 * 65536 * 256 * elsize / t
            rows.append({"kind": kind, "distance": distance, "dtype": str(dtype).split(".")[-1],
                         "time_ms": t * 1e3, "achieved_GBps": achieved / 1e9,
                         "copy_GBps": bw / 1e9, "fraction": achieved / bw})
    return rows


# ---------------------------------------------------------------------------------- main
def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few sizes (still includes the target sizes)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 5, quick 3)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    p.add_argument("--max-mem-gb", type=float, default=3.0, help="skip implementations estimated above this")
    p.add_argument("--ws-distance", default="cosine", choices=F.DISTANCES)
    p.add_argument("--as-distance", default="correlation", choices=F.DISTANCES)
    p.add_argument("--sizes", default=None,
                   help="comma-separated H:D cases (H×H units, vector length D), e.g. 128:256; "
                   "overrides --quick's and the full grid's sizes")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument("--compile", action="store_true",
                   help="also time the torch path under torch.compile (TORCHTOPO_COMPILE=1; "
                   "compilation is excluded from the timings; quick mode: only at 128x128 and up)")
    p.add_argument("--out", default="runs/benchmarks/neighbor_penalty.json")
    p.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_cases(args) -> List[dict]:
    if args.sizes:
        try:
            sizes = [tuple(int(v) for v in item.split(":")) for item in args.sizes.split(",")]
            assert all(len(t) == 2 and min(t) >= 1 for t in sizes)
        except (ValueError, AssertionError):
            raise SystemExit(f"--sizes must look like 128:256,64:1024, got {args.sizes!r}")
    elif args.quick:
        sizes = [(11, 64), (11, 256), (64, 256), (128, 256), (256, 256)]  # 11×11×64: the study's sheet
    else:
        sizes = [(h, d) for h in (11, 32, 64, 128, 256) for d in (64, 256, 1024)]
    cases = []
    for kind, dist in (("WS", args.ws_distance), ("AS", args.as_distance)):
        for h, d in sizes:
            cases.append({"kind": kind, "H": h, "D": d, "distance": dist})
    return cases


def available_backends(device: str) -> List[str]:
    out = ["torch"]
    probe = torch.empty(1, device=device)
    try:
        if device.startswith("cuda") and resolve_backend("triton", probe) == "triton":
            out.append("triton")
    except RuntimeError:
        pass
    return out


def fmt(v: Optional[float], spec: str = ".1f") -> str:
    return "—" if v is None else format(v, spec)


def main(argv=None) -> dict:
    args = parse(argv)
    if args.memory_child:
        _memory_child(args.memory_child)
        return {}
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 5)
    dtype = getattr(torch, args.dtype)
    backends = available_backends(args.device)
    cases = make_cases(args)
    cap = args.max_mem_gb * 2**30
    elsize = torch.tensor([], dtype=dtype).element_size()
    results = []
    mem_jobs = {}
    for ci, case in enumerate(cases):
        cand = impls_for(case, backends, args.quick)
        if args.compile and not args.device.startswith("cuda") and (not args.quick or case["H"] >= 128):
            cand.insert(cand.index("torch") + 1, "torch+compile")
        impls = [m for m in cand if estimate_bytes(m, case, elsize) <= cap]
        skipped = [m for m in cand if m not in impls]
        label = f"{case['kind']} {case['distance']} {case['H']}x{case['H']} D={case['D']}"
        print(f"[{ci + 1}/{len(cases)}] {label}", flush=True)
        steps = {m: build(m, case, args.device, dtype) for m in impls}
        timing = time_case(steps, args.device, repeats)
        mem = {}
        if not args.no_memory and args.device.startswith("cuda"):
            mem = {m: peak_extra_mb(steps[m], args.device) for m in impls}
        del steps
        gc.collect()
        for m in impls:
            results.append({**case, "impl": m, **{k: v for k, v in timing[m].items()},
                            "peak_extra_mb": mem.get(m)})
            mem_jobs[f"{len(results) - 1}"] = (case, m)
        for m in skipped:
            results.append({**case, "impl": m, "median_s": None, "min_s": None, "all_s": [],
                            "peak_extra_mb": None, "skipped": f"estimated > {args.max_mem_gb} GB"})
    if not args.no_memory and not args.device.startswith("cuda"):
        print("measuring peak memory in a child process ...", flush=True)
        mem = cpu_memory(mem_jobs, args.threads, args.dtype)
        for k, v in mem.items():
            results[int(k)]["peak_extra_mb"] = v

    # ------------------------------------------------------------------ table
    def lookup(kind, H, D, impl):
        for r in results:
            if (r["kind"], r["H"], r["D"], r["impl"]) == (kind, H, D, impl):
                return r
        return None

    print()
    print(f"device={args.device} dtype={args.dtype} threads={args.threads} repeats={repeats} "
          f"(median of interleaved runs; min in brackets; shared machine: noisy)")
    head = f"{'case':<32} {'impl':<22} {'fwd+bwd ms':>20} {'x ref':>7} {'peak extra MiB':>15}"
    print(head)
    print("-" * len(head))
    for case in cases:
        ref = lookup(case["kind"], case["H"], case["D"], "ref")
        label = f"{case['kind']} {case['distance']} {case['H']}x{case['H']} D={case['D']}"
        for r in results:
            if (r["kind"], r["H"], r["D"]) != (case["kind"], case["H"], case["D"]):
                continue
            name = TOPOLOSS_LABEL if r["impl"] == "topoloss" else r["impl"]
            if r["median_s"] is None:
                print(f"{label:<32} {name:<22} {'skipped (memory)':>20}")
                continue
            ms = f"{r['median_s'] * 1e3:.2f} [{r['min_s'] * 1e3:.2f}]"
            ratio = r["median_s"] / ref["median_s"] if ref and ref["median_s"] else None
            print(f"{label:<32} {name:<22} {ms:>20} {fmt(ratio, '.2f'):>7} {fmt(r['peak_extra_mb']):>15}")
            label = ""

    # ----------------------------------------------------------------- targets
    targets = {}
    print("\nTargets (ratios of medians; min-based in brackets):")
    main_backend = "triton" if "triton" in backends else "torch"
    tried = [main_backend] + (["torch+compile"] if lookup("WS", 128, 256, "torch+compile") else [])
    for be in tried:
        targets[be] = t = {}
        ws = lookup("WS", 128, 256, be)
        ref = lookup("WS", 128, 256, "ref")
        topo = lookup("WS", 128, 256, "topoloss")
        if ws and ref and ws["median_s"] and ref["median_s"]:
            t["ws_vs_elementwise"] = r1 = ws["median_s"] / ref["median_s"]
            print(f"  [{be}] WS {args.ws_distance} 128x128x256 / (w*w).sum() fwd+bwd: {r1:.2f}x "
                  f"[{ws['min_s'] / ref['min_s']:.2f}x] (target <= 1.5x)")
        if ws and topo and topo["median_s"]:
            t["ws_speedup_vs_topoloss"] = r2 = topo["median_s"] / ws["median_s"]
            print(f"  [{be}] WS {args.ws_distance} 128x128x256 vs {TOPOLOSS_LABEL}: {r2:.2f}x faster "
                  f"[{topo['min_s'] / ws['min_s']:.2f}x] (target >= 2x)")
        as_ = lookup("AS", 128, 256, be)
        nn_ = lookup("AS", 128, 256, "full NxN")
        if as_ and nn_ and nn_["median_s"]:
            t["as_speedup_vs_full_nxn"] = r3 = nn_["median_s"] / as_["median_s"]
            print(f"  [{be}] AS {args.as_distance} 128x128 batch 256 vs full NxN: {r3:.1f}x faster "
                  f"[{nn_['min_s'] / as_['min_s']:.1f}x] (target >= 200x)")
        elif as_:
            print(f"  [{be}] AS 128x128 batch 256: full NxN skipped (over --max-mem-gb)")
        series = [lookup("AS", h, 256, be) for h in (11, 32, 64, 128, 256)]
        series = [r for r in series if r and r["median_s"]]
        if len(series) >= 2:
            print(f"  [{be}] AS {args.as_distance} batch 256: growth with N (linear = constant per unit):")
            for r in series:
                n = r["H"] ** 2
                mem = r["peak_extra_mb"]
                print(f"      {r['H']:>4}x{r['H']:<4} N={n:>6}: {r['median_s'] * 1e6 / n:8.3f} us/unit, "
                      f"{fmt(None if mem is None else mem * 2**20 / n, '.0f')} B/unit extra memory")
            a, b = series[-2], series[-1]
            nr = b["H"] ** 2 / a["H"] ** 2
            t["as_growth"] = {"N_ratio": nr, "time_ratio": b["median_s"] / a["median_s"]}
            if a["peak_extra_mb"] and b["peak_extra_mb"]:
                t["as_growth"]["memory_ratio"] = b["peak_extra_mb"] / a["peak_extra_mb"]
            print(f"      {a['H']}^2 -> {b['H']}^2 units (N x{nr:.1f}): time x{b['median_s'] / a['median_s']:.2f}"
                  + (f", memory x{b['peak_extra_mb'] / a['peak_extra_mb']:.2f}"
                     if a["peak_extra_mb"] and b["peak_extra_mb"] else ""))

    gpu = None
    if args.device.startswith("cuda") and "triton" in backends:
        gpu = gpu_bandwidth_report(args.device, repeats)
        print("\nGPU: Triton forward+backward at 65,536 units x 256 vs device-to-device copy")
        for r in gpu:
            print(f"  {r['kind']} {r['distance']:<12} {r['dtype']:<9} {r['time_ms']:8.3f} ms  "
                  f"{r['achieved_GBps']:7.1f} GB/s of {r['copy_GBps']:7.1f} GB/s copy = "
                  f"{100 * r['fraction']:.0f}% (target >= 85%)")
    elif not args.device.startswith("cuda"):
        print("\nGPU bandwidth: no CUDA device here (run with --device cuda where one exists).")

    report = {
        "benchmark": "neighbor_penalty",
        "device": args.device,
        "dtype": args.dtype,
        "threads": args.threads,
        "repeats": repeats,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "topoloss": TOPOLOSS_LABEL + _topoloss_version(),
        "topoloss_factor": TOPOLOSS_FACTOR,
        "backends": backends,
        "note": "median and min of interleaved repeats on a shared machine; peak_extra_mb "
        "includes the gradient",
        "results": results,
        "targets": targets,
        "gpu_bandwidth": gpu,
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
