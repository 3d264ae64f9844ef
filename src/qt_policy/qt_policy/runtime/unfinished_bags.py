"""Episode bags the recorder could not finish, made into ordinary bags once the disk has room.

Messages reach the file as complete MCAP chunks at least every ``flush_period_s`` (a worker thread
writes them, so a slow disk does not block the caller). A write or finalize that fails (ENOSPC ->
``disk_full``, anything else -> ``write_error``) ends the episode at once: the bag is left unfinished
(``.partial``) with a mark saying why, and the episode's result counts the steps readable in it.
Unfinished folders -- these, and those of a recorder that was killed -- are salvaged into ordinary
bags (data/bag_salvage.py) at start-up and, once there is disk space again, from the node's timer.
See docs/nodes.md, "What survives what".
"""
from __future__ import annotations

import errno
import math
from pathlib import Path

from ..data import bag_format as bf
from ..data.bag_salvage import PartialBagScan, UnfinishedMark, find_unfinished, salvage_partial
from .disk_space import DiskSpace


class UnfinishedBags:
    """The unfinished episodes of one output folder, salvaged at most every `retry_period_s`."""

    def __init__(self, output_dir: Path, typestore, retry_period_s: float, log):
        self.output_dir, self.typestore, self.retry_period_s, self.log = Path(output_dir), typestore, retry_period_s, log
        self.pending: dict[str, UnfinishedMark | None] = {}  # name -> why it was left (None: found on disk)
        self.salvaged = 0
        self._last_try = -math.inf

    def leave(self, name: str, writer, exc: BaseException, success: bool) -> tuple[str, Path, int, int]:
        """Abort `writer` after `exc`, mark its folder for salvage. Returns (end_reason, the .partial
        folder, steps handed to the writer, steps readable in the folder)."""
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        reason = "disk_full" if full else "write_error"
        handed = writer.counts.get(bf.ACTION_TOPIC, 0)
        partial = None
        try:
            partial = writer.abort()
        except Exception:  # noqa: BLE001 - the folder is what is left; it is salvaged later
            pass
        partial = partial or writer.partial_path
        mark = UnfinishedMark(reason, bool(success), handed)
        mark.save(partial)
        self.pending[name] = mark
        readable = PartialBagScan(partial).count().get(bf.ACTION_TOPIC, 0)
        return reason, partial, handed, readable

    def salvage(self, now: float, disk: DiskSpace, scan: bool = False, skip: str = "") -> list:
        """Salvage what is pending while the disk has room for it; `scan` (start-up) first adds every
        unfinished folder of the output folder except `skip` (the open episode). Returns the
        (name, SalvageResult) pairs of the folders handled."""
        if scan:
            for name in find_unfinished(self.output_dir):
                if name != skip:
                    self.pending.setdefault(name, None)
        elif not self.pending or now - self._last_try < self.retry_period_s:
            return []
        self._last_try = now
        out = []
        for name in sorted(self.pending):
            size_mb = sum(f.stat().st_size for f in self.output_dir.glob(f"{name}.*/*") if f.is_file()) / 2**20
            status, free = disk.status()
            if status == "full" or free - size_mb < disk.min_free_mb:
                break  # retried later; the folder stays as it is
            try:
                got = salvage_partial(self.output_dir, name, self.pending[name], typestore=self.typestore)
            except FileNotFoundError:
                del self.pending[name]  # removed by hand meanwhile
                continue
            except OSError as exc:
                self.log("warn", f"salvage of {name} failed ({type(exc).__name__}: {exc}); retried later")
                break
            del self.pending[name]
            self.salvaged += bool(got.bag_path)
            out.append((name, got))
        return out
