"""What the project's lifecycle nodes share (the policy and the recorder), as ros2/demos' lifecycle
talker does it: parameters declared from the node's config dataclass at construction, the work made at
configure (publishers, subscriptions, services: `self.entities`) and destroyed at cleanup, /diagnostics
in every state (a failed configure is how an operator sees a bad parameter), callback faults counted,
and `main` that configures and activates at start-up when the config says `autostart`."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from .logs import CallbackFaults
from .parameters import declare_parameters, read_parameters
from .spin import spin_until_signal

_LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}


class ManagedNode(LifecycleNode):
    """A lifecycle node configured by the dataclass `config_cls` (its fields are the parameters)."""

    role = "node"  # the /diagnostics status is named '<node>: <role>'

    def __init__(self, name: str, config_cls, **kwargs):
        super().__init__(name, **kwargs)
        self.config_cls = config_cls
        self._param_errors = declare_parameters(self, config_cls)
        self.config = read_parameters(self, config_cls)
        self.lifecycle = "unconfigured"  # or 'inactive', 'active', 'finalized', 'configure failed: why'
        self.entities: list = []  # what configure made, destroyed at cleanup
        self.callback_faults = CallbackFaults(self.get_logger())
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(max(self.config.diagnostics_period_s, 0.05), self._publish_diagnostics)

    def read_config(self):
        """The validated config from the parameters (ValueError naming every bad one)."""
        if self._param_errors:
            raise ValueError("; ".join(self._param_errors))
        return read_parameters(self, self.config_cls).validate()

    def configure_failed(self, exc: BaseException) -> TransitionCallbackReturn:
        """Report, stay unconfigured: an operator fixes the parameter and configures again."""
        self.lifecycle = f"configure failed: {exc}"
        self.get_logger().error(f"configure failed: {exc}")
        return TransitionCallbackReturn.FAILURE

    def destroy_entities(self) -> None:
        for entity in self.entities:
            if hasattr(entity, "publish"):
                self.destroy_lifecycle_publisher(entity)
            elif hasattr(entity, "srv_type"):
                self.destroy_service(entity)
            elif hasattr(entity, "timer_period_ns"):
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self.entities = []

    def diagnostics(self) -> tuple[str, str, dict[str, str]]:
        """(level 'ok' | 'warn' | 'error', state in words, key/values) for /diagnostics."""
        raise NotImplementedError

    def _publish_diagnostics(self) -> None:
        level, state, values = self.diagnostics()
        values = {**values, "lifecycle": self.lifecycle, "callback_failures": str(self.callback_faults.total)}
        name = self.get_fully_qualified_name()
        status = DiagnosticStatus(level=_LEVELS[level], name=f"{name}: {self.role}", hardware_id=name, message=state,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def start(node: ManagedNode) -> None:
    """Configure and activate at start-up when the parameters say `autostart` (no lifecycle manager needed)."""
    if node.config.autostart and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
        node.trigger_activate()


def run(name: str, make_node, args=None, on_stop=None) -> int:
    """Spin the node until SIGINT/SIGTERM (spin.py); `on_stop(node, executor)` then finishes its work."""
    return spin_until_signal(name, make_node, args, on_start=start, on_stop=on_stop)
