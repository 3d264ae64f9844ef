"""The one rule for which instruction messages start an episode (runtime/instruction_gate.py)."""
from qt_policy.runtime.instruction_gate import MAX_PUBLISHERS, InstructionGate

A, B = b"publisher-a", b"publisher-b"


def texts(gate, samples):
    """samples: (text, publisher, sequence); returns the accepted texts."""
    out = []
    for k, (text, pub, seq) in enumerate(samples):
        got = gate.offer(text, received_ns=1000 + k, sent_ns=900 + k, publisher=pub, sequence=seq)
        if got is not None:
            out.append(got.text)
    return out


def test_one_sample_on_two_subscriptions_is_one_instruction():
    gate = InstructionGate()
    assert texts(gate, [("open the drawer", A, 1), ("open the drawer", A, 1)]) == ["open the drawer"]
    assert gate.duplicates == 1


def test_ros2_topic_pub_repeating_itself_is_one_episode():
    # `ros2 topic pub -r 1` / `-t 3`: one publisher, the same text, new sequence numbers
    gate = InstructionGate()
    assert texts(gate, [("open the drawer", A, k) for k in range(1, 4)]) == ["open the drawer"]
    assert gate.repeats == 2


def test_a_new_publisher_or_a_new_text_is_a_new_episode():
    gate = InstructionGate()
    samples = [("open the drawer", A, 1), ("open the drawer", B, 1),  # a second `ros2 topic pub --once`
               ("close the drawer", B, 2), ("close the drawer", B, 3),  # a new text, then its repeat
               ("", A, 2), ("open the drawer", A, 3)]  # stop, then the same text again
    assert texts(gate, samples) == ["open the drawer", "open the drawer", "close the drawer", "", "open the drawer"]


def test_an_older_sample_delivered_late_is_dropped():
    # the transient-local subscription may hand over sample 1 after the volatile one handed over sample 2
    gate = InstructionGate()
    assert texts(gate, [("close the drawer", A, 2), ("open the drawer", A, 1)]) == ["close the drawer"]


def test_the_text_is_normalized_and_times_kept():
    gate = InstructionGate()
    got = gate.offer("  open   the\tdrawer ", received_ns=2_000, sent_ns=1_500, publisher=A, sequence=1)
    assert (got.text, got.sent_ns, got.received_ns) == ("open the drawer", 1_500, 2_000)
    assert gate.offer("open the drawer", received_ns=3_000, sent_ns=2_500, publisher=A, sequence=2) is None
    # no source timestamp from the middleware: the receipt time stands in
    assert gate.offer("x", received_ns=4_000, sent_ns=0, publisher=B, sequence=1).sent_ns == 4_000


def test_without_a_publisher_id_every_message_counts():
    gate = InstructionGate()
    assert texts(gate, [("open the drawer", None, None)] * 2) == ["open the drawer"] * 2


def test_memory_is_bounded_and_the_oldest_publisher_forgotten():
    gate = InstructionGate()
    for k in range(MAX_PUBLISHERS + 1):
        gate.offer("go", received_ns=k, publisher=b"p%d" % k, sequence=1)
    # p0 was forgotten: its repeat counts again; the newest one's repeat does not
    assert gate.offer("go", received_ns=10**6, publisher=b"p0", sequence=2) is not None
    assert gate.offer("go", received_ns=10**6, publisher=b"p%d" % MAX_PUBLISHERS, sequence=2) is None


def test_an_instruction_sent_before_the_one_in_force_is_stale():
    # a node that starts late hears the latched instructions of several publishers, in any order
    gate = InstructionGate()
    assert gate.offer("open the window", received_ns=5_000, sent_ns=3_000, publisher=A, sequence=4) is not None
    assert gate.offer("close the drawer", received_ns=5_001, sent_ns=2_000, publisher=B, sequence=9) is None
    assert (gate.stale, gate.last_reason) == (1, "stale")
    assert gate.offer("open the window", received_ns=5_002, sent_ns=3_000, publisher=A, sequence=4) is None
    assert gate.last_reason == "duplicate"  # the same sample through another node's relay
