"""Free disk space of the recorder's output folder, judged against `min_free_mb`.

Below twice the minimum a warning is logged (once per low-disk spell); below the minimum the recorder
refuses instructions and ends a running episode while its bag can still be closed cleanly."""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Callable


def free_mb(folder: Path) -> float:
    """Free space of the file system holding `folder` (its nearest existing parent), in MiB."""
    path = Path(folder).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / (1024.0 * 1024.0)


class DiskSpace:
    """status() -> ('ok' | 'low' | 'full', free MB); `measure` gives the free MB (a test can fake it)."""

    def __init__(self, folder: Path, min_free_mb: float, measure: Callable[[], float], log):
        self.folder, self.min_free_mb, self.measure, self.log = Path(folder), float(min_free_mb), measure, log
        self._low_warned = False

    def status(self) -> tuple[str, float]:
        try:
            free = self.measure()
        except OSError as exc:
            self.log("warn", f"cannot check free disk space of {self.folder}: {exc}")
            return "ok", math.nan
        if free < self.min_free_mb:
            return "full", free
        if free < 2.0 * self.min_free_mb:
            if not self._low_warned:
                self.log("warn", f"low disk: {free:.0f} MB free in {self.folder} (episodes are refused below "
                                 f"min_free_disk_mb={self.min_free_mb:g} MB)")
                self._low_warned = True
            return "low", free
        self._low_warned = False
        return "ok", free
