#!/usr/bin/env python3
"""What the recorder's flush period costs: bag size, time per message on the caller's (callback)
thread, and the most a kill would lose, side by side for flush_period_s = off (rosbags' 1 MiB
chunks, the old behaviour), 1.0 s (the default) and 0.25 s, and the size of the finalized bag.

One 30 s episode at 10 Hz: camera + JointState + QAction per step, 64x64 or 640x480 rgb8 frames.
The lost-on-kill column is measured: after the last step the writer thread stops as a SIGKILL would
stop it, and the unfinished bag is scanned for the actions that reached the file.

    python benchmarks/bench_recorder_flush.py [--steps 300] [--sizes 64x64 640x480]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "qt_policy"))
from qt_policy.data import bag_format as bf  # noqa: E402
from qt_policy.data import bag_writer  # noqa: E402
from qt_policy.data.bag_writer import EpisodeBagWriter  # noqa: E402
from qt_policy.data.bag_salvage import PartialBagScan  # noqa: E402

STEP_S = 0.1


def run(size: tuple[int, int], flush: float | None, steps: int, out: Path, ts, kill: bool = True) -> dict:
    h, w = size
    clock = {"t": 0.0}
    bag_writer._monotonic = lambda: clock["t"]  # the episode's own time, so that 30 s take a second or two
    writer = EpisodeBagWriter(typestore=ts, flush_period_s=flush)
    writer.open(out, f"ep_{h}x{w}_{flush}")
    frames = [ts.serialize_cdr(bf.make_image_msg(np.full((h, w, 3), k, np.uint8), 0, typestore=ts), bf.IMAGE_TYPE)
              for k in range(4)]
    st = ts.serialize_cdr(bf.make_joint_state_msg(np.zeros(7), [f"j{i}" for i in range(7)], 0, typestore=ts),
                          bf.JOINT_STATE_TYPE)
    act = ts.serialize_cdr(bf.make_qaction_msg(np.zeros(4), 0, ["dx", "dy", "dz", "g"], typestore=ts), bf.QACTION_TYPE)
    per_msg = []
    for t in range(steps):
        log = 10**18 + t * 10**8
        for topic, typ, raw in ((bf.IMAGE_TOPIC, bf.IMAGE_TYPE, frames[t % 4]),
                                (bf.STATE_TOPIC, bf.JOINT_STATE_TYPE, st), (bf.ACTION_TOPIC, bf.QACTION_TYPE, act)):
            t0 = time.perf_counter()
            writer.write_raw(topic, typ, raw, log)
            per_msg.append((time.perf_counter() - t0) * 1e3)
        clock["t"] = (t + 1) * STEP_S
    if not kill:
        bag = writer.finalize(success=True)
        return {"mb_final": sum(f.stat().st_size for f in bag.iterdir()) / 2**20}
    storage = writer._writer.storage
    if flush is not None:
        storage.bio.drain(30.0)
        storage.bio._stop(30.0)  # as a SIGKILL would leave it: the worker's writes are on disk, memory is gone
    else:
        storage.bio.flush()  # even generously counting everything rosbags had written out
    on_disk = PartialBagScan(writer.partial_path).count().get(bf.ACTION_TOPIC, 0)
    per_msg.sort()
    return {"p50_ms": statistics.median(per_msg), "p99_ms": per_msg[int(0.99 * (len(per_msg) - 1))],
            "max_ms": per_msg[-1], "lost_s": (steps - on_disk) * STEP_S}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="control steps of the episode (10 Hz)")
    p.add_argument("--sizes", nargs="+", default=["64x64", "640x480"], help="frame sizes, WxH")
    args = p.parse_args()
    ts = bf.get_episode_typestore()
    print(f"# {platform.machine()} {platform.processor() or ''} python {platform.python_version()}; "
          f"{args.steps} steps at 10 Hz, 3 messages a step")
    print(f"{'frame':>9} {'flush':>6} {'write p50 ms':>13} {'p99 ms':>8} {'max ms':>8} {'lost on kill s':>15} "
          f"{'finalized bag MB':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sizes:
            w, h = (int(x) for x in spec.split("x"))
            for flush in (None, 1.0, 0.25):
                r = run((h, w), flush, args.steps, Path(tmp) / "killed", ts)
                r.update(run((h, w), flush, args.steps, Path(tmp) / "finalized", ts, kill=False))
                name = "off" if flush is None else f"{flush:g} s"
                print(f"{spec:>9} {name:>6} {r['p50_ms']:13.3f} {r['p99_ms']:8.3f} {r['max_ms']:8.2f} "
                      f"{r['lost_s']:15.1f} {r['mb_final']:17.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
