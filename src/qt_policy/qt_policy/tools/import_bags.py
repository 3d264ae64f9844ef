"""Import bags recorded with plain `ros2 bag record` (any topic names, MCAP or sqlite3) as episode bags.

    qt-import-bags BAG [BAG ...] --embodiment config/embodiments/panda_moveit_servo.yaml \\
        --out data/imported [--instruction "open the drawer"] [--success true | --success-topic /success] \\
        [--topic camera=/cam/color/image_raw/compressed --topic twist=/servo/cmd ...]

One bag = one episode. Each is replayed, in log-time order, through the recorder's own logic
(runtime/episode_recorder.py in teleoperation mode), so an imported bag is exactly the bag the
recorder would have written had it been running: camera frames (Image or CompressedImage), the
robot state, and one action per control step made from the robot's command topics (the
embodiment's twist / joint / gripper topics; robot/teleop_steps.py).

Alignment, by the time each message was logged (its header stamp may be on another clock, so every
header is re-stamped with the log time): control steps are camera frames, at most control_rate_hz
a second (robot/steps.py); the state of a step is the latest JointState logged at or before its
frame; its action is the commands over [its frame, the next step's frame) -- for the last step, to
the end of the bag -- the time-weighted mean of velocity commands, the latest position command
(robot/command_window.py).

Topics: the embodiment's topic names with a leading '/' (under --namespace), or --topic
ROLE=/name (roles: camera, state, twist, joints, gripper, instruction, success). A bag that lacks a
mapped topic is an error naming it and the bag's topics. Labels: --instruction, else a sidecar
file, else the bag's /instruction topic; --success, else the sidecar, else --success-topic (the
last std_msgs/Bool on it). Sidecar: `qt_episode.yaml` inside the bag folder or `<bag>.qt_episode.yaml`
beside it, with keys `instruction` and `success`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..data import bag_format as bf

ROLES = ("camera", "state", "twist", "joints", "gripper", "instruction", "success")
SIDECAR = "qt_episode.yaml"


class BagImportError(ValueError):
    """A bag that cannot be imported, with the reason."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt-import-bags", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags", nargs="+", type=Path, help="rosbag2 folders (MCAP or sqlite3), one episode each")
    p.add_argument("--embodiment", required=True, type=Path, help="the robot's embodiment file")
    p.add_argument("--out", required=True, type=Path, help="folder for the episode bags (training reads it)")
    p.add_argument("--namespace", default="", help="namespace of the embodiment's relative topics in the bags")
    p.add_argument("--topic", action="append", default=[], metavar="ROLE=/NAME",
                   help=f"bag topic of a role ({', '.join(ROLES)}); default: the embodiment's topic")
    p.add_argument("--instruction", default=None, help="the task instruction of every bag given")
    p.add_argument("--success", choices=("true", "false"), default=None, help="the label of every bag given")
    p.add_argument("--success-topic", default=None, help="std_msgs/Bool topic whose last value is the label")
    p.add_argument("--image-format", choices=("as_received", "jpeg", "png"), default="as_received",
                   help="store raw frames as received or compressed")
    return p


def topic_map(embodiment, namespace: str = "", overrides: dict[str, str] | None = None,
              success_topic: str | None = None) -> dict[str, str]:
    """Role -> bag topic. Roles the embodiment does not use are left out."""
    from ..robot.commands import CommandMap

    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""

    def absolute(name: str) -> str:
        return name if name.startswith("/") else f"{ns}/{name}"

    cmap = CommandMap(embodiment)
    out = {"camera": absolute(embodiment.cameras[0].topic), "instruction": absolute("instruction")}
    for k, camera in enumerate(embodiment.cameras[1:], start=1):  # roles camera_1 .. (the embodiment's order)
        out[f"camera_{k}"] = absolute(camera.topic)
    if embodiment.state.dim:
        out["state"] = absolute(embodiment.state.topic)
    if cmap.twist_index:
        out["twist"] = absolute(embodiment.twist.topic)
    if cmap.joint_index:
        out["joints"] = absolute(embodiment.joints.topic)
    if cmap.gripper_index is not None:
        out["gripper"] = absolute(embodiment.gripper.topic)
    if success_topic:
        out["success"] = success_topic
    for role, name in (overrides or {}).items():
        if role not in ROLES and not (role.startswith("camera_") and role[len("camera_"):].isdigit()):
            raise ValueError(f"unknown topic role {role!r}; roles: {', '.join(ROLES)}")
        out[role] = name
    return out


def read_sidecar(bag: Path) -> dict:
    import yaml

    for path in (bag / SIDECAR, bag.with_name(bag.name + "." + SIDECAR)):
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            unknown = sorted(set(data) - {"instruction", "success"})
            if unknown:
                raise BagImportError(f"{path}: unknown keys {unknown} (use instruction, success)")
            return data
    return {}


def _restamped(ts, raw: bytes, msgtype: str, log_ns: int) -> bytes:
    """The message with header.stamp = its log time (one clock for the alignment)."""
    msg = ts.deserialize_cdr(raw, msgtype)
    time_cls = ts.types["builtin_interfaces/msg/Time"]
    header = dataclasses.replace(msg.header, stamp=time_cls(sec=log_ns // 1_000_000_000, nanosec=log_ns % 1_000_000_000))
    return bytes(ts.serialize_cdr(dataclasses.replace(msg, header=header), msgtype))


def import_bag(bag: Path, embodiment, out_dir: Path, topics: dict[str, str], instruction: str | None = None,
               success: bool | None = None, image_format: str = "as_received"):
    """One plain bag -> one episode bag in out_dir; returns the recorder's EpisodeEnd."""
    from rosbags.highlevel import AnyReader

    from ..runtime.episode_recorder import EpisodeRecorder

    bag = Path(bag)
    ts = bf.get_episode_typestore()
    side = read_sidecar(bag)
    instruction = instruction if instruction is not None else side.get("instruction")
    success = success if success is not None else side.get("success")
    with AnyReader([bag], default_typestore=ts) as reader:
        have = {c.topic: c.msgtype for c in reader.connections}
        needed = {r: t for r, t in topics.items() if r not in ("instruction", "success")}
        if "success" in topics and success is None:
            needed["success"] = topics["success"]
        missing = {r: t for r, t in needed.items() if t not in have}
        if missing:
            raise BagImportError(f"{bag}: no topic {', '.join(f'{t} ({r})' for r, t in missing.items())}; the bag has "
                               f"{sorted(have)} (map one with --topic ROLE=/name)")
        role_of = {t: r for r, t in topics.items() if t in have}
        conns = [c for c in reader.connections if c.topic in role_of]
        labels = [(c.topic, raw) for c in conns if role_of[c.topic] in ("instruction", "success")
                  for _, _, raw in reader.messages(connections=[c])]
        if instruction is None:
            texts = [ts.deserialize_cdr(raw, bf.STRING_TYPE).data for t, raw in labels if role_of[t] == "instruction"]
            instruction = texts[0] if texts else None
        if success is None:
            flags = [ts.deserialize_cdr(raw, bf.BOOL_TYPE).data for t, raw in labels if role_of[t] == "success"]
            success = bool(flags[-1]) if flags else None
        if not instruction:
            raise BagImportError(f"{bag}: no instruction: pass --instruction, write {SIDECAR}, or record /instruction")
        if success is None:
            raise BagImportError(f"{bag}: no success label: pass --success, write {SIDECAR}, or give --success-topic")
        first = reader.start_time
        recorder = EpisodeRecorder(out_dir, episode_timeout_s=0.0, min_free_disk_mb=0.0, typestore=ts,
                                   drop_actions_before_start=False, flush_period_s=None, embodiment=embodiment,
                                   teleop=True, image_format=image_format)
        started = recorder.start(instruction, 0.0, log_time_ns=first)
        if not started.started:
            raise BagImportError(f"{bag}: {started.message}")
        last = first
        for conn, log_ns, raw in reader.messages(connections=[c for c in conns
                                                            if role_of[c.topic] not in ("instruction", "success")]):
            role, msgtype, last = role_of[conn.topic], conn.msgtype, max(last, log_ns)
            if role == "camera" or role.startswith("camera_"):
                k = 0 if role == "camera" else int(role[len("camera_"):])
                topic = bf.image_topic(k, msgtype == bf.COMPRESSED_IMAGE_TYPE)
                if msgtype not in (bf.IMAGE_TYPE, bf.COMPRESSED_IMAGE_TYPE):
                    raise BagImportError(f"{bag}: camera topic {conn.topic} is {msgtype}, not an Image/CompressedImage")
                end = recorder.record(topic, msgtype, _restamped(ts, raw, msgtype, log_ns), log_ns)
            elif role == "state":
                end = recorder.record(bf.STATE_TOPIC, bf.JOINT_STATE_TYPE,
                                      _restamped(ts, raw, bf.JOINT_STATE_TYPE, log_ns), log_ns)
            else:
                end = recorder.command(role, msgtype, raw, log_ns)
            if end is not None:
                raise BagImportError(f"{bag}: the episode ended early ({end.end_reason}): {end.detail}")
        # the episode ends with the bag (its last message of any topic): that closes the last step
        end = recorder.end(bool(success), "imported", f"imported from {bag.resolve()}",
                           log_time_ns=max(last + 1, int(reader.end_time)))
    if not end.bag_path:
        raise BagImportError(f"{bag}: {end.detail}")
    return end


def main(argv=None) -> int:
    from tqdm import tqdm

    from ..robot.embodiment import load_embodiment

    args = build_parser().parse_args(argv)
    emb = load_embodiment(args.embodiment)
    overrides = {}
    for item in args.topic:
        role, sep, name = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--topic needs ROLE=/name, got {item!r}")
        overrides[role] = name
    topics = topic_map(emb, args.namespace, overrides, args.success_topic)
    success = None if args.success is None else args.success == "true"
    failed = 0
    for bag in tqdm(args.bags, desc="import", unit="bag", disable=len(args.bags) < 2):
        try:
            end = import_bag(bag, emb, args.out, topics, args.instruction, success, args.image_format)
        except (BagImportError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{bag} -> {end.bag_path}: {end.num_steps} steps, success={end.success}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
