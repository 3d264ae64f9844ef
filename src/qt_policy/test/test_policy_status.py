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
    st = PolicyStatus(log_period_s=10.0)
    lines = [st.malformed_image(ValueError(f"bad {k}"), now=float(k)) for k in range(25)]
    logged = [(k, line) for k, line in enumerate(lines) if line]
    assert [k for k, _ in logged] == [0, 10, 20]
    assert "1 since last warning, 1 total" in logged[0][1] and "10 since last warning, 11 total" in logged[1][1]
    assert st.malformed_images == 25 and st.last_image_error == "bad 24"


def test_every_complaint_is_counted_and_logged_at_most_once_a_period_per_kind():
    from qt_policy.runtime.throttle import Throttle

    now = {"t": 0.0}
    th = Throttle(5.0, clock=lambda: now["t"])
    due = []
    for t, kind in [(0, "a"), (1, "a"), (2, "b"), (4.9, "a"), (5.0, "a"), (6, "b"), (7.5, "b")]:
        now["t"] = t
        due.append(th.hit(kind))
    assert due == [1, None, 1, None, 3, None, 2]  # the first of each kind at once, then how many since
    assert th.counts == {"a": 4, "b": 3} and th.total == 7


def test_callback_faults_log_the_first_of_each_kind_with_its_traceback():
    from qt_policy.nodes.logs import CallbackFaults

    lines = []
    logger = SimpleNamespace(error=lines.append)
    now = {"t": 0.0}
    faults = CallbackFaults(logger, period_s=10.0, clock=lambda: now["t"])
    for t, exc in [(0, ValueError("x")), (1, ValueError("y")), (2, KeyError("k")), (12, ValueError("z"))]:
        now["t"] = t
        try:
            raise exc
        except Exception as caught:  # noqa: BLE001 - a traceback to report
            faults.report(caught)
    assert len(lines) == 3 and "Traceback" in lines[0] and "Traceback" not in lines[2]
    assert "3 ValueError so far" in lines[2] and faults.total == 4 and faults.last == "ValueError: z"
