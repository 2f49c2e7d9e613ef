"""Run every example in its ``--quick`` mode and copy its figures and report into the docs.

    python docs/scripts/example_figures.py                      # all examples
    python docs/scripts/example_figures.py topographic_mnist    # some of them

For each ``examples/<name>.py`` this runs ``python examples/<name>.py --quick --seed 0 --out
TMP`` and copies ``TMP/**/*.png`` and ``TMP/report.md`` into ``docs/_static/examples/<name>/``,
which the examples page shows.  Commit the result; the docs build itself never trains anything.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEST = ROOT / "docs" / "_static" / "examples"


def run(name: str, timeout: float, extra: list[str]) -> dict:
    script = ROOT / "examples" / f"{name}.py"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        cmd = [sys.executable, str(script), "--quick", "--seed", "0", "--out", str(out), *extra]
        env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
        t0 = time.time()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        seconds = round(time.time() - t0, 1)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
            return {"name": name, "ok": False, "seconds": seconds, "returncode": proc.returncode}
        dest = DEST / name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        figs = sorted(p for p in out.rglob("*.png") if "checkpoints" not in p.relative_to(out).parts)
        for f in figs:  # keep the folders: the report links its figures by relative path
            target = dest / f.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        for doc in ("report.md", "results.json"):
            if (out / doc).exists() and (out / doc).stat().st_size < 2**20:
                shutil.copy2(out / doc, dest / doc)
        meta = {"command": " ".join(["python", f"examples/{name}.py", "--quick", "--seed", "0", *extra]),
                "seconds": seconds, "figures": [str(f.relative_to(out)) for f in figs]}
        (dest / "run.json").write_text(json.dumps(meta, indent=1) + "\n")
        return {"name": name, "ok": True, **meta}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="example names (default: all of examples/*.py)")
    ap.add_argument("--timeout", type=float, default=1800)
    args, extra = ap.parse_known_args(argv)
    names = args.names or sorted(p.stem for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
    failed = 0
    for name in names:
        res = run(name, args.timeout, extra)
        print(json.dumps(res))
        failed += not res["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
