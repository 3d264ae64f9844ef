"""A write-only file whose bytes reach the disk from a worker thread.

Why: the recorder writes from ROS callbacks, and a slow or failing disk (an SD card, NFS, a full file
system) must not stall the node's executor. `BackgroundFile` keeps the file interface the MCAP writer
uses (``write``, ``tell``, ``flush``, ``close``): ``write`` only appends to memory, ``flush`` hands
the bytes to the worker, which writes and flushes them to the OS in order. An error of the worker
(ENOSPC, EIO, ...) is kept and raised by the next ``write``/``flush``/``close`` of the caller, so the
recorder learns of it on its own thread. What the worker wrote before the error is a prefix of the
stream, which is what makes a truncated MCAP file salvageable (see :mod:`.bag_salvage`).

Memory is bounded: ``flush`` waits while more than ``max_pending_bytes`` are queued and raises
``TimeoutError`` after ``write_timeout_s`` (the disk cannot keep up), so a stuck disk ends the episode
instead of growing the process without limit.
"""
from __future__ import annotations

import collections
import threading
from typing import BinaryIO


class BackgroundFile:
    """Wraps an open binary file; see the module docstring. Not for reading."""

    def __init__(self, raw: BinaryIO, max_pending_bytes: int = 64 * 2**20, write_timeout_s: float = 10.0,
                 name: str = "bag-writer"):
        self._raw = raw
        self._pos = raw.tell()
        self._buf = bytearray()
        self._queue: collections.deque[bytes] = collections.deque()
        self._pending = 0  # bytes queued, not yet written by the worker
        self._cv = threading.Condition()
        self._error: BaseException | None = None
        self._closing = False
        self.max_pending_bytes = int(max_pending_bytes)
        self.write_timeout_s = float(write_timeout_s)
        self.bytes_written = 0  # bytes the worker handed to the OS
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ----- caller side ---------------------------------------------------------------------------
    @property
    def error(self) -> BaseException | None:
        """The worker's first error, if any (the file accepts nothing after it)."""
        return self._error

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data) -> int:
        self._raise_error()
        n = len(data)
        self._buf += data
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        """Queue what was written so far for the worker (waits only while the queue is over its bound)."""
        self._raise_error()
        if not self._buf:
            return
        data, self._buf = bytes(self._buf), bytearray()
        with self._cv:
            if not self._cv.wait_for(lambda: self._pending <= self.max_pending_bytes or self._error is not None,
                                     timeout=self.write_timeout_s):
                self._error = TimeoutError(
                    f"disk too slow: {self._pending} bytes not written after {self.write_timeout_s:g} s")
            self._raise_error()
            self._queue.append(data)
            self._pending += len(data)
            self._cv.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the worker wrote everything queued (or failed); True when the queue is empty."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._queue or self._error is not None, timeout=timeout)

    def close(self) -> None:
        """Flush, wait for the worker, close the file; raises the worker's error, if any."""
        try:
            if self._error is None:
                self.flush()
            self._stop(self.write_timeout_s)
            self._raise_error()
        finally:
            self._raw.close()

    def abort(self) -> None:
        """Close without raising: what is queued is still written (best effort, bounded wait)."""
        try:
            if self._error is None:
                self.flush()
        except BaseException:  # noqa: BLE001
            pass
        self._stop(self.write_timeout_s)
        try:
            self._raw.close()
        except BaseException:  # noqa: BLE001 (a full disk fails the close's flush too)
            pass

    def _stop(self, timeout: float) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)

    # ----- worker side ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return  # closing and drained
                data = self._queue[0]
            try:
                self._raw.write(data)
                self._raw.flush()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                with self._cv:
                    self._error = exc
                    self._queue.clear()
                    self._pending = 0
                    self._cv.notify_all()
                return
            with self._cv:
                self._queue.popleft()
                self._pending -= len(data)
                self.bytes_written += len(data)
                self._cv.notify_all()
