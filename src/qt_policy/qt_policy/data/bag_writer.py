"""Writing episode bags: a streaming writer (the recorder's and the generator's) and whole-episode writes.

A bag is written into ``<directory>/<name>.partial/`` and renamed to ``<directory>/<name>/`` only by
:meth:`EpisodeBagWriter.finalize`, after the /episode_result message is written, the bag closed and
fsynced: a folder without the ``.partial`` suffix is always a complete episode, and training never reads
``.partial`` folders. See :mod:`qt_policy.data.bag_format` for the topics and :mod:`.bag_io` for reading.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import bag_format as bf
from .episode import EpisodeData

__all__ = ["EpisodeBagWriter", "write_episode_bag"]

# --------------------------------------------------------------------------------------- rosbags glue
def _monotonic() -> float:
    """The flush clock (a function of its own so that tests can drive it)."""
    return time.monotonic()


def _rosbag2_writer_cls():
    """rosbags' rosbag2 Writer whose MCAP file is named ``<name>_0.mcap`` (as rosbag2 names it).

    rosbags names the storage file after its folder, which would leave ``<name>.partial.mcap`` inside
    the final ``<name>/`` folder; the file is renamed right after creation (it is open, nothing but the
    MCAP header written yet) so that the metadata (metadata.yaml and the copy inside the MCAP summary)
    names the final file.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.storage_mcap import McapWriter

    class _EpisodeMcapWriter(McapWriter):
        def __init__(self, path: Path, compression: Any) -> None:
            super().__init__(path, compression)
            stem = path.name[: -len(bf.PARTIAL_SUFFIX)] if path.name.endswith(bf.PARTIAL_SUFFIX) else path.name
            final = path / f"{stem}_0.mcap"
            if final != self.path:
                os.rename(self.path, final)
                self.path = final
            self.flush_period_s: float | None = None
            self._chunk_opened: float | None = None

        def start_background_flush(self, flush_period_s: float) -> None:
            """Close a chunk at least every `flush_period_s` and write it from a worker thread.

            rosbags keeps up to 1 MiB of messages in memory before it writes a chunk; a crash then
            loses all of it. Each closed chunk is a complete MCAP record on disk, readable without
            the summary that only `close` writes (see bag_salvage).
            """
            from .background_file import BackgroundFile

            self.bio.flush()  # the MCAP magic and header, before the worker takes over
            self.bio = BackgroundFile(self.bio, name=f"bag-writer:{self.path.name}")
            self.flush_period_s = float(flush_period_s)

        def write(self, connection, timestamp: int, data) -> None:
            super().write(connection, timestamp, data)
            if self.flush_period_s is None:
                return
            if not self.chunk.bio.tell():  # rosbags closed the chunk (1 MiB): hand it to the worker
                self._chunk_opened = None
                self.bio.flush()
            elif self._chunk_opened is None:
                self._chunk_opened = _monotonic()
            self.flush_due()

        def flush_due(self, force: bool = False) -> None:
            """Close the open chunk if it is older than the flush period (or `force`); queue it."""
            if self.flush_period_s is None:
                return
            if self._chunk_opened is not None and (
                    force or _monotonic() - self._chunk_opened >= self.flush_period_s):
                self.close_chunk()
                self._chunk_opened = None
            self.bio.flush()

        def abort(self) -> None:
            if self.flush_period_s is not None:
                self.bio.abort()  # what the worker had queued still reaches the file
            else:
                super().abort()

    class _EpisodeWriter(Writer):
        STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _EpisodeMcapWriter}

    return _EpisodeWriter


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_file():
            _fsync_path(child)
    _fsync_path(folder)


def _validate_name(name: str) -> str:
    name = str(name)
    if not name or "/" in name or name in (".", "..") or name.endswith(bf.PARTIAL_SUFFIX):
        raise ValueError(f"invalid episode bag name {name!r} (no '/', must not end with '{bf.PARTIAL_SUFFIX}')")
    return name


# ------------------------------------------------------------------------------------------- writer
class EpisodeBagWriter:
    """Streaming writer of one episode bag (used by the ROS recorder and the dataset generator alike).

    Usage::

        w = EpisodeBagWriter()
        w.open(directory, name)                      # -> <directory>/<name>.partial/
        w.write(bf.INSTRUCTION_TOPIC, bf.STRING_TYPE, msg, log_time_ns)
        w.write_raw(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, cdr_bytes, log_time_ns)   # bytes from a raw subscription
        ...
        path = w.finalize(success=True, episode_id=..., end_reason="success")  # -> <directory>/<name>/

    Connections are added lazily, one per (topic, type). Thread-safe (one lock around the bag).
    Used as a context manager, a writer that was not finalized is aborted on exit.

    ``flush_period_s`` (the recorder's): messages reach the file at least that often, as complete MCAP
    chunks written by a worker thread, so a crash, a kill or a full disk loses at most about that
    much of the open episode (:mod:`.bag_salvage` makes a bag of the rest). None (the generator's):
    rosbags' own 1 MiB chunks, written on the caller's thread.
    """

    def __init__(self, typestore=None, flush_period_s: float | None = None):
        if flush_period_s is not None and not flush_period_s > 0:
            raise ValueError(f"flush_period_s must be > 0 or None, got {flush_period_s}")
        self.flush_period_s = flush_period_s
        self.typestore = typestore if typestore is not None else bf.get_episode_typestore()
        self._lock = threading.Lock()
        self._writer = None
        self._connections: dict[tuple[str, str], Any] = {}
        self._counts: dict[str, int] = {}
        self._max_log_time = -1
        self._instruction = ""
        self._custom_data: dict[str, str] = {}
        self.directory: Path | None = None
        self.name: str | None = None
        self.final_path: Path | None = None

    # ------------------------------------------------------------------ state
    @property
    def partial_path(self) -> Path | None:
        if self.directory is None or self.name is None:
            return None
        return self.directory / (self.name + bf.PARTIAL_SUFFIX)

    @property
    def target_path(self) -> Path | None:
        if self.directory is None or self.name is None:
            return None
        return self.directory / self.name

    @property
    def max_log_time(self) -> int:
        """The latest log time written so far (-1 before the first message)."""
        return self._max_log_time

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    @property
    def counts(self) -> dict[str, int]:
        """Messages written so far, per topic."""
        with self._lock:
            return dict(self._counts)

    # ------------------------------------------------------------------ lifecycle
    def open(self, directory: str | os.PathLike, name: str, custom_data: dict[str, str] | None = None) -> Path:
        """Create ``<directory>/<name>.partial/`` and open the bag in it. Returns the .partial path."""
        if self._writer is not None:
            raise RuntimeError(f"writer already open on {self.partial_path}")
        name = _validate_name(name)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        final, partial = directory / name, directory / (name + bf.PARTIAL_SUFFIX)
        for p in (final, partial):
            if p.exists():
                raise FileExistsError(f"{p} exists already; episode bag names must be unique")
        from rosbags.rosbag2 import StoragePlugin

        writer = _rosbag2_writer_cls()(partial, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        if self.flush_period_s is not None:
            writer.storage.start_background_flush(self.flush_period_s)
        self._writer = writer
        self.directory, self.name, self.final_path = directory, name, None
        self._connections.clear()
        self._counts.clear()
        self._max_log_time = -1
        self._instruction = ""
        self._custom_data = {bf.CUSTOM_FORMAT_KEY: bf.CUSTOM_FORMAT_VALUE}
        for k, v in (custom_data or {}).items():
            self.set_custom_data(k, v)
        if custom_data:  # metadata.yaml is only written at finalize: a salvage reads them from here
            import json

            (partial / bf.PARTIAL_CUSTOM_DATA_FILE).write_text(json.dumps(custom_data), encoding="utf-8")
        return partial

    def flush(self, force: bool = False) -> None:
        """Write the open chunk if it is older than ``flush_period_s`` (any age with `force`); a timer
        calls this so that data also reaches the disk while no message arrives. Raises a write error."""
        with self._lock:
            if self._writer is not None and self.flush_period_s is not None:
                self._writer.storage.flush_due(force)

    def set_custom_data(self, key: str, value: str) -> None:
        """Key/value stored in metadata.yaml ``custom_data`` (e.g. ``qt_ros.task``)."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("custom_data keys and values must be str")
        self._custom_data[key] = value

    def _connection(self, topic: str, msgtype: str):
        key = (topic, msgtype)
        conn = self._connections.get(key)
        if conn is None:
            try:
                conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            except KeyError as err:
                raise KeyError(f"message type {msgtype!r} unknown to the episode typestore") from err
            self._connections[key] = conn
        return conn

    def _write(self, topic: str, msgtype: str, data, log_time_ns: int) -> None:
        if self._writer is None:
            raise RuntimeError("EpisodeBagWriter is not open")
        log_time_ns = int(log_time_ns)
        if log_time_ns < 0:
            raise ValueError(f"negative log time {log_time_ns}")
        self._writer.write(self._connection(topic, msgtype), log_time_ns, data)
        self._counts[topic] = self._counts.get(topic, 0) + 1
        self._max_log_time = max(self._max_log_time, log_time_ns)

    def write_raw(self, topic: str, msgtype: str, cdr_bytes: bytes | memoryview, log_time_ns: int) -> None:
        """Write serialized CDR bytes (as rclpy delivers them with ``raw=True`` subscriptions)."""
        with self._lock:
            if topic == bf.INSTRUCTION_TOPIC and msgtype == bf.STRING_TYPE:
                self._instruction = self.typestore.deserialize_cdr(cdr_bytes, msgtype).data
            self._write(topic, msgtype, cdr_bytes, log_time_ns)

    def write(self, topic: str, msgtype: str, message, log_time_ns: int) -> None:
        """Serialize a rosbags message object with the typestore and write it."""
        data = self.typestore.serialize_cdr(message, msgtype)
        with self._lock:
            if topic == bf.INSTRUCTION_TOPIC and msgtype == bf.STRING_TYPE:
                self._instruction = message.data
            self._write(topic, msgtype, data, log_time_ns)

    def finalize(self, success: bool, episode_id: str = "", instruction: str | None = None,
                 reward: float | None = None, num_steps: int | None = None, end_reason: str = "",
                 stamp_ns: int | None = None, log_time_ns: int | None = None, task: str | None = None,
                 detail: str = "", operator_share: float = 0.0) -> Path:
        """Write /episode_result, close, fsync and rename ``<name>.partial`` -> ``<name>``.

        Defaults: ``instruction`` = last /instruction written, ``num_steps`` = number of /qt/action
        messages, ``reward`` = 1.0 on success else 0.0, ``log_time_ns`` = after every message written
        so far (so the result is last), ``stamp_ns`` = ``log_time_ns``.
        Returns the final bag folder.
        """
        with self._lock:
            if self._writer is None:
                raise RuntimeError("EpisodeBagWriter is not open")
            final = self.target_path
            if task is not None:
                self.set_custom_data(bf.CUSTOM_TASK_KEY, str(task))
            if log_time_ns is None:
                log_time_ns = max(self._max_log_time + 1, 0)
            if stamp_ns is None:
                stamp_ns = log_time_ns
            msg = bf.make_episode_result_msg(
                stamp_ns=stamp_ns, episode_id=episode_id,
                instruction=self._instruction if instruction is None else instruction,
                success=success, reward=reward,
                num_steps=self._counts.get(bf.ACTION_TOPIC, 0) if num_steps is None else num_steps,
                end_reason=end_reason, bag_path=str(final.resolve()), detail=detail, typestore=self.typestore,
                operator_share=operator_share)
            data = self.typestore.serialize_cdr(msg, bf.EPISODE_RESULT_TYPE)
            self._write(bf.RESULT_TOPIC, bf.EPISODE_RESULT_TYPE, data, log_time_ns)
            self._close_writer()
            partial = self.partial_path
            _fsync_tree(partial)
            if final.exists():  # os.rename would silently replace an empty directory
                raise FileExistsError(f"{final} appeared while writing; the episode stays in {partial}")
            os.rename(partial, final)
            _fsync_path(final.parent)
            self.final_path = final
            return final

    def abort(self) -> Path | None:
        """Close without /episode_result; the ``.partial`` folder stays for inspection. Returns its path."""
        with self._lock:
            if self._writer is None:
                return None
            try:
                self._close_writer()  # a readable (indexed) bag, still named .partial
            except Exception:  # noqa: BLE001
                writer, self._writer = self._writer, None
                if writer is not None:
                    writer.abort()
            return self.partial_path

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        writer.custom_data.update(self._custom_data)
        try:
            writer.close()
        except BaseException:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001
                pass
            raise

    def __enter__(self) -> "EpisodeBagWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._writer is not None:
            self.abort()

    def __del__(self):  # a writer dropped without finalize keeps its .partial folder
        try:
            if self._writer is not None:
                self._writer.abort()
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------------------------- whole episodes
def write_episode_bag(directory: str | os.PathLike, episode: EpisodeData, start_time_ns: int | None = None,
                      dt_ns: int = 100_000_000, name: str | None = None, frame_id: str = "camera",
                      typestore=None) -> Path:
    """Write a whole :class:`EpisodeData` as a finalized episode bag; returns the bag folder.

    Step t: image and state stamped ``s_t = start_time_ns + t*dt_ns`` (logged at ``s_t + dt/4``), action
    stamped ``s_t`` (logged at ``s_t + dt/2``); /instruction logged first at ``start_time_ns``;
    /episode_result last at ``start_time_ns + T*dt_ns``. ``start_time_ns`` defaults to now, ``name`` to
    the episode id (or a fresh ``episode_<uuid>``).
    """
    dt_ns = int(dt_ns)
    if dt_ns < 4:
        raise ValueError("dt_ns must be >= 4")
    start = time.time_ns() if start_time_ns is None else int(start_time_ns)
    name = name or episode.episode_id or f"episode_{uuid.uuid4().hex[:12]}"
    ts = typestore if typestore is not None else bf.get_episode_typestore()
    num_steps, action_names, state_names = len(episode), list(episode.action_names), list(episode.state_names)
    custom = {bf.CUSTOM_TASK_KEY: episode.task} if episode.task else {}
    if episode.embodiment:  # as the recorder stores it: training and the node then know the robot
        import json

        custom[bf.CUSTOM_EMBODIMENT_KEY] = json.dumps(episode.embodiment, sort_keys=True)
    custom = custom or None

    writer = EpisodeBagWriter(typestore=ts)
    writer.open(directory, name, custom_data=custom)
    try:
        writer.write(bf.INSTRUCTION_TOPIC, bf.STRING_TYPE, bf.make_string_msg(episode.instruction, ts), start)
        for t in range(num_steps):
            stamp = start + t * dt_ns
            for k in range(episode.num_cameras):
                writer.write(bf.image_topic(k), bf.IMAGE_TYPE,
                             bf.make_image_msg(episode.camera(k)[t], stamp, frame_id=frame_id if k == 0 else
                                               f"{frame_id}_{k}", typestore=ts),
                             stamp + dt_ns // 4)
            if episode.states is not None:
                writer.write(bf.STATE_TOPIC, bf.JOINT_STATE_TYPE,
                             bf.make_joint_state_msg(episode.states[t], state_names, stamp, typestore=ts),
                             stamp + dt_ns // 4)
            person = episode.interventions is not None and bool(episode.interventions[t])
            writer.write(bf.ACTION_TOPIC, bf.QACTION_TYPE,
                         bf.make_qaction_msg(episode.actions[t], stamp, action_names, instruction=episode.instruction,
                                             typestore=ts, source="operator" if person else "policy",
                                             intervention=person),
                         stamp + dt_ns // 2)
        end = start + num_steps * dt_ns
        return writer.finalize(success=episode.success, episode_id=episode.episode_id,
                               instruction=episode.instruction, num_steps=num_steps,
                               end_reason=episode.end_reason, stamp_ns=end, log_time_ns=end,
                               operator_share=episode.operator_share)
    except BaseException:
        writer.abort()
        raise
