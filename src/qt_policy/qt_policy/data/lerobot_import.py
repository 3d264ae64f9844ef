"""LeRobotDataset v3.0 -> episodes (training reads them through the shards' converter)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .episode import EpisodeData
from .lerobot_format import CODEBASE_VERSION, IMAGES_PREFIX, LeRobotFormatError
from .lerobot_video import decode_video
from .observation import prepare_frames


def read_lerobot_episodes(root: str | os.PathLike, camera: str | None = None, skip=frozenset(),
                          image_size: int | None = None) -> Iterator[tuple[str, EpisodeData]]:
    """(source id, EpisodeData) per episode of a LeRobotDataset v3.0 folder, in episode order.

    Success: any ``next.success`` of the episode, else its last ``next.reward`` > 0. The instruction is
    the episode's task. Images: every video feature, in the order of ``meta/info.json`` ((T, K, H, W, 3)
    for K >= 2 cameras), or only `camera` (a key after ``observation.images.``), decoded from the MP4s
    span by span; `image_size` N brings each camera to N x N (observation.prepare_frames), which
    cameras of different sizes need. The source id is the dataset's own: its features, the episode's
    index, length and actions, hashed; so a moved or copied dataset gives the same ids. Episodes whose
    source id is in `skip` are not decoded. Raises LeRobotFormatError for other versions.
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
    keys = _camera_keys(root, feats, camera, image_size)
    action_names = list(feats["action"].get("names") or [f"a{i}" for i in range(feats["action"]["shape"][0])])
    state_feat = feats.get("observation.state")
    state_names = list((state_feat or {}).get("names") or [])
    dataset_id = hashlib.sha1(json.dumps([feats, fps, info.get("robot_type")], sort_keys=True).encode()).hexdigest()[:16]
    data_cache: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            dloc = (row["data/chunk_index"], row["data/file_index"])
            if dloc not in data_cache:
                data_cache.clear()  # one data file at a time
                table = pq.read_table(root / info["data_path"].format(chunk_index=dloc[0], file_index=dloc[1]))
                data_cache[dloc] = {n: np.asarray(table.column(n).to_pylist()) for n in table.column_names}
            d = data_cache[dloc]
            sel = d["episode_index"] == row["episode_index"]
            order = np.argsort(d["frame_index"][sel], kind="stable")
            actions = d["action"][sel][order].astype(np.float32)
            source = (f"lerobot:{dataset_id}#episode={row['episode_index']}:length={len(actions)}:"
                      f"actions={hashlib.sha1(actions.tobytes()).hexdigest()[:16]}")
            if source in skip:
                continue
            states = d["observation.state"][sel][order].astype(np.float32) if state_feat else None
            flags = d.get("intervention")  # LeRobot's human-in-the-loop flag, when the dataset has it
            interventions = np.asarray(flags[sel]).reshape(-1)[order].astype(bool) if flags is not None else None
            success_col = d.get("next.success")
            reward_col = d.get("next.reward")
            if success_col is not None:
                success = bool(np.asarray(success_col[sel]).any())
            else:
                success = bool(reward_col is not None and np.asarray(reward_col[sel])[order][-1] > 0)
            views = [_decode(root, info, row, key, fps, image_size) for key in keys]
            if any(len(v) != len(actions) for v in views):
                raise LeRobotFormatError(f"{root}: episode {row['episode_index']} has {len(actions)} frames of data "
                                         f"and {[len(v) for v in views]} video frames")
            yield (source, EpisodeData(
                instruction=str((row.get("tasks") or [""])[0]),
                images=views[0] if len(views) == 1 else np.stack(views, axis=1), actions=actions, success=success,
                action_names=action_names, states=states, state_names=state_names,
                episode_id=f"lerobot_{row['episode_index']:06d}", end_reason="lerobot",
                task=str(info.get("robot_type", "")), interventions=interventions))


def _camera_keys(root: Path, feats: dict, camera: str | None, image_size: int | None) -> list[str]:
    """The video features to read, checked: they exist, and without `image_size` they share one size."""
    videos = [k[len(IMAGES_PREFIX):] for k, f in feats.items() if k.startswith(IMAGES_PREFIX) and f["dtype"] == "video"]
    if not videos:
        raise LeRobotFormatError(f"{root} has no video camera feature ({IMAGES_PREFIX}<name>, dtype video)")
    if camera is not None and camera not in videos:
        raise LeRobotFormatError(f"{root} has no camera {camera!r}; it has {videos}")
    keys = [IMAGES_PREFIX + c for c in ([camera] if camera is not None else videos)]
    shapes = {tuple(feats[k]["shape"][:2]) for k in keys}
    if len(shapes) > 1 and image_size is None:
        raise LeRobotFormatError(f"{root}: its cameras {videos} have different sizes {sorted(shapes)}: convert "
                                 "with --image-size N (each camera is cropped and resized as the policy node does)")
    return keys


def _decode(root: Path, info: dict, row: dict, key: str, fps: int, image_size: int | None) -> np.ndarray:
    video = root / info["video_path"].format(video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                                             file_index=row[f"videos/{key}/file_index"])
    frames = decode_video(video, row[f"videos/{key}/from_timestamp"], row[f"videos/{key}/to_timestamp"], fps)
    return prepare_frames(frames, image_size) if image_size else frames
