"""Which instruction messages start an episode: one rule for every node, without ROS.

An instruction reaches a node from any client: `ros2 topic pub` (volatile by default, and with
``-r``/``-t`` the same text again every second), a latched (transient-local) publisher, or a latched
message that was sent before the node started. Each node therefore subscribes twice (a volatile
subscription matches every publisher; a transient-local one also receives what was latched before it
started: nodes/instruction_input.py), and the same sample can arrive on both. The rule:

* one sample is one instruction: a second delivery of the same publisher's sequence number is dropped;
* an instruction is a state, as a latched topic is: the same text again *from the same publisher* is
  that publisher's instruction still in force, not a new episode (``ros2 topic pub -r 1`` and
  ``-t 3`` start one episode). A new episode with the same text needs a new publisher (a new
  ``ros2 topic pub``; the project's senders make one per episode: nodes/instruction_input.py) or a
  different text in between (the empty instruction "stop" counts);
* an instruction sent before the one in force is stale (a node that starts late may hear the latched
  instructions of several publishers, in any order): it is dropped;
* anything else starts an episode (the empty text: stops).

Every node applies the same rule to the same samples, so the arm, the policy and the recorder agree on
which messages are episodes.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

#: publishers remembered (the oldest is forgotten first); more than a robot's graph ever has
MAX_PUBLISHERS = 256


@dataclass(frozen=True)
class Instruction:
    """One accepted instruction: its text (whitespace collapsed) and when it was sent and received."""

    text: str
    sent_ns: int  # the publisher's source timestamp (DDS), or received_ns when the middleware gives none
    received_ns: int


def normalize(text: str) -> str:
    """The instruction as every node compares and records it: whitespace runs collapsed."""
    return " ".join(str(text).split())


class InstructionGate:
    """Decides, per received sample, whether it is a new instruction (see the module docstring)."""

    def __init__(self):
        self._last: OrderedDict[bytes, tuple[str, int | None]] = OrderedDict()  # publisher -> (text, sequence)
        self.repeats = 0  # same text from the same publisher: ignored
        self.duplicates = 0  # the same sample delivered twice (two subscriptions, the relay): ignored
        self.stale = 0  # sent before the instruction in force: ignored
        self._current_sent_ns = -1
        self.last_reason = ""  # why the last offer returned None: duplicate | repeat | stale

    def offer(self, text: str, received_ns: int, sent_ns: int | None = None, publisher: bytes | None = None,
              sequence: int | None = None) -> Instruction | None:
        """The Instruction to act on, or None for a duplicate delivery or a repeat.

        `publisher` (the publisher's gid) and `sequence` (its publication sequence number) come from the
        middleware's message info; without a publisher id every message is an instruction, as before.
        """
        text = normalize(text)
        received_ns = int(received_ns)
        sent = received_ns if not sent_ns else int(sent_ns)
        self.last_reason = ""
        if sent < self._current_sent_ns:
            self.stale += 1
            self.last_reason = "stale"
            return None
        if publisher is not None:
            key = bytes(publisher)
            seen = self._last.get(key)
            if seen is not None:
                if sequence is not None and seen[1] is not None and sequence <= seen[1]:
                    self.duplicates += 1
                    self.last_reason = "duplicate"
                    return None
                self._last[key] = (seen[0], sequence)
                self._last.move_to_end(key)
                if seen[0] == text:
                    self.repeats += 1
                    self.last_reason = "repeat"
                    return None
            self._last[key] = (text, sequence)
            self._last.move_to_end(key)
            while len(self._last) > MAX_PUBLISHERS:
                self._last.popitem(last=False)
        self._current_sent_ns = sent
        return Instruction(text, sent, received_ns)
