"""Episode bags -> LeRobotDataset v3.0 (incremental: bags already exported are not written again)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .episode import EpisodeData
from .lerobot_format import (CAMERA, CHUNKS_SIZE, CODEBASE_VERSION, DATA_PATH, EPISODES_PATH, IMAGES_PREFIX,
                             INDEX_FEATURES, SOURCES_FILE, VIDEO_PATH, LeRobotFormatError, aggregate_stats, hf_features,
                             image_stats, file_location, read_tasks, column_stats, tasks_table, return_to_go)
from .lerobot_video import encode_video


def camera_keys(ep: EpisodeData) -> list[str]:
    """One video feature per camera: ``observation.images.camera`` for one camera; with several, the
    embodiment's camera names when the bag carries them, else camera, camera_1, ... (the bags' topics)."""
    k = ep.num_cameras
    names = [c.get("name") for c in (ep.embodiment or {}).get("cameras", [])]
    if k == 1:
        names = [CAMERA]
    elif len(names) != k or len(set(names)) != k or not all(names):
        names = [CAMERA] + [f"{CAMERA}_{i}" for i in range(1, k)]
    return [IMAGES_PREFIX + n for n in names]


def _features(ep: EpisodeData, fps: int, gamma: float) -> dict[str, Any]:
    h, w = ep.images.shape[-3:-1]
    feats: dict[str, Any] = {
        key: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
              "info": {"video.height": h, "video.width": w, "video.codec": "av1", "video.pix_fmt": "yuv420p",
                       "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}}
        for key in camera_keys(ep)}
    if ep.states is not None:
        feats["observation.state"] = {"dtype": "float32", "shape": [ep.states.shape[1]],
                                      "names": list(ep.state_names) or None}
    feats["action"] = {"dtype": "float32", "shape": [ep.actions.shape[1]], "names": list(ep.action_names) or None}
    feats["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    feats["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    feats["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    # a person drove this step, taking over from the policy (LeRobot's human-in-the-loop recording names it so)
    feats["intervention"] = {"dtype": "bool", "shape": [1], "names": None}
    feats["return_to_go"] = {"dtype": "float32", "shape": [1], "names": None,
                             "info": {"gamma": gamma, "definition": "sum_k gamma^k next.reward[t+k] (Monte Carlo)"}}
    for name in INDEX_FEATURES:
        feats[name] = {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1], "names": None}
    return feats


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
    tasks = read_tasks(root)
    todo = [(b, fp) for b in list_episode_bags(bag_dir) if (fp := bag_fingerprint(b)) not in sources]
    n_episodes = info["total_episodes"] if info else 0
    n_frames = info["total_frames"] if info else 0
    batch_file = len(list((root / "data").glob("chunk-*/file-*.parquet"))) if info else 0
    video_counter = max((len(list(d.glob("chunk-*/file-*.mp4"))) for d in (root / "videos").iterdir()),
                        default=0) if info else 0  # files per camera: one per episode
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
            "intervention": np.zeros(T, bool) if ep.interventions is None else np.asarray(ep.interventions, bool),
            "return_to_go": return_to_go(rewards, gamma), "timestamp": (np.arange(T) / fps).astype(np.float32),
            "frame_index": np.arange(T, dtype=np.int64), "episode_index": np.full(T, e, np.int64),
            "index": np.arange(n_frames, n_frames + T, dtype=np.int64),
            "task_index": np.full(T, tasks.index(ep.instruction), np.int64)}
        if ep.states is not None:
            cols["observation.state"] = ep.states.astype(np.float32)
        data_loc = file_location(batch_file)
        row = {"episode_index": e, "tasks": [ep.instruction], "length": T,
               "data/chunk_index": data_loc["chunk_index"], "data/file_index": data_loc["file_index"],
               "dataset_from_index": n_frames, "dataset_to_index": n_frames + T}
        loc = file_location(video_counter)
        for k, key in enumerate(camera_keys(ep)):  # one file per camera and episode
            encode_video(root / VIDEO_PATH.format(video_key=key, **loc), ep.camera(k), fps)
            row.update({f"videos/{key}/chunk_index": loc["chunk_index"], f"videos/{key}/file_index": loc["file_index"],
                        f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": T / fps})
            row.update({f"stats/{key}/{s}": v for s, v in image_stats(ep.camera(k)).items()})
        video_counter += 1
        for name, values in cols.items():
            row.update({f"stats/{name}/{s}": v for s, v in column_stats(values).items()})
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
            {b"huggingface": hf_features(features).encode()})
        data_loc = file_location(batch_file)
        (root / DATA_PATH.format(**data_loc)).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, root / DATA_PATH.format(**data_loc))
        for row in episode_rows:
            row.update({"meta/episodes/chunk_index": data_loc["chunk_index"],
                        "meta/episodes/file_index": data_loc["file_index"]})
        (root / EPISODES_PATH.format(**data_loc)).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(episode_rows), root / EPISODES_PATH.format(**data_loc))
        pq.write_table(tasks_table(tasks), root / "meta" / "tasks.parquet")
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
    stats = {name: aggregate_stats(parts) for name, parts in per_feature.items()}
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=1))
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=1))


