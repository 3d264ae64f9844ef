#!/usr/bin/env python3
"""Start-up to first action, torch against ONNX Runtime: a fresh process per run, as a node starts.

Each run starts a new Python process that imports the runner, loads the policy (the checkpoint, or its
export), takes the instruction of the training data, one camera frame and the state, and decides once;
the time is counted from before the process is started to the decision. The instruction embedding comes
from the sentence encoder (torch) or from the export's table (ONNX Runtime), as each backend does in
the node. Also printed: whether torch was imported, and the peak resident memory of the process.

    python benchmarks/bench_startup.py [--checkpoint models/qt_metaworld] [--export data/exports/qt_metaworld_onnx] [--runs 5]
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r'''
import json, resource, sys, time
import numpy as np
from qt_policy.runtime.policy_config import PolicyNodeConfig
from qt_policy.runtime.decision import Action
from qt_policy.runtime.policy_runner import PolicyRunner
t_import = time.perf_counter()
runner = PolicyRunner.from_config(PolicyNodeConfig(checkpoint=sys.argv[1], backend=sys.argv[2]))
t_load = time.perf_counter()
runner.set_instruction("open the drawer", 0.0)
if runner.needs_state:
    runner.set_state([0.0, 0.6, 0.2, 1.0], 0.06)
runner.add_image(np.full((480, 640, 3), 90, np.uint8), 0.1)
action = runner.act(0.1)
assert isinstance(action, Action), action
print(json.dumps({"import_s": t_import, "load_s": t_load, "done_s": time.perf_counter(), "torch": "torch" in sys.modules,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def one_run(checkpoint: str, backend: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "import time; T0 = time.perf_counter()\n" + CHILD.replace(
        "time.perf_counter()", "(time.perf_counter() - T0)"), checkpoint, backend], capture_output=True, text=True,
        timeout=300)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**row, "wall_s": wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="models/qt_metaworld", help="torch checkpoint (default models/qt_metaworld)")
    p.add_argument("--export", default="data/exports/qt_metaworld_onnx",
                   help="its export (qt-export --checkpoint CHECKPOINT --out EXPORT)")
    p.add_argument("--runs", type=int, default=5, help="fresh processes per backend (default 5)")
    args = p.parse_args()
    print(f"{datetime.date.today()} {platform.node()} {platform.machine()}, {args.runs} fresh processes per backend "
          f"(the first run of each warms the file cache and is not counted)")
    print(f"{'backend':<12} {'first action s':>14} {'imports s':>9} {'load s':>7} {'decide s':>8} {'torch':>6} {'peak RSS MB':>11}")
    for backend, path in (("torch", args.checkpoint), ("onnxruntime", args.export)):
        one_run(path, backend)
        rows = [one_run(path, backend) for _ in range(args.runs)]
        med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
        print(f"{backend:<12} {med('wall_s'):>14.2f} {med('import_s'):>9.2f} {med('load_s') - med('import_s'):>7.2f} "
              f"{med('done_s') - med('load_s'):>8.2f} {str(rows[0]['torch']):>6} {med('rss_mb'):>11.0f}")
    print("first action = from starting the process to the first decision (process start, imports, loading the policy "
          "and the instruction encoder, one 640x480 frame, one decision)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
