"""Reading episode bags: whole-episode reads, metadata, folder listing and a bag's identity.

See :mod:`qt_policy.data.bag_format` for the topics and the alignment rule, :mod:`.bag_writer` for how
a bag comes to be (a folder without the ``.partial`` suffix is always a complete episode).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..codec.images import image_msg_to_rgb
from . import bag_format as bf
from .alignment import latest_at_or_before
from .episode import EpisodeData
from .observation import prepare_frames

__all__ = [
    "EpisodeBagError",
    "IncompleteEpisodeBagError",
    "read_episode_bag",
    "read_bag_metadata",
    "list_episode_bags",
    "find_partial_bags",
    "bag_fingerprint",
]


class EpisodeBagError(ValueError):
    """The folder is not a usable episode bag."""


class IncompleteEpisodeBagError(EpisodeBagError):
    """The episode bag was never finalized (``.partial`` folder, no metadata or no /episode_result)."""


def read_bag_metadata(path: str | os.PathLike) -> dict:
    """The ``rosbag2_bagfile_information`` dict of a bag folder's metadata.yaml."""
    import yaml

    meta = Path(path) / "metadata.yaml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(meta, encoding="utf-8") as f:
        doc = yaml.load(f, Loader=loader)  # noqa: S506 (safe loader)
    if not isinstance(doc, dict) or "rosbag2_bagfile_information" not in doc:
        raise EpisodeBagError(f"{meta} is not a rosbag2 metadata file")
    return doc["rosbag2_bagfile_information"]


def _check_bag_folder(path: Path) -> None:
    if path.name.endswith(bf.PARTIAL_SUFFIX):
        raise IncompleteEpisodeBagError(
            f"{path} is an unfinished episode bag ('{bf.PARTIAL_SUFFIX}' folder: the recording was aborted or "
            "crashed before /episode_result was written); it is kept for inspection only")
    if not path.is_dir():
        raise EpisodeBagError(f"{path} is not a bag folder")
    if not (path / "metadata.yaml").is_file():
        raise IncompleteEpisodeBagError(f"{path} has no metadata.yaml: not a closed rosbag2 bag")


def read_episode_bag(path: str | os.PathLike, typestore=None, image_size: int | None = None) -> EpisodeData:
    """Read a finalized episode bag into an :class:`EpisodeData` using the alignment rule.

    ``image_size`` N: every camera's frames become the model's N x N input (observation.prepare_frame,
    the policy node's rule); needed when a robot's cameras differ in size. None keeps them as recorded.

    Raises :class:`IncompleteEpisodeBagError` for ``.partial`` folders and bags without /episode_result,
    :class:`EpisodeBagError` for bags without actions/images or with inconsistent shapes.
    """
    from rosbags.highlevel import AnyReader

    path = Path(path)
    _check_bag_folder(path)
    ts = typestore if typestore is not None else bf.get_episode_typestore()
    meta = read_bag_metadata(path)
    custom = meta.get("custom_data") or {}

    instruction: str | None = None
    image_msgs: dict[int, list[tuple[int, Any]]] = {}  # camera -> [(header stamp, msg)], in log order
    state_msgs: list[tuple[int, Any]] = []
    actions: list[Any] = []
    result = None
    wanted = {bf.INSTRUCTION_TOPIC, bf.STATE_TOPIC, bf.ACTION_TOPIC, bf.RESULT_TOPIC}
    embodiment = _bag_embodiment(custom, path)
    with AnyReader([path], default_typestore=ts) as reader:
        conns = [c for c in reader.connections if c.topic in wanted or bf.camera_of_topic(c.topic) is not None]
        if not any(c.topic == bf.RESULT_TOPIC for c in conns):
            raise IncompleteEpisodeBagError(
                f"{path} has no {bf.RESULT_TOPIC} message: the episode was never finalized")
        for conn, _log_time, raw in reader.messages(connections=conns):
            msg = bf.deserialize(ts, raw, conn.msgtype)  # also a bag recorded with earlier qt_msgs
            topic = conn.topic
            if topic == bf.ACTION_TOPIC:
                actions.append(msg)
            elif (camera := bf.camera_of_topic(topic)) is not None:
                image_msgs.setdefault(camera[0], []).append((bf.header_ns(msg), msg))
            elif topic == bf.STATE_TOPIC:
                state_msgs.append((bf.header_ns(msg), msg))
            elif topic == bf.INSTRUCTION_TOPIC:
                if instruction is None:
                    instruction = msg.data
            elif topic == bf.RESULT_TOPIC:
                result = msg
    if result is None:
        raise IncompleteEpisodeBagError(f"{path} has no {bf.RESULT_TOPIC} message: the episode was never finalized")
    if not actions:
        raise EpisodeBagError(f"{path} has no {bf.ACTION_TOPIC} messages (0-step episode)")
    if 0 not in image_msgs:
        raise EpisodeBagError(f"{path} has no {bf.IMAGE_TOPIC} (or {bf.COMPRESSED_IMAGE_TOPIC}) messages")
    cameras = sorted(image_msgs)
    if cameras != list(range(len(cameras))):
        raise EpisodeBagError(f"{path}: camera topics {[bf.image_topic(k) for k in cameras]} skip a camera")
    if embodiment is not None and len(embodiment.cameras) != len(cameras):
        raise EpisodeBagError(f"{path}: {len(cameras)} camera(s) recorded, embodiment {embodiment.name!r} has "
                              f"{len(embodiment.cameras)}")

    def align(msgs: list[tuple[int, Any]]) -> list[Any]:
        order = sorted(range(len(msgs)), key=lambda i: msgs[i][0])  # stable: ties keep log order
        stamps = [msgs[i][0] for i in order]
        out = []
        for a in actions:
            k = latest_at_or_before(stamps, bf.header_ns(a))
            out.append(msgs[order[0 if k is None else k]][1])  # none before: the first (bag_format.py)
        return out

    num_steps = len(actions)
    per_camera = []
    for k in cameras:
        decoded: dict[int, np.ndarray] = {}  # each image decoded once even if used by several steps
        frames = []
        for m in align(image_msgs[k]):
            if id(m) not in decoded:
                try:
                    decoded[id(m)] = image_msg_to_rgb(m)
                except ValueError as exc:
                    raise EpisodeBagError(f"{path}: cannot decode a frame of camera {k}: {exc}") from None
            frames.append(decoded[id(m)])
        if len({f.shape for f in frames}) != 1:
            raise EpisodeBagError(f"{path}: camera {k}'s image size changes within the episode: "
                                  f"{sorted({f.shape for f in frames})}")
        per_camera.append(np.stack(frames) if image_size is None else prepare_frames(np.stack(frames), image_size))
    if len(per_camera) == 1:
        images = per_camera[0]
    elif len({c.shape for c in per_camera}) == 1:
        images = np.stack(per_camera, axis=1)  # (T, K, H, W, 3)
    else:  # cameras of different sizes: the model's square input, by the one rule (observation.prepare_frame)
        raise EpisodeBagError(f"{path}: cameras of different sizes {[c.shape[1:3] for c in per_camera]}: "
                              "give an image size (qt-train --image-size N) to bring them to one")

    action_names = [str(n) for n in actions[0].dimension_names]
    dims = {len(np.asarray(a.values)) for a in actions}
    if len(dims) != 1:
        raise EpisodeBagError(f"{path}: action dimension changes within the episode: {sorted(dims)}")
    acts = np.stack([np.asarray(a.values, dtype=np.float32) for a in actions]).reshape(num_steps, dims.pop())

    states, state_names = None, []
    if state_msgs and (embodiment is None or embodiment.state.dim):
        chosen = align(state_msgs)
        if embodiment is not None:  # the robot's state spec: its joints, by name, its fields
            try:
                rows = [embodiment.state.extract(m.name, position=m.position, velocity=m.velocity, effort=m.effort)
                        for m in chosen]
            except ValueError as exc:
                raise EpisodeBagError(f"{path}: robot state does not fit embodiment {embodiment.name!r}: {exc}") from None
            state_names = embodiment.state.names
        else:
            rows = [np.asarray(m.position, dtype=np.float32) for m in chosen]
            state_names = [str(n) for n in chosen[0].name]
        sdims = {len(r) for r in rows}
        if len(sdims) != 1:
            raise EpisodeBagError(f"{path}: state dimension changes within the episode: {sorted(sdims)}")
        states = np.asarray(rows, dtype=np.float32).reshape(num_steps, sdims.pop())

    if instruction is None:
        instruction = result.instruction or actions[0].instruction
    return EpisodeData(
        instruction=instruction, images=images, actions=acts, success=bool(result.success),
        action_names=action_names, states=states, state_names=state_names,
        episode_id=result.episode_id, end_reason=result.end_reason, task=str(custom.get(bf.CUSTOM_TASK_KEY, "")),
        embodiment=embodiment.to_dict() if embodiment is not None else None,
        interventions=np.array([bool(getattr(a, "intervention", False)) for a in actions]))


def _bag_embodiment(custom: dict, path: Path):
    """The embodiment the recorder stored in the bag's custom_data, or None."""
    text = custom.get(bf.CUSTOM_EMBODIMENT_KEY)
    if not text:
        return None
    import json

    from ..robot.embodiment import Embodiment

    try:
        return Embodiment.from_dict(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise EpisodeBagError(f"{path}: unreadable {bf.CUSTOM_EMBODIMENT_KEY} in metadata.yaml: {exc}") from None


# -------------------------------------------------------------------------------------- listing
def list_episode_bags(directory: str | os.PathLike) -> list[Path]:
    """Completed episode bags directly under ``directory`` (folders with metadata.yaml, not ``.partial``),
    sorted by name. Bags lacking /episode_result (e.g. renamed by hand) are still rejected on reading."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.is_dir() and not p.name.endswith(bf.PARTIAL_SUFFIX) and (p / "metadata.yaml").is_file())


def find_partial_bags(directory: str | os.PathLike) -> list[Path]:
    """Unfinished (``.partial``) episode bag folders directly under ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.endswith(bf.PARTIAL_SUFFIX))


def bag_fingerprint(bag: Path) -> str:
    """Identity of a bag wherever its folder lives: the hash of its metadata.yaml (file names, start
    time, message counts). A copied or moved data folder (another mount point, another machine)
    must not convert its episodes a second time into the cache it brought along."""
    return hashlib.sha1((bag / "metadata.yaml").read_bytes()).hexdigest()
