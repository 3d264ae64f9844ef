"""The episode bag format: topic names, the rosbags typestore, and message builders.

One episode = one rosbag2 folder (MCAP storage, ros2 profile) with these topics:

* ``/camera/image_raw``  sensor_msgs/msg/Image (rgb8 when we write it; header.stamp = capture time), or
  ``/camera/image_raw/compressed`` sensor_msgs/msg/CompressedImage (JPEG/PNG) -- one of the two;
  a robot with K >= 2 cameras (the embodiment's order) adds ``/camera_1/image_raw`` .. ``/camera_<K-1>/...``
  (``image_topic(k)``)
* ``/instruction``       std_msgs/msg/String (written first)
* ``/robot_state``       sensor_msgs/msg/JointState (optional; name = state names, position = values)
* ``/qt/action``         qt_msgs/msg/QAction, one per control step; header.stamp = stamp of the camera
  frame the action was computed from; ``bins`` may be empty and ``q_value`` NaN for human/scripted actions
* ``/episode_result``    qt_msgs/msg/EpisodeResult, written once, last, when the episode is finalized
* ``/command/twist``, ``/command/joints``, ``/command/gripper``: a teleoperator's commands as received
  (recorded in teleoperation mode only; the QActions were made from them, robot/command_window.py)

metadata.yaml custom_data ``qt_ros.embodiment`` holds the robot's embodiment (robot/embodiment.py, JSON)
when the recorder knew it; the state is then read by its state spec (joints picked by name).

Alignment when reading: step t = the t-th QAction in log-time order; its observation is the latest image
of each camera (and latest state) whose header.stamp <= the action's header.stamp (if none: the first image). Reward is 1
on the last step iff EpisodeResult.success. A bag without /episode_result is incomplete and is rejected.

The typestore is rosbags' ROS 2 Kilted store plus the qt_msgs types parsed from their .msg files (the
installed ``share/qt_msgs/msg`` of an ament prefix, else the source tree ``src/qt_msgs/msg``), so the
type hashes written into bags are the ones rclpy uses.
"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..codec.actions import qaction_fields
from ..codec.images import compress_rgb, image_fields
from ..codec.stamps import stamp_to_ns

# ----------------------------------------------------------------------------------------- topics
IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_IMAGE_TOPIC = "/camera/image_raw/compressed"
TWIST_COMMAND_TOPIC = "/command/twist"
JOINT_COMMAND_TOPIC = "/command/joints"
GRIPPER_COMMAND_TOPIC = "/command/gripper"
INSTRUCTION_TOPIC = "/instruction"
STATE_TOPIC = "/robot_state"
ACTION_TOPIC = "/qt/action"
RESULT_TOPIC = "/episode_result"



def image_topic(camera: int, compressed: bool = False) -> str:
    """The bag topic of camera `camera` (0 = the first, the one-camera format's /camera/image_raw)."""
    if camera < 0:
        raise ValueError(f"camera index must be >= 0, got {camera}")
    base = "/camera" if camera == 0 else f"/camera_{camera}"
    return f"{base}/image_raw" + ("/compressed" if compressed else "")


def camera_of_topic(topic: str) -> tuple[int, bool] | None:
    """(camera index, compressed) of an image topic of the episode format, else None."""
    compressed = topic.endswith("/compressed")
    base = topic[: -len("/compressed")] if compressed else topic
    if not base.endswith("/image_raw"):
        return None
    head = base[: -len("/image_raw")]
    if head == "/camera":
        return 0, compressed
    if head.startswith("/camera_") and head[len("/camera_"):].isdigit() and int(head[len("/camera_"):]) >= 1:
        return int(head[len("/camera_"):]), compressed
    return None


IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
TWIST_STAMPED_TYPE = "geometry_msgs/msg/TwistStamped"
JOINT_TRAJECTORY_TYPE = "trajectory_msgs/msg/JointTrajectory"
FLOAT64_MULTI_ARRAY_TYPE = "std_msgs/msg/Float64MultiArray"
FLOAT64_TYPE = "std_msgs/msg/Float64"
BOOL_TYPE = "std_msgs/msg/Bool"
STRING_TYPE = "std_msgs/msg/String"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
QACTION_TYPE = "qt_msgs/msg/QAction"
EPISODE_RESULT_TYPE = "qt_msgs/msg/EpisodeResult"

#: default topic -> message type of the episode bag format
TOPIC_TYPES = {
    IMAGE_TOPIC: IMAGE_TYPE,
    INSTRUCTION_TOPIC: STRING_TYPE,
    STATE_TOPIC: JOINT_STATE_TYPE,
    ACTION_TOPIC: QACTION_TYPE,
    RESULT_TOPIC: EPISODE_RESULT_TYPE,
}

#: metadata.yaml ``custom_data`` keys written by the episode writer
CUSTOM_FORMAT_KEY = "qt_ros.format"
CUSTOM_FORMAT_VALUE = "episode-v1"
CUSTOM_TASK_KEY = "qt_ros.task"
CUSTOM_EMBODIMENT_KEY = "qt_ros.embodiment"

PARTIAL_SUFFIX = ".partial"
#: custom_data of an open episode, beside its MCAP file (a salvaged bag gets it back)
PARTIAL_CUSTOM_DATA_FILE = "qt_custom_data.json"
QT_MSGS_PACKAGE = "qt_msgs"



# ------------------------------------------------------------------------------- qt_msgs .msg files
def _candidates() -> list[Path]:
    """Installed share dirs first (AMENT_PREFIX_PATH, the ament index), then the source checkout."""
    from ..paths import package_share, source_share

    out = [Path(prefix) / "share" / QT_MSGS_PACKAGE / "msg"
           for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if prefix]
    out += [d / "msg" for d in (package_share(QT_MSGS_PACKAGE), source_share(QT_MSGS_PACKAGE)) if d is not None]
    for parent in Path(__file__).resolve().parents:  # an installed qt_policy beside a qt_msgs source folder
        out.append(parent / "src" / QT_MSGS_PACKAGE / "msg")
        out.append(parent / QT_MSGS_PACKAGE / "msg")
    return out


def find_qt_msgs_dir() -> Path:
    """Directory holding qt_msgs' .msg files: an installed ament share dir first, else the source tree.

    The installed definitions win because they are what the running ROS nodes were built from (raw CDR
    bytes recorded from rclpy must match the definition stored in the bag).
    """
    tried = []
    for cand in _candidates():
        if cand in tried:
            continue
        tried.append(cand)
        if cand.is_dir() and any(cand.glob("*.msg")):
            return cand
    raise FileNotFoundError(
        "qt_msgs message definitions not found: no share/qt_msgs/msg/*.msg under AMENT_PREFIX_PATH "
        "(build and source the workspace: `source scripts/env.sh`) and no src/qt_msgs/msg in the source "
        "tree. Looked in:\n  " + "\n  ".join(str(p) for p in tried)
    )


def _ros2_store():
    from rosbags.typesys import Stores, get_typestore

    for name in ("ROS2_KILTED", "LATEST", "ROS2_JAZZY", "ROS2_HUMBLE"):
        store = getattr(Stores, name, None)
        if store is not None:
            return get_typestore(store)
    raise RuntimeError("rosbags has no ROS 2 typestore")  # pragma: no cover


#: qt_msgs as bags recorded before 2026-12-07 hold them (QAction without source/intervention, EpisodeResult
#: without operator_share): `deserialize` reads those with these definitions when today's do not fit
LEGACY_DEFINITIONS = {
    QACTION_TYPE: "std_msgs/Header header\nstring instruction\nstring[] dimension_names\nfloat32[] values\n"
                  "uint16[] bins\nfloat32 q_value\nbool terminate\n",
    EPISODE_RESULT_TYPE: "std_msgs/Header header\nstring episode_id\nstring instruction\nbool success\n"
                         "float32 reward\nuint32 num_steps\nstring end_reason\nstring bag_path\nstring detail\n",
}


@functools.lru_cache(maxsize=8)
def _typestore_for(msg_dir: str):
    from rosbags.typesys import get_types_from_msg

    store = _ros2_store()
    types = {}
    for msg_file in sorted(Path(msg_dir).glob("*.msg")):
        name = f"{QT_MSGS_PACKAGE}/msg/{msg_file.stem}"
        types.update(get_types_from_msg(msg_file.read_text(encoding="utf-8"), name))
    for name, text in LEGACY_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name + "V1"))
    store.register(types)
    return store


def deserialize(typestore, raw: bytes, msgtype: str):
    """A recorded message by today's definition, or by the one it was recorded with (LEGACY_DEFINITIONS)."""
    try:
        return typestore.deserialize_cdr(raw, msgtype)
    except Exception:  # noqa: BLE001 - rosbags' SerdeError or a short buffer: try the earlier layout
        if msgtype not in LEGACY_DEFINITIONS:
            raise
        return typestore.deserialize_cdr(raw, msgtype + "V1")


def qaction_source(msg) -> str:
    """Who drove a recorded step: the QAction's `source`, "policy" for one recorded before it existed."""
    return getattr(msg, "source", "") or "policy"


def get_episode_typestore(msg_dir: str | os.PathLike | None = None):
    """rosbags Typestore: ROS 2 Kilted messages + qt_msgs (cached per .msg directory).

    ``msg_dir`` overrides the search of :func:`find_qt_msgs_dir`.
    """
    msg_dir = Path(msg_dir) if msg_dir is not None else find_qt_msgs_dir()
    return _typestore_for(str(msg_dir.resolve()))


# ------------------------------------------------------------------------------------ time helpers
def header_ns(msg) -> int:
    return stamp_to_ns(msg.header.stamp)


def cdr_header_stamp_ns(raw) -> int:
    """header.stamp of a serialized message whose first field is a std_msgs/Header (Image,
    CompressedImage, JointState, QAction...), read from the CDR bytes without deserializing the rest
    (a 640x480 frame would be copied otherwise)."""
    import struct

    buf = memoryview(raw)
    if len(buf) < 12:
        raise ValueError(f"{len(buf)} bytes: too short for a CDR message with a header")
    endian = "<" if buf[1] & 1 else ">"  # encapsulation: 0x0001 CDR_LE, 0x0000 CDR_BE
    sec, nanosec = struct.unpack_from(endian + "iI", buf, 4)
    return int(sec) * 1_000_000_000 + int(nanosec)


def make_header(stamp_ns: int, frame_id: str = "", typestore=None):
    ts = typestore or get_episode_typestore()
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise ValueError(f"negative stamp {stamp_ns}")
    time_cls = ts.types["builtin_interfaces/msg/Time"]
    header_cls = ts.types["std_msgs/msg/Header"]
    return header_cls(stamp=time_cls(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                      frame_id=frame_id)


# ---------------------------------------------------------------------------------- message builders
def make_image_msg(image: np.ndarray, stamp_ns: int, frame_id: str = "camera", encoding: str = "rgb8",
                   typestore=None):
    """sensor_msgs/Image from an (H, W, 3) uint8 RGB array (or (H, W) for mono8, (H, W, 4) for rgba8)."""
    ts = typestore or get_episode_typestore()
    return ts.types[IMAGE_TYPE](header=make_header(stamp_ns, frame_id, ts), **image_fields(image, encoding))


def make_compressed_image_msg(image: np.ndarray, stamp_ns: int, fmt: str = "jpeg", quality: int = 90,
                              frame_id: str = "camera", typestore=None):
    """sensor_msgs/CompressedImage (format 'rgb8; jpeg compressed bgr8', as image_transport writes) from
    an (H, W, 3) uint8 RGB array; fmt 'jpeg' (lossy, `quality`) or 'png' (lossless)."""
    ts = typestore or get_episode_typestore()
    format_, data = compress_rgb(image, fmt, quality)
    return ts.types[COMPRESSED_IMAGE_TYPE](header=make_header(stamp_ns, frame_id, ts), format=format_, data=data)


def make_string_msg(text: str, typestore=None):
    ts = typestore or get_episode_typestore()
    return ts.types[STRING_TYPE](data=str(text))


def make_joint_state_msg(values: np.ndarray, names: Sequence[str], stamp_ns: int, frame_id: str = "",
                         typestore=None):
    """sensor_msgs/JointState with name = state names and position = values (velocity/effort empty)."""
    ts = typestore or get_episode_typestore()
    pos = np.asarray(values, dtype=np.float64).reshape(-1)
    names = [str(n) for n in names]
    if names and len(names) != pos.size:
        raise ValueError(f"{len(names)} state names for {pos.size} values")
    empty = np.zeros(0, dtype=np.float64)
    return ts.types[JOINT_STATE_TYPE](header=make_header(stamp_ns, frame_id, ts), name=names,
                                      position=pos, velocity=empty, effort=empty.copy())


def make_qaction_msg(values: np.ndarray, stamp_ns: int, dimension_names: Sequence[str] = (),
                     bins: np.ndarray | Sequence[int] | None = None, q_value: float = math.nan,
                     terminate: bool = False, instruction: str = "", frame_id: str = "", typestore=None,
                     source: str = "policy", intervention: bool = False):
    """qt_msgs/QAction; ``stamp_ns`` = stamp of the camera frame the action was computed from.

    ``bins`` None/empty for human or scripted actions; ``q_value`` NaN when unknown.
    """
    ts = typestore or get_episode_typestore()
    return ts.types[QACTION_TYPE](header=make_header(stamp_ns, frame_id, ts),
                                  **qaction_fields(values, dimension_names, bins, q_value, terminate, instruction,
                                                   source, intervention))


def make_episode_result_msg(stamp_ns: int, episode_id: str = "", instruction: str = "", success: bool = False,
                            reward: float | None = None, num_steps: int = 0, end_reason: str = "",
                            bag_path: str = "", frame_id: str = "", detail: str = "", typestore=None,
                            operator_share: float = 0.0):
    """qt_msgs/EpisodeResult; reward defaults to 1.0 on success else 0.0."""
    ts = typestore or get_episode_typestore()
    if reward is None:
        reward = 1.0 if success else 0.0
    return ts.types[EPISODE_RESULT_TYPE](header=make_header(stamp_ns, frame_id, ts), episode_id=str(episode_id),
                                         instruction=str(instruction), success=bool(success),
                                         reward=float(reward), num_steps=int(num_steps),
                                         end_reason=str(end_reason), bag_path=str(bag_path), detail=str(detail),
                                         operator_share=float(operator_share))
