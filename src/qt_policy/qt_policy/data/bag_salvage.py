"""Turn unfinished episode bags (``<name>.partial``: a crash, a kill, a full disk) into ordinary ones.

An unfinished bag has an MCAP file without its summary (and no metadata.yaml): ``rosbags`` cannot
open it. Its complete records can still be read in order with the ``mcap`` library's stream reader
(as ``mcap recover`` does): every chunk that reached the disk whole is recovered, the chunk cut by
the crash is not. The recorder closes a chunk at least every ``flush_period_s``, so that is the most
an episode loses.

`salvage_partial` copies the recovered messages into a fresh episode bag with the usual
``/episode_result`` (success False unless a result was recorded, end_reason saying what happened,
num_steps = the actions in the bag), so training reads it like any other bag. It is safe to repeat
after a crash of its own: the unfinished folder is first renamed ``<name>.salvaging`` (atomic), the
new bag is written as ``<name>.partial`` and renamed ``<name>`` by the usual finalize, and only then
is ``<name>.salvaging`` removed. A folder with no readable action holds nothing to train on and is
removed (the outcome says what it held).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from . import bag_format as bf
from .bag_writer import EpisodeBagWriter

SALVAGING_SUFFIX = ".salvaging"
#: optional file in an unfinished bag folder: why the recorder left it unfinished (e.g. disk_full),
#: the label it had and how many actions it had handed to the writer (JSON)
END_MARKER_FILE = "qt_unfinished.json"
#: end_reason of a bag whose writer stopped without saying why (killed, crashed, power loss)
INTERRUPTED = "interrupted"  # one of data/episode.py RECORDER_END_REASONS


class PartialBagScan:
    """The complete messages of an unfinished bag folder, in file order (one pass)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.counts: dict[str, int] = {}
        self.truncated = False  # the file ends in an incomplete (or corrupt) record
        self.stop_reason = ""
        self.dropped_bytes = 0  # bytes after the last complete record (the chunk a crash cut)

    def messages(self) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, log_time_ns, cdr bytes) of every message in a complete record."""
        from mcap.records import Channel, Footer, Message, Schema
        from mcap.stream_reader import StreamReader

        for path in sorted(self.folder.glob("*.mcap")):
            schemas: dict[int, str] = {}
            channels: dict[int, tuple[str, str]] = {}
            size, done = path.stat().st_size, 0
            with open(path, "rb") as f:
                reader = StreamReader(f, validate_crcs=True)
                try:
                    for record in reader.records:
                        done = getattr(getattr(reader, "_stream", None), "count", done)
                        if isinstance(record, Schema):
                            schemas[record.id] = record.name
                        elif isinstance(record, Channel):
                            channels[record.id] = (record.topic, schemas.get(record.schema_id, ""))
                        elif isinstance(record, Message) and record.channel_id in channels:
                            topic, msgtype = channels[record.channel_id]
                            self.counts[topic] = self.counts.get(topic, 0) + 1
                            yield topic, msgtype, int(record.log_time), bytes(record.data)
                        elif isinstance(record, Footer):
                            break
                except Exception as exc:  # noqa: BLE001 - the end of what is readable (EOF, bad length, CRC)
                    self.dropped_bytes += max(size - done, 0)
                    if size > done:  # else: the file just stops after a complete record (no summary)
                        self.truncated = True
                        self.stop_reason = f"{path.name}: {type(exc).__name__}: {exc}".rstrip(": ")

    def count(self) -> dict[str, int]:
        """Read it all; messages per topic (what a salvage would keep)."""
        for _ in self.messages():
            pass
        return dict(self.counts)


@dataclass(frozen=True)
class SalvageOutcome:
    name: str  # the episode id (bag folder name)
    bag_path: str  # the salvaged bag; '' when the folder held nothing to keep (it was removed)
    instruction: str
    success: bool
    num_steps: int
    end_reason: str
    stamp_ns: int
    detail: str
    counts: dict[str, int] = field(default_factory=dict)


def episode_name(folder: Path) -> str:
    for suffix in (bf.PARTIAL_SUFFIX, SALVAGING_SUFFIX):
        if folder.name.endswith(suffix):
            return folder.name[: -len(suffix)]
    raise ValueError(f"{folder} is not an unfinished episode bag folder ('{bf.PARTIAL_SUFFIX}' or "
                     f"'{SALVAGING_SUFFIX}')")


def find_unfinished(directory: str | Path) -> list[str]:
    """Episode names with an unfinished folder directly under `directory` (.partial or .salvaging)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    names = {episode_name(p) for p in directory.iterdir() if p.is_dir() and (
        p.name.endswith(bf.PARTIAL_SUFFIX) or p.name.endswith(SALVAGING_SUFFIX))}
    return sorted(names)


@dataclass(frozen=True)
class UnfinishedMark:
    """What the recorder knew when it had to leave a bag unfinished (kept in memory and, if the disk
    allows, in END_MARKER_FILE so that a restart knows it too)."""

    end_reason: str
    success: bool = False  # the label it had been given
    num_steps: int = 0  # actions handed to the writer: the label only holds if all of them are recovered

    def save(self, folder: Path) -> None:
        """Best effort: the disk may be full."""
        try:
            (Path(folder) / END_MARKER_FILE).write_text(json.dumps(asdict(self)), encoding="utf-8")
        except OSError:
            pass

    @classmethod
    def load(cls, folder: Path) -> "UnfinishedMark | None":
        try:
            d = json.loads((Path(folder) / END_MARKER_FILE).read_text(encoding="utf-8"))
            return cls(str(d["end_reason"]), bool(d.get("success", False)), int(d.get("num_steps", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def salvage_partial(directory: str | Path, name: str, mark: UnfinishedMark | None = None,
                    typestore=None) -> SalvageOutcome:
    """Make ``<directory>/<name>`` from its unfinished folder (see the module docstring).

    `mark`: what the recorder knew (default: the folder's END_MARKER_FILE, else end_reason
    ``interrupted`` and no label). The bag is a success only if the mark says so and every action it
    counted was recovered (a success whose last steps are lost would put the reward on the wrong step).
    Raises OSError when the new bag cannot be written (e.g. the disk is still full): the folders are
    then left so that the next call redoes it.
    """
    directory = Path(directory)
    final = directory / name
    partial, work = directory / (name + bf.PARTIAL_SUFFIX), directory / (name + SALVAGING_SUFFIX)
    if work.is_dir():  # an earlier salvage was cut short: its output (if any) is redone
        if (final / "metadata.yaml").is_file():
            shutil.rmtree(work)
            return SalvageOutcome(name, str(final.resolve()), "", False, 0, "", 0,
                                  "already salvaged: removed the leftover working folder")
        if partial.exists():
            shutil.rmtree(partial)
    elif partial.is_dir():
        if final.exists():
            raise FileExistsError(f"{final} exists beside {partial}: not salvaging over it")
        partial.rename(work)
    else:
        raise FileNotFoundError(f"no unfinished bag folder for {name!r} in {directory}")
    mark = mark or UnfinishedMark.load(work) or UnfinishedMark(INTERRUPTED)
    end_reason = mark.end_reason

    scan = PartialBagScan(work)
    writer = EpisodeBagWriter(typestore=typestore)
    try:
        custom = json.loads((work / bf.PARTIAL_CUSTOM_DATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        custom = None
    instruction, success, last_log, opened = "", False, 0, False
    try:
        for topic, msgtype, log_time, data in scan.messages():
            last_log = max(last_log, log_time)
            if topic == bf.RESULT_TOPIC:  # finalize was cut short after writing it: keep its label
                success = bool(bf.deserialize(writer.typestore, data, msgtype).success)
                continue
            if topic == bf.INSTRUCTION_TOPIC and not instruction:
                instruction = str(writer.typestore.deserialize_cdr(data, msgtype).data)
            if not opened:
                writer.open(directory, name, custom_data=custom)
                opened = True
            writer.write_raw(topic, msgtype, data, log_time)
        counts = dict(scan.counts)
        num_steps = counts.get(bf.ACTION_TOPIC, 0)
        held = ", ".join(f"{n} {t}" for t, n in sorted(counts.items())) or "no complete message"
        cut = (f"; {scan.dropped_bytes} bytes of an incomplete record dropped ({scan.stop_reason})"
               if scan.truncated else "")
        if num_steps == 0:
            writer.abort()
            if partial.exists():
                shutil.rmtree(partial)
            shutil.rmtree(work)
            return SalvageOutcome(name, "", instruction, False, 0, end_reason, last_log,
                                  f"removed: no action to train on ({held}){cut}", counts)
        detail = f"salvaged from an unfinished bag: {held}{cut}"
        if mark.success and not success:
            if num_steps >= mark.num_steps:
                success = True
            else:
                detail += (f"; labelled a failure: it was a success, but {mark.num_steps - num_steps} of its "
                           f"{mark.num_steps} steps were lost")
        bag = writer.finalize(success=success, episode_id=name, instruction=instruction, num_steps=num_steps,
                              end_reason=end_reason, stamp_ns=last_log + 1, detail=detail)
    except BaseException:
        writer.abort()
        raise
    shutil.rmtree(work)
    return SalvageOutcome(name, str(bag.resolve()), instruction, success, num_steps, end_reason, last_log + 1,
                          detail, counts)
