"""The videos of a LeRobotDataset: AV1 MP4 out (as LeRobot writes them), frames of a time span back in."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .lerobot_format import LeRobotFormatError


def encode_video(path: Path, frames: np.ndarray, fps: int, crf: int = 30) -> None:
    """(T, H, W, 3) uint8 RGB -> AV1 MP4 (libsvtav1, yuv420p: what LeRobot writes)."""
    import av

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration per file otherwise
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libsvtav1", rate=int(fps), options={"crf": str(crf), "preset": "10"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_video(path: Path, start_s: float, end_s: float, fps: int) -> np.ndarray:
    """The frames whose timestamps lie in [start_s, end_s) of an MP4, as (T, H, W, 3) uint8 RGB.

    Seeks to the key frame at or before start_s and stops after end_s: an episode in a file of many
    (LeRobot packs episodes into files of ~200 MB) costs its own frames, not the whole file's."""
    import av

    frames = []
    half = 0.5 / fps
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if start_s - half > 0:
            container.seek(max(0, int((start_s - half) / stream.time_base)), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else len(frames) / fps
            if t >= end_s - half:
                break
            if t >= start_s - half:
                frames.append(frame.to_ndarray(format="rgb24"))
    if not frames:
        raise LeRobotFormatError(f"{path}: no frame between {start_s:g} s and {end_s:g} s")
    return np.stack(frames)
