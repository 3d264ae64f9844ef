#!/usr/bin/env python3
"""Seconds to decode one episode's frames out of a LeRobot video file holding many episodes: by seeking to
the key frame before its span (data/lerobot_video.py, what the import does now) against decoding the file
from its start (what the import did before). LeRobot packs episodes into files of ~200 MB and encodes with
a key frame every 2 frames (its default `g=2`), which this file copies.

    python benchmarks/bench_lerobot_decode.py --episodes 20 --steps 35 --width 640 --height 480
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "qt_policy"))
from qt_policy.data.lerobot_video import decode_video  # noqa: E402


def encode(path: Path, frames: np.ndarray, fps: int, gop: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libsvtav1", rate=fps, options={"crf": "30", "preset": "12"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = gop
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def decode_from_start(path: Path, start_s: float, end_s: float, fps: int) -> np.ndarray:
    """The earlier import: every frame of the file decoded, the span's kept."""
    import av

    half, frames = 0.5 / fps, []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            if start_s - half <= t < end_s - half:
                frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=20, help="episodes in the file")
    p.add_argument("--steps", type=int, default=35, help="frames per episode")
    p.add_argument("--width", type=int, default=640, help="frame width")
    p.add_argument("--height", type=int, default=480, help="frame height")
    p.add_argument("--fps", type=int, default=10, help="frames per second")
    p.add_argument("--gop", type=int, default=2, help="frames between key frames (LeRobot's default: 2)")
    args = p.parse_args(argv)
    yy, xx = np.mgrid[0:args.height, 0:args.width]
    frames = np.stack([np.stack([(xx + 3 * t) % 256, (yy + t) % 256, np.full_like(xx, 128)], -1)
                       for t in range(args.episodes * args.steps)]).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "file-000.mp4"
        t0 = time.perf_counter()
        encode(video, frames, args.fps, args.gop)
        encode_s = time.perf_counter() - t0
        spans = [(e * args.steps / args.fps, (e + 1) * args.steps / args.fps) for e in range(args.episodes)]
        timings = {}
        for name, fn in (("seek", decode_video), ("from_start", decode_from_start)):
            per = []
            for lo, hi in spans:
                t0 = time.perf_counter()
                got = fn(video, lo, hi, args.fps)
                per.append(time.perf_counter() - t0)
                assert len(got) == args.steps, (name, lo, len(got))
            timings[name] = per
        same = all(np.array_equal(decode_video(video, lo, hi, args.fps), decode_from_start(video, lo, hi, args.fps))
                   for lo, hi in spans[-2:])
    print(json.dumps({"what": "lerobot_decode", "episodes": args.episodes, "steps": args.steps,
                      "size": f"{args.width}x{args.height}", "gop": args.gop, "encode_s": round(encode_s, 1),
                      "seek_mean_s": round(float(np.mean(timings["seek"])), 3),
                      "seek_last_s": round(timings["seek"][-1], 3),
                      "from_start_mean_s": round(float(np.mean(timings["from_start"])), 3),
                      "from_start_last_s": round(timings["from_start"][-1], 3), "same_frames": same}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
