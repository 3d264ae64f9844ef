"""The one main loop of every node: spin until SIGINT/SIGTERM, then let the node finish its work.

rclpy's own signal handlers are off so that a signal ends the loop instead of raising inside a
callback: the recorder must still finalize its open bag, the policy must still send a zero twist.
An exception that escapes a callback does not end the loop either: it goes to the node's
``callback_faults`` (logs.CallbackFaults: logged, counted for /diagnostics) and the node keeps serving.
"""
from __future__ import annotations

import signal
from typing import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from .logs import CallbackFaults


def spin_until_signal(name: str, make_node: Callable[[], object], args=None,
                      on_start: Callable[[object], None] | None = None,
                      on_stop: Callable[[object, SingleThreadedExecutor], int] | None = None) -> int:
    """Exit status: 2 when the node cannot be built (bad parameters: one fatal line), else on_stop's (0)."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    node = None
    executor = SingleThreadedExecutor()
    rc = 0
    try:
        try:
            node = make_node()
        except Exception as exc:  # noqa: BLE001
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            rclpy.logging.get_logger(name).fatal(f'cannot start: {reason}')
            return 2
        executor.add_node(node)
        if on_start is not None:
            on_start(node)
        faults = getattr(node, 'callback_faults', None) or CallbackFaults(node.get_logger())
        while not stop and rclpy.ok() and not getattr(node, 'finished', False):  # a node may end itself
            try:
                executor.spin_once(timeout_sec=0.1)
            except Exception as exc:  # noqa: BLE001 - a failed callback must not stop the robot's node
                faults.report(exc)
        if on_stop is not None:
            rc = on_stop(node, executor) or 0
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return rc
