"""Fingerprints of tiny training runs, to show a refactor of training is bit-identical.

    python -m qt_policy.research.fit_fingerprint --data data/bags --out /tmp/fp_before > before.json
    (change the code)
    python -m qt_policy.research.fit_fingerprint --data data/bags --out /tmp/fp_after > after.json
    diff before.json after.json        # nothing: the same weights, curves and configs

Four runs of 6 steps on a tiny network (a fresh Q-T run resumed to 9 steps, IQL, BC on the successes)
through `fit`; prints the sha256 of every weights file, of the curves without their wall times and of
every config without its wall time and paths. Same machine, same torch: the same numbers.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

TINY = dict(steps=6, batch_size=4, d_model=32, num_layers=1, num_heads=2, conv_channels=[8, 16], tokens_per_frame=4,
            log_every=2, checkpoint_every=3, seed=3)


def fingerprint(root: Path) -> dict[str, str]:
    def digest(obj) -> str:
        return hashlib.sha256(obj if isinstance(obj, bytes) else json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]

    out = {}
    for f in sorted(root.rglob("*")):
        name = str(f.relative_to(root))
        if f.suffix == ".safetensors":
            out[name] = digest(f.read_bytes())
        elif f.name == "metrics.jsonl":
            out[name] = digest([{k: v for k, v in json.loads(line).items() if k != "wall_time_s"}
                                for line in f.read_text().splitlines()])
        elif f.name == "config.json":
            config = json.loads(f.read_text())
            config.pop("wall_time_s", None)
            config.get("data", {}).pop("cache", None)
            config.get("data", {}).pop("shards", None)
            out[name] = digest(config)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fit_fingerprint", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="episode bags or a shard folder")
    p.add_argument("--out", type=Path, required=True, help="scratch folder for the runs (emptied first)")
    args = p.parse_args(argv)
    from ..training import fit

    shutil.rmtree(args.out, ignore_errors=True)
    quiet = dict(threads=1, progress=False, log=lambda s: None)
    fit(args.data, args.out / "qt", **TINY, **quiet)
    fit(args.data, args.out / "qt", resume=True, **{**TINY, "steps": 9}, **quiet)
    fit(args.data, args.out / "iql", algo="iql", **TINY, **quiet)
    fit(args.data, args.out / "bc", algo="bc", success_only=True, **TINY, **quiet)
    print(json.dumps(fingerprint(args.out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
