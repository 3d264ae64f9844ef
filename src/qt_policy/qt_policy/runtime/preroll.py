"""The recorder's pre-roll: every message heard in the last `preroll_s`, recording or not.

Over DDS the arm and the policy may hear an instruction before the recorder does; the episode starts
when the instruction was sent, so what was heard since then is written first, as if heard then."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Heard:
    """One message as it arrived."""

    log_ns: int  # when the recorder received it
    stamp_ns: int  # its header.stamp (a command: log_ns): which episode it belongs to
    kind: str  # 'record' (frame, state, action) | 'command' (a teleoperator's, already in the command window)
    topic: str
    msgtype: str
    raw: bytes


class PreRoll:
    """What arrived in the last `preroll_s` seconds (<= 0: nothing is kept)."""

    def __init__(self, preroll_s: float):
        self.span_ns = int(max(0.0, float(preroll_s)) * 1e9)
        self._heard: deque[Heard] = deque()

    def remember(self, heard: Heard) -> None:
        """Keep `heard`; forget what is older than the span."""
        if self.span_ns <= 0:
            return
        self._heard.append(heard)
        horizon = heard.log_ns - self.span_ns
        while self._heard and self._heard[0].log_ns < horizon:
            self._heard.popleft()

    def since(self, start_ns: int) -> list[Heard]:
        """The kept messages stamped from `start_ns` on (they belong to an episode starting then)."""
        return [h for h in self._heard if h.stamp_ns >= start_ns]

    def clear(self) -> None:
        self._heard.clear()
