"""What the policy node reports, kept without ROS: whether it acts or holds (and why), the decision
latency, the achieved control rate, the last Q, which safety limits acted, dropped inputs.

The node's /diagnostics publish `diagnostics()`; the hold transitions decide when the one stop command
goes out (a new hold) and when a line is logged (a change), so a robot that loses its camera stops
once and says so once."""
from __future__ import annotations

import statistics
import time
from collections import deque

from .throttle import Throttle


class PolicyStatus:
    def __init__(self, log_period_s: float = 10.0):
        self.hold: str | None = "inactive"  # hold kind of the last decision; None while acting
        self.hold_reason = "inactive"
        self.latencies_ms: deque[float] = deque(maxlen=200)
        self.action_times: deque[float] = deque(maxlen=1000)
        self.last_q = float("nan")
        self.actions_published = 0
        self.limits_acted: dict[str, int] = {}
        self._malformed = Throttle(log_period_s)  # malformed camera images: counted, logged at most once a period
        self.last_image_error = ""
        self.last_state_error = ""

    def acted(self, action, now: float | None = None) -> str | None:
        """Count a published action; returns the hold it ends (for the log), if any."""
        ended = self.hold_reason if self.hold is not None else None
        self.hold, self.hold_reason = None, ""
        self.latencies_ms.append(action.latency_ms)
        self.action_times.append(time.monotonic() if now is None else now)
        self.last_q = action.q_value
        self.actions_published += 1
        for name in action.limited:
            self.limits_acted[name] = self.limits_acted.get(name, 0) + 1
        return ended

    def held(self, kind: str, reason: str) -> bool:
        """Note a hold; True when it is a new kind of hold (the stop command goes out, a line is logged)."""
        new = kind != self.hold
        self.hold, self.hold_reason = kind, reason
        return new

    @property
    def malformed_images(self) -> int:
        return self._malformed.total

    def malformed_image(self, exc: Exception, now: float) -> str | None:
        """Count a dropped camera image; the warning to log, at most one every log period (runtime/throttle.py)."""
        self.last_image_error = str(exc)
        since = self._malformed.hit(now=now)
        if since is None:
            return None
        return f"dropping malformed camera image(s) ({since} since last warning, {self.malformed_images} total): {exc}"

    def rate_hz(self, now: float | None = None, window_s: float = 5.0) -> float:
        """Actions per second over the last `window_s`."""
        now = time.monotonic() if now is None else now
        times = [t for t in self.action_times if now - t <= window_s]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else 0.0

    def state(self, lifecycle: str) -> tuple[str, str]:
        """(level 'ok' | 'warn' | 'error', state in words)."""
        if lifecycle != "active":
            return ("error" if "failed" in lifecycle else "warn"), lifecycle
        if self.hold is None:
            return "ok", "acting"
        return "warn", f"holding: {self.hold_reason}"

    def diagnostics(self, lifecycle: str) -> dict[str, str]:
        """The key/values the node publishes on /diagnostics (besides its lifecycle state, its runner and config)."""
        return {
            "state": self.state(lifecycle)[1],
            "decode_latency_p50_ms": f"{statistics.median(self.latencies_ms):.2f}" if self.latencies_ms else "nan",
            "achieved_rate_hz": f"{self.rate_hz():.2f}",
            "safety_limits_acted": " ".join(f"{k}={v}" for k, v in sorted(self.limits_acted.items())),
            "last_q": f"{self.last_q:.4f}",
            "actions_published": str(self.actions_published),
            "malformed_images": str(self.malformed_images),
            "last_image_error": self.last_image_error,
            "last_state_error": self.last_state_error,
        }
