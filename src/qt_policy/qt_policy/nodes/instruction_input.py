"""Instructions in and out, the same way in every node (the rule: runtime/instruction_gate.py).

`subscribe_instructions` makes the two subscriptions every node needs on the instruction topic:
a volatile one, which matches every publisher (`ros2 topic pub` publishes volatile by default), and a
transient-local one, which also receives the instruction latched before this node started; plus the
relay between the nodes (`relay_topic`), for a client that left before every node matched it. All of
them feed one `InstructionGate`, so each instruction is acted on once.

`InstructionSender` is how the project's own clients (demo, evaluation through ROS, scripted
teleoperator, tests) send instructions: latched, from a new publisher per episode, so that the same text
twice is two episodes (one publisher repeating itself is one instruction).
"""
from __future__ import annotations

from typing import Callable

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import String

from ..codec.stamps import stamp_to_ns
from ..runtime.instruction_gate import Instruction, InstructionGate
from .qos import LATCHED, RELIABLE_10


def _quiet(_event) -> None:
    """A volatile publisher (ros2 topic pub) cannot serve the transient-local subscription; the volatile
    one receives it, so the middleware's 'incompatible QoS' warning would only mislead."""


def subscribe_both_durabilities(node, msg_type, topic: str, callback, *, raw: bool = False) -> list:
    """A volatile and a transient-local subscription to `topic`, both calling `callback(msg, info)`."""
    subs = []
    for qos in (RELIABLE_10, LATCHED):
        events = SubscriptionEventCallbacks(incompatible_qos=_quiet) if qos is LATCHED else None
        subs.append(node.create_subscription(msg_type, topic, callback, qos, raw=raw, event_callbacks=events))
    return subs


def relay_topic(instruction_topic: str) -> str:
    """Where the nodes pass an instruction on to each other: `<instruction_topic>/relayed`."""
    return instruction_topic.rstrip('/') + '/relayed'


def subscribe_instructions(node, topic: str, on_instruction: Callable[[Instruction, bytes], None]) -> list:
    """Call `on_instruction(instruction, raw_cdr)` once per new instruction on `topic` (see the module doc).

    Each instruction this node acts on is also republished, latched, on `relay_topic(topic)`
    (qt_msgs/RelayedInstruction: the client's publisher, sample and send time), and this node listens
    there too: `ros2 topic pub --once` leaves as soon as one node matched, and the others still hear it
    through that one; a node that starts later hears the current instruction from every node's relay.
    A sample that cannot be read is logged and ignored. Returns the entities made."""
    from qt_msgs.msg import RelayedInstruction

    gate = InstructionGate()
    relay_pub = node.create_publisher(RelayedInstruction, relay_topic(topic), LATCHED)

    def accept(text, sent_ns, gid, sequence, raw):
        instruction = gate.offer(text, node.get_clock().now().nanoseconds, sent_ns, gid, sequence)
        if instruction is None:
            if gate.last_reason == 'stale':  # e.g. a client whose clock is behind: say so, it looks like a lost message
                node.get_logger().warning(f'ignoring instruction {text[:200]!r}: sent before the instruction in force')
            return
        if gid is not None:  # what this node acts on is what its latched relay says, for nodes that start later
            msg = RelayedInstruction(text=text, publisher_gid=list(gid), sequence=-1 if sequence is None else sequence)
            msg.sent.sec, msg.sent.nanosec = divmod(instruction.sent_ns, 1_000_000_000)
            relay_pub.publish(msg)
        on_instruction(instruction, raw)

    def from_client(raw: bytes, info: dict) -> None:
        try:
            text = deserialize_message(raw, String).data
        except Exception as exc:  # noqa: BLE001 - a malformed sample must not kill the node
            node.get_logger().warning(f'ignoring an unreadable instruction ({len(raw)} bytes): {exc}')
            return
        gid = (info.get('publisher_gid') or {}).get('data')
        accept(text, info.get('source_timestamp'), None if gid is None else bytes(gid),
               info.get('publication_sequence_number'), raw)

    def from_relay(msg, _info) -> None:
        sequence = None if msg.sequence < 0 else int(msg.sequence)
        accept(msg.text, stamp_to_ns(msg.sent), bytes(msg.publisher_gid), sequence,
               serialize_message(String(data=msg.text)))

    entities = subscribe_both_durabilities(node, String, topic, from_client, raw=True)
    entities.append(node.create_subscription(RelayedInstruction, relay_topic(topic), from_relay, LATCHED))
    return entities + [relay_pub]


class InstructionSender:
    """Publishes instructions latched, each from a new publisher (the previous one is destroyed), so that
    every call starts an episode in every node, including nodes that start later."""

    def __init__(self, node, topic: str = '/instruction'):
        self.node, self.topic, self._pub = node, topic, None

    def send(self, text: str) -> None:
        if self._pub is not None:
            self.node.destroy_publisher(self._pub)
        self._pub = self.node.create_publisher(String, self.topic, LATCHED)
        self._pub.publish(String(data=text))
