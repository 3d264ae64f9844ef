"""The policy node's status without ROS: a stop goes out once per new hold, the log says when acting
resumes, the rate and the throttled warning for malformed frames."""
from types import SimpleNamespace

from qt_policy.runtime.policy_status import PolicyStatus


def action(q=0.7, latency=3.0, limited=()):
    return SimpleNamespace(q_value=q, latency_ms=latency, limited=list(limited))


def test_a_stop_goes_out_once_per_new_hold_and_acting_says_what_it_ended():
    st = PolicyStatus()
    assert st.state("inactive") == ("warn", "inactive")
    assert st.held("activated", "activated") is True
    assert st.acted(action(), now=0.0) == "activated"  # acting again: the hold it ended, for the log
    assert st.acted(action(), now=0.1) is None and st.hold is None
    assert st.held("stale", "camera stale for 0.5 s") is True  # first stale tick: stop
    assert st.held("stale", "camera stale for 0.6 s") is False  # same hold: no second stop
    assert st.held("disabled", "disabled") is True  # another reason: a stop and a line
    assert st.state("active") == ("warn", "holding: disabled")
    assert st.state("configure failed") == ("error", "configure failed")


def test_rate_latency_limits_and_q_are_what_was_published():
    st = PolicyStatus()
    for k in range(11):
        st.acted(action(q=0.1 * k, latency=float(k), limited=["x"] if k % 2 else []), now=100.0 + 0.1 * k)
    assert abs(st.rate_hz(now=101.0) - 10.0) < 1e-9
    assert st.rate_hz(now=200.0) == 0.0  # nothing in the last 5 s
    d = st.diagnostics("active")
    assert d["decode_latency_p50_ms"] == "5.00" and d["safety_limits_acted"] == "x=5"
    assert d["last_q"] == "1.0000" and d["actions_published"] == "11" and d["state"] == "acting"


def test_malformed_frames_are_counted_always_and_logged_at_most_once_a_period():
    st = PolicyStatus()
    lines = [st.malformed_image(ValueError(f"bad {k}"), now=float(k), log_period_s=10.0) for k in range(25)]
    logged = [(k, line) for k, line in enumerate(lines) if line]
    assert [k for k, _ in logged] == [0, 10, 20]
    assert "1 since last warning, 1 total" in logged[0][1] and "10 since last warning, 11 total" in logged[1][1]
    assert st.malformed_images == 25 and st.last_image_error == "bad 24"
