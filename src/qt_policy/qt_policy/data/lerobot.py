"""LeRobotDataset v3.0 out of episode bags, and back in as training data (pyarrow + PyAV, no lerobot).

Layout (LeRobot's `codebase_version` "v3.0"; the reader of `../shared/data/lerobot_v3_reference`,
written by LeRobot's own writer, is tested on it):

* ``meta/info.json``: fps, features (dtype, shape, names), path templates, totals;
* ``meta/stats.json``: per-feature min/max/mean/std/count and q01..q99 (images: per channel, in [0, 1]);
* ``meta/tasks.parquet``: the task strings (the instructions), indexed like a pandas frame;
* ``meta/episodes/chunk-XXX/file-XXX.parquet``: per episode its length, task, data rows and video span;
* ``data/chunk-XXX/file-XXX.parquet``: one row per step: ``observation.state``, ``action``,
  ``next.reward``, ``next.done``, ``next.success``, ``return_to_go`` (the Monte-Carlo return-to-go
  sum_k gamma^k next.reward[t+k], gamma in the feature's info, the lower bound Q-Transformer's targets
  use), ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``;
* ``videos/observation.images.<camera>/chunk-XXX/file-XXX.mp4``: AV1 (SVT-AV1), yuv420p, as LeRobot
  writes them; one file per episode here (the episode rows say which file and which span).

Export is incremental: each call appends the bags it has not exported yet (``meta/qt_ros_sources.json``
maps bag fingerprints to episodes) as one more data and episodes file. Step t of a bag (the t-th
action and the observation it was decided from) is frame t; reward 1 on the last step of a success.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .episode import EpisodeData

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


# ------------------------------------------------------------------------------------------ stats
def _stats(values: np.ndarray) -> dict[str, list]:
    """Per-column statistics of (N, ...) values, as LeRobot keeps them (lists, keepdims shapes)."""
    v = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = {"min": v.min(0), "max": v.max(0), "mean": v.mean(0), "std": v.std(0), "count": np.array([len(v)])}
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(v, q, axis=0)
    return {k: x.tolist() for k, x in out.items()}


def _image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel statistics of (T, H, W, 3) uint8 frames in [0, 1], shaped (3, 1, 1) as LeRobot's."""
    per_channel = frames.reshape(-1, 3).astype(np.float64) / 255.0
    stats = _stats(per_channel[:: max(1, len(per_channel) // 200_000)])  # a subsample bounds the cost
    stats["count"] = [len(frames)]
    return {k: (np.asarray(v).reshape(3, 1, 1).tolist() if k != "count" else v) for k, v in stats.items()}


def _aggregate(per_episode: list[dict[str, list]]) -> dict[str, list]:
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


# ------------------------------------------------------------------------------------------ video
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
    """The frames whose timestamps lie in [start_s, end_s) of an MP4, as (T, H, W, 3) uint8 RGB."""
    import av

    frames = []
    half = 0.5 / fps
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else len(frames) / fps
            if start_s - half <= t < end_s - half:
                frames.append(frame.to_ndarray(format="rgb24"))
    if not frames:
        raise LeRobotFormatError(f"{path}: no frame between {start_s:g} s and {end_s:g} s")
    return np.stack(frames)


# ----------------------------------------------------------------------------------------- writer
def _features(ep: EpisodeData, fps: int, gamma: float) -> dict[str, Any]:
    h, w = ep.images.shape[1:3]
    feats: dict[str, Any] = {
        IMAGES_PREFIX + CAMERA: {
            "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": "av1", "video.pix_fmt": "yuv420p",
                     "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}},
    }
    if ep.states is not None:
        feats["observation.state"] = {"dtype": "float32", "shape": [ep.states.shape[1]],
                                      "names": list(ep.state_names) or None}
    feats["action"] = {"dtype": "float32", "shape": [ep.actions.shape[1]], "names": list(ep.action_names) or None}
    feats["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    feats["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    feats["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    feats["return_to_go"] = {"dtype": "float32", "shape": [1], "names": None,
                             "info": {"gamma": gamma, "definition": "sum_k gamma^k next.reward[t+k] (Monte Carlo)"}}
    for name in INDEX_FEATURES:
        feats[name] = {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1], "names": None}
    return feats


def _hf_features(features: dict[str, Any]) -> str:
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


def _tasks_table(tasks: list[str]):
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


def _read_tasks(root: Path) -> list[str]:
    import pyarrow.parquet as pq

    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        return []
    table = pq.read_table(path)
    names = [n for n in table.column_names if n != "task_index"]
    by_index = dict(zip(table.column("task_index").to_pylist(), table.column(names[0]).to_pylist()))
    return [by_index[i] for i in range(len(by_index))]


def _location(counter: int) -> dict[str, int]:
    return {"chunk_index": counter // CHUNKS_SIZE, "file_index": counter % CHUNKS_SIZE}


def export_bags(bag_dir: str | os.PathLike, out_dir: str | os.PathLike, fps: int = 10, gamma: float = 0.98,
                robot_type: str = "qt_ros", progress: bool = True) -> dict[str, Any]:
    """Append the episode bags of `bag_dir` not exported yet to the LeRobotDataset at `out_dir`.

    Returns {"exported": n, "skipped": [(bag, reason)], "total_episodes": ...}.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from .bag_io import EpisodeBagError, list_episode_bags, read_episode_bag
    from .bag_io import bag_fingerprint

    root = Path(out_dir)
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    if info is not None and info.get("codebase_version") != CODEBASE_VERSION:
        raise LeRobotFormatError(f"{root} is a {info.get('codebase_version')} dataset; this writes {CODEBASE_VERSION}")
    sources = json.loads((root / SOURCES_FILE).read_text()) if (root / SOURCES_FILE).is_file() else {}
    tasks = _read_tasks(root)
    todo = [(b, fp) for b in list_episode_bags(bag_dir) if (fp := bag_fingerprint(b)) not in sources]
    n_episodes = info["total_episodes"] if info else 0
    n_frames = info["total_frames"] if info else 0
    batch_file = len(list((root / "data").glob("chunk-*/file-*.parquet"))) if info else 0
    video_counter = len(list((root / "videos").glob("*/chunk-*/file-*.mp4"))) if info else 0
    rows: dict[str, list] = {}
    episode_rows: list[dict[str, Any]] = []
    skipped = []
    features = info["features"] if info else None
    for bag, fp in tqdm(todo, desc="bags -> LeRobot", unit="ep", disable=not progress or not todo):
        try:
            ep = read_episode_bag(bag)
        except EpisodeBagError as err:
            skipped.append((str(bag), str(err)))
            continue
        if ep.num_cameras > 1:  # not written yet: one video key per camera
            skipped.append((str(bag), f"{ep.num_cameras} cameras: the LeRobot export writes one-camera episodes only"))
            continue
        feats = _features(ep, fps, gamma)
        if features is None:
            features = feats
        elif {k: v["shape"] for k, v in feats.items()} != {k: v["shape"] for k, v in features.items()}:
            skipped.append((str(bag), "its features (camera size, action or state dimensions) differ from the dataset's"))
            continue
        if ep.instruction not in tasks:
            tasks.append(ep.instruction)
        e, T = n_episodes, len(ep)
        rewards = ep.rewards.astype(np.float32)
        cols = {
            "action": ep.actions.astype(np.float32), "next.reward": rewards,
            "next.done": np.arange(T) == T - 1, "next.success": (np.arange(T) == T - 1) & bool(ep.success),
            "return_to_go": return_to_go(rewards, gamma), "timestamp": (np.arange(T) / fps).astype(np.float32),
            "frame_index": np.arange(T, dtype=np.int64), "episode_index": np.full(T, e, np.int64),
            "index": np.arange(n_frames, n_frames + T, dtype=np.int64),
            "task_index": np.full(T, tasks.index(ep.instruction), np.int64)}
        if ep.states is not None:
            cols["observation.state"] = ep.states.astype(np.float32)
        key = IMAGES_PREFIX + CAMERA
        loc = _location(video_counter)
        encode_video(root / VIDEO_PATH.format(video_key=key, **loc), ep.images, fps)
        video_counter += 1
        data_loc = _location(batch_file)
        row = {"episode_index": e, "tasks": [ep.instruction], "length": T,
               "data/chunk_index": data_loc["chunk_index"], "data/file_index": data_loc["file_index"],
               "dataset_from_index": n_frames, "dataset_to_index": n_frames + T,
               f"videos/{key}/chunk_index": loc["chunk_index"], f"videos/{key}/file_index": loc["file_index"],
               f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": T / fps}
        row.update({f"stats/{key}/{s}": v for s, v in _image_stats(ep.images).items()})
        for name, values in cols.items():
            row.update({f"stats/{name}/{s}": v for s, v in _stats(values).items()})
            rows.setdefault(name, []).append(values)
        episode_rows.append(row)
        sources[fp] = {"episode_index": e, "bag": str(Path(bag).resolve()), "episode_id": ep.episode_id}
        n_episodes, n_frames = n_episodes + 1, n_frames + T
    if episode_rows:
        table = {}
        for name, parts in rows.items():
            values = np.concatenate(parts)
            if values.ndim == 2:
                table[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
            else:
                table[name] = pa.array(values)
        order = [k for k in features if k in table]
        data = pa.table({k: table[k] for k in order}).replace_schema_metadata(
            {b"huggingface": _hf_features(features).encode()})
        data_loc = _location(batch_file)
        (root / DATA_PATH.format(**data_loc)).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, root / DATA_PATH.format(**data_loc))
        for row in episode_rows:
            row.update({"meta/episodes/chunk_index": data_loc["chunk_index"],
                        "meta/episodes/file_index": data_loc["file_index"]})
        (root / EPISODES_PATH.format(**data_loc)).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(episode_rows), root / EPISODES_PATH.format(**data_loc))
        pq.write_table(_tasks_table(tasks), root / "meta" / "tasks.parquet")
        _write_meta(root, features, fps, robot_type, n_episodes, n_frames, len(tasks))
        (root / SOURCES_FILE).write_text(json.dumps(sources, indent=1))
    return {"exported": len(episode_rows), "skipped": skipped, "total_episodes": n_episodes, "total_frames": n_frames}


def _write_meta(root: Path, features, fps, robot_type, n_episodes, n_frames, n_tasks) -> None:
    import pyarrow.parquet as pq

    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": n_episodes,
            "total_frames": n_frames, "total_tasks": n_tasks, "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
            "splits": {"train": f"0:{n_episodes}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
            "features": features}
    per_feature: dict[str, list] = {}
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path).to_pylist()
        for row in table:
            for name in features:
                stat = {k.split("/")[-1]: v for k, v in row.items() if k.startswith(f"stats/{name}/")}
                if stat:
                    per_feature.setdefault(name, []).append(stat)
    stats = {name: _aggregate(parts) for name, parts in per_feature.items()}
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=1))
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=1))


# ----------------------------------------------------------------------------------------- reader
def read_lerobot_episodes(root: str | os.PathLike, camera: str | None = None,
                          skip: set[str] | frozenset = frozenset()) -> Iterator[tuple[str, EpisodeData]]:
    """(source id, EpisodeData) per episode of a LeRobotDataset v3.0 folder, in episode order.

    Success: any ``next.success`` of the episode, else its last ``next.reward`` > 0. The instruction is
    the episode's task. Images: `camera` (a key after ``observation.images.``; default ours, else the
    first video feature), decoded from the MP4. Episodes whose source id is in `skip` are not read.
    Raises LeRobotFormatError for other versions.
    """
    import pyarrow.parquet as pq

    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    version = str(info.get("codebase_version", ""))
    if version != CODEBASE_VERSION:
        raise LeRobotFormatError(
            f"{root} is a LeRobotDataset {version or '(no codebase_version)'}; only {CODEBASE_VERSION} is read. "
            "Convert it with LeRobot's own converter (lerobot/datasets/v30/convert_dataset_v21_to_v30.py) first.")
    fps = int(info["fps"])
    feats = info["features"]
    videos = [k[len(IMAGES_PREFIX):] for k, f in feats.items() if k.startswith(IMAGES_PREFIX) and f["dtype"] == "video"]
    if not videos:
        raise LeRobotFormatError(f"{root} has no video camera feature ({IMAGES_PREFIX}<name>, dtype video)")
    if camera is None:
        camera = CAMERA if CAMERA in videos else videos[0]
    if camera not in videos:
        raise LeRobotFormatError(f"{root} has no camera {camera!r}; it has {videos}")
    key = IMAGES_PREFIX + camera
    action_names = list(feats["action"].get("names") or [f"a{i}" for i in range(feats["action"]["shape"][0])])
    state_feat = feats.get("observation.state")
    state_names = list((state_feat or {}).get("names") or [])
    data_cache: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            source = f"{root.resolve()}#episode={row['episode_index']}"
            if source in skip:
                continue
            dloc = (row["data/chunk_index"], row["data/file_index"])
            if dloc not in data_cache:
                data_cache.clear()  # one data file at a time
                table = pq.read_table(root / info["data_path"].format(chunk_index=dloc[0], file_index=dloc[1]))
                data_cache[dloc] = {n: np.asarray(table.column(n).to_pylist()) for n in table.column_names}
            d = data_cache[dloc]
            sel = d["episode_index"] == row["episode_index"]
            order = np.argsort(d["frame_index"][sel], kind="stable")
            actions = d["action"][sel][order].astype(np.float32)
            states = d["observation.state"][sel][order].astype(np.float32) if state_feat else None
            success_col = d.get("next.success")
            reward_col = d.get("next.reward")
            if success_col is not None:
                success = bool(np.asarray(success_col[sel]).any())
            else:
                success = bool(reward_col is not None and np.asarray(reward_col[sel])[order][-1] > 0)
            video = root / info["video_path"].format(video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                                                     file_index=row[f"videos/{key}/file_index"])
            images = decode_video(video, row[f"videos/{key}/from_timestamp"], row[f"videos/{key}/to_timestamp"], fps)
            if len(images) != len(actions):
                raise LeRobotFormatError(f"{root}: episode {row['episode_index']} has {len(actions)} frames of data "
                                         f"and {len(images)} video frames")
            yield (source, EpisodeData(
                instruction=str((row.get("tasks") or [""])[0]), images=images, actions=actions, success=success,
                action_names=action_names, states=states, state_names=state_names,
                episode_id=f"lerobot_{row['episode_index']:06d}", end_reason="lerobot",
                task=str(info.get("robot_type", ""))))
