"""Compile the Triton kernels ahead of time for real GPU targets, without a GPU.

The interpreter (``TRITON_INTERPRET=1``) runs the kernels as Python and accepts code that the
Triton compiler rejects; compiling for an NVIDIA target through Triton's own front end, MLIR
passes and the bundled ``ptxas`` catches that on a machine with no GPU.  Run as a script
(``TRITON_INTERPRET`` must be unset: it replaces ``triton.jit`` at import)::

    python tests/kernels/_compile_kernels.py            # a representative set of variants, sm_90
    python tests/kernels/_compile_kernels.py --all 80   # every dtype × metric × wrap × layout, sm_80

``tests/kernels/test_neighbor.py`` runs the representative set in a subprocess.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys

_DTYPES = ("fp32", "bf16", "fp16", "fp64")


def _signatures(dt: str):
    acc = "fp64" if dt == "fp64" else "fp32"
    grid = {"N": "i32", "H": "i32", "W": "i32", "Q": "i32", "D": "i32",
            "s0": "i64", "s1": "i64", "s2": "i64", "s3": "i64"}
    fwd = {"X": f"*{dt}", "INV": f"*{acc}", "MEAN": f"*{acc}", "OFFS": "*i32", "QOUT": f"*{acc}",
           "NSQ": f"*{acc}", **grid, "N_OFF": "i32"}
    bwd = {"X": f"*{dt}", "INV": f"*{acc}", "MEAN": f"*{acc}", "OFFS": "*i32", "ALPHA": f"*{acc}",
           "B": f"*{acc}", "OUT": f"*{dt}", **grid,
           "o0": "i64", "o1": "i64", "o2": "i64", "o3": "i64", "N_OFF": "i32"}
    mean = {"X": f"*{dt}", "INV": f"*{acc}", "MEAN": f"*{acc}", **{k: v for k, v in grid.items() if k != "H"}}
    return fwd, bwd, mean


def variants(full: bool):
    """(kernel name, dtype, constexprs) to compile."""
    if full:
        combos = list(itertools.product(_DTYPES, range(4), (False, True), (0, 1, 2)))
    else:  # every metric (fp32, general layout), wrap, each layout, each dtype at least once
        combos = [("fp32", m, False, 0) for m in range(4)]
        combos += [("fp32", 3, True, 0), ("fp32", 2, False, 1), ("fp32", 2, False, 2),
                   ("bf16", 3, False, 2), ("fp16", 1, False, 1), ("fp64", 0, True, 0)]
    out = []
    for dt, metric, wrap, layout in combos:
        common = {"METRIC": metric, "WRAP": wrap, "ACC_F64": dt == "fp64", "LAYOUT": layout}
        out.append(("_pair_fwd_kernel", dt, {**common, "OFF_PAD": 4, "BLOCK_U": 16, "BLOCK_D": 128}))
        out.append(("_pair_bwd_kernel", dt, {**common, "BLOCK_U": 16, "BLOCK_D": 128}))
    for dt, layout in ([(d, l) for d in _DTYPES for l in (0, 1, 2)] if full else [("fp32", 2), ("bf16", 0)]):
        out.append(("_unit_mean_kernel", dt, {"ACC_F64": dt == "fp64", "LAYOUT": layout, "BLOCK_U": 64, "BLOCK_D": 32}))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--all", action="store_true", help="every variant (minutes), not the representative set")
    p.add_argument("arch", nargs="?", type=int, default=90, help="CUDA compute capability ×10 (default 90)")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        print("unset TRITON_INTERPRET: the interpreter replaces triton.jit at import", file=sys.stderr)
        return 2
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import torchtopo.kernels.neighbor as K

    target = GPUTarget("cuda", args.arch, 32)
    for name, dt, constexprs in variants(args.all):
        fwd, bwd, mean = _signatures(dt)
        sig = {"_pair_fwd_kernel": fwd, "_pair_bwd_kernel": bwd, "_unit_mean_kernel": mean}[name]
        sig = {**sig, **{k: "constexpr" for k in constexprs}}
        compiled = triton.compile(ASTSource(fn=getattr(K, name), signature=sig, constexprs=constexprs), target=target)
        assert compiled.asm.get("cubin"), f"{name} {dt} {constexprs}: no cubin"
    print(f"compiled {len(variants(args.all))} kernel variants for sm_{args.arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
