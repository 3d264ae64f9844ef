"""Times of ROS messages: header stamps as numbers, when a message arrived, and whether a stamp is on
this node's clock.

A header stamp within STAMP_CLOCK_TOLERANCE_S of the arrival time is taken to be on our clock (then a
frame delayed in transport is judged stale by its age); one further off is another clock (sim time, a
camera's own) and only the arrival time counts."""
from __future__ import annotations

STAMP_CLOCK_TOLERANCE_S = 10.0


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time (rclpy or rosbags object) -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header_seconds(header) -> float | None:
    """A std_msgs/Header's stamp in seconds (None for anything else)."""
    stamp = getattr(header, "stamp", None)
    return None if stamp is None or not hasattr(stamp, "sec") else stamp_to_ns(stamp) * 1e-9


def on_our_clock(stamp_s: float, arrival_s: float) -> float | None:
    """`stamp_s` if it is on the receiver's clock (close to the arrival time), else None."""
    return stamp_s if abs(arrival_s - stamp_s) <= STAMP_CLOCK_TOLERANCE_S else None


def arrival_seconds(info, now_s: float) -> float:
    """When a message arrived (rmw's received timestamp from rclpy's message info), not when its callback
    got to run; `now_s` where the middleware gives none."""
    received = (info or {}).get("received_timestamp", 0) if isinstance(info, dict) else 0
    return received * 1e-9 if received > 0 else now_s
