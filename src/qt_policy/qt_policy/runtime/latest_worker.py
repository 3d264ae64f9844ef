"""Run a function on its own thread for the newest item only: the work behind a ROS callback.

Why: in rclpy, everything a callback does holds up the executor, and rclpy's MultiThreadedExecutor
busy-waits while a mutually exclusive group is occupied (measured here: the policy node used a
whole core and stalled its frames for up to 1.6 s on a 2-core machine). So the node's callbacks
only hand the message to a `LatestWorker` and return. The worker processes the newest item; items
that arrived while it was busy are replaced, not queued (counted in `dropped`): a controller that
fell behind decides on the newest frame, never on a backlog of old ones.
"""
from __future__ import annotations

import threading
from typing import Any, Callable


class LatestWorker:
    """`put(item)` from any thread; `fn(item)` runs on the worker thread, newest item first."""

    def __init__(self, fn: Callable[[Any], None], name: str, on_error: Callable[[BaseException], None] | None = None):
        self.fn = fn
        self.on_error = on_error
        self.dropped = 0  # items replaced by a newer one before the worker took them
        self.processed = 0
        self._item: Any = None
        self._has_item = False
        self._stopping = False
        self._busy = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        with self._cv:
            if self._has_item:
                self.dropped += 1
            self._item, self._has_item = item, True
            self._cv.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until nothing is pending or running (tests, shutdown)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._has_item and not self._busy, timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._has_item or self._stopping)
                if self._stopping:
                    return
                item, self._item, self._has_item = self._item, None, False
                self._busy = True
            try:
                self.fn(item)
            except Exception as exc:  # noqa: BLE001 - reported; the worker goes on with the next item
                if self.on_error is not None:
                    self.on_error(exc)
            finally:
                with self._cv:
                    self._busy = False
                    self.processed += 1
                    self._cv.notify_all()
