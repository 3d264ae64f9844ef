"""LeRobotDataset v3.0: the layout's names, paths and statistics, shared by the export and the import
(the layout itself: data/lerobot.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

CODEBASE_VERSION = "v3.0"
IMAGES_PREFIX = "observation.images."
CAMERA = "camera"  # our bags hold one camera: /camera/image_raw
SOURCES_FILE = "meta/qt_ros_sources.json"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class LeRobotFormatError(ValueError):
    """Not a LeRobotDataset v3.0 folder (or not one this reader can use)."""


def is_lerobot_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / "meta" / "info.json").is_file()


def return_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros(len(rewards), np.float64)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + gamma * acc
        out[t] = acc
    return out.astype(np.float32)


def column_stats(values: np.ndarray) -> dict[str, list]:
    """Per-column statistics of (N, ...) values, as LeRobot keeps them (lists, keepdims shapes)."""
    v = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = {"min": v.min(0), "max": v.max(0), "mean": v.mean(0), "std": v.std(0), "count": np.array([len(v)])}
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(v, q, axis=0)
    return {k: x.tolist() for k, x in out.items()}


def image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel statistics of (T, H, W, 3) uint8 frames in [0, 1], shaped (3, 1, 1) as LeRobot's."""
    per_channel = frames.reshape(-1, 3).astype(np.float64) / 255.0
    stats = column_stats(per_channel[:: max(1, len(per_channel) // 200_000)])  # a subsample bounds the cost
    stats["count"] = [len(frames)]
    return {k: (np.asarray(v).reshape(3, 1, 1).tolist() if k != "count" else v) for k, v in stats.items()}


def aggregate_stats(per_episode: list[dict[str, list]]) -> dict[str, list]:
    """Dataset statistics from per-episode ones: exact min/max/mean/std, count-weighted quantiles."""
    counts = np.array([float(np.asarray(s["count"]).reshape(-1)[0]) for s in per_episode])
    w = counts / counts.sum()
    arr = {k: np.stack([np.asarray(s[k], dtype=np.float64) for s in per_episode]) for k in per_episode[0]}
    shape = (-1,) + (1,) * (arr["mean"].ndim - 1)
    mean = (arr["mean"] * w.reshape(shape)).sum(0)
    var = ((arr["std"] ** 2 + (arr["mean"] - mean) ** 2) * w.reshape(shape)).sum(0)
    out = {"min": arr["min"].min(0), "max": arr["max"].max(0), "mean": mean, "std": np.sqrt(var),
           "count": np.array([int(counts.sum())])}
    for k in arr:
        if k.startswith("q"):
            out[k] = (arr[k] * w.reshape(shape)).sum(0)
    return {k: v.tolist() for k, v in out.items()}


def hf_features(features: dict[str, Any]) -> str:
    """The huggingface `datasets` schema LeRobot stores in each data file's metadata."""
    out = {}
    for name, f in features.items():
        if f["dtype"] == "video":
            continue
        if f["shape"] == [1]:
            out[name] = {"dtype": f["dtype"], "_type": "Value"}
        else:
            out[name] = {"feature": {"dtype": f["dtype"], "_type": "Value"}, "length": f["shape"][0], "_type": "List"}
    return json.dumps({"info": {"features": out}})


def tasks_table(tasks: list[str]):
    """meta/tasks.parquet as LeRobot writes it: a pandas frame indexed by the task string."""
    import pyarrow as pa

    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [
        {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
         "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                     "numpy_type": "int64", "metadata": None},
                    {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                     "numpy_type": "object", "metadata": None}],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.large_string())})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def read_tasks(root: Path) -> list[str]:
    import pyarrow.parquet as pq

    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        return []
    table = pq.read_table(path)
    names = [n for n in table.column_names if n != "task_index"]
    by_index = dict(zip(table.column("task_index").to_pylist(), table.column(names[0]).to_pylist()))
    return [by_index[i] for i in range(len(by_index))]


def file_location(counter: int) -> dict[str, int]:
    return {"chunk_index": counter // CHUNKS_SIZE, "file_index": counter % CHUNKS_SIZE}


