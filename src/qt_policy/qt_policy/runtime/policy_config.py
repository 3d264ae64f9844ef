"""Configuration of the policy node: one dataclass, shared by ROS parameters, YAML files and tests.

`PolicyNodeConfig` is the single source of truth: the node declares one ROS parameter per field and
reads them back into it (nodes/parameters.py), and config/policy.yaml loads without ROS (runtime/parameters.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..paths import default_checkpoint


@dataclass
class PolicyNodeConfig:
    """Parameters of the qt_policy node. Empty lists mean "take it from the checkpoint"."""

    checkpoint: str = field(default_factory=default_checkpoint)  # model dir (config.json + model.safetensors) or an ensemble dir (research.ensemble)
    # torch: `checkpoint` is a training checkpoint or an ensemble; onnxruntime: an export (qt-export), acted
    # with through ONNX Runtime, without torch or the training code (docs/benchmarks.md: start-up, latency)
    backend: str = "torch"
    device: str = "cpu"  # torch device: cpu, cuda, cuda:0 (backend torch)
    torch_threads: int = 1  # intra-op threads (process-wide; ONNX Runtime's too); 1 keeps batch-1 latency steady on a busy CPU; 0 = the runtime's default
    # the robot: action dimensions -> commands, camera, state, safety limits (robot/embodiment.py);
    # '' = the checkpoint's own; a file that does not match the checkpoint's is refused at configure
    embodiment: str = ""
    stale_timeout_s: float = 0.5  # camera/state/pose older than this -> hold (zero twist)
    instruction_settle_s: float = 0.05  # after a new instruction, frames that arrived sooner are not used
    instruction_topic: str = "instruction"  # std_msgs/String, reliable + transient-local
    action_topic: str = "qt/action"  # qt_msgs/QAction
    enable_topic: str = "enable"  # std_msgs/Bool hold input (reliable + transient-local); also service ~/enable
    start_enabled: bool = True  # false: hold until enabled (a latched enable=False also holds a restarted node)
    q_floor: float = 0.0  # hold while the greedy Q (the model's success estimate) is below this; 0 = off
    # an operator takes over (the node is the mux: runtime/takeover.py): commands on these topics, of the
    # robot's own kinds (the embodiment's twist / gripper / joint dimensions), drive the robot instead of the
    # policy until none came for takeover_release_s (0 = no takeover); the hold input and the limits apply
    takeover_release_s: float = 0.5
    operator_twist_topic: str = "operator/twist"  # geometry_msgs/TwistStamped
    operator_gripper_topic: str = "operator/gripper"  # std_msgs/Float64
    operator_joint_topic: str = "operator/joints"  # trajectory_msgs/JointTrajectory (its first point)
    # ask for help (runtime/help_signal.py): std_msgs/Bool on help_topic, raised after help_ticks decisions in a
    # row whose success estimate (greedy Q, through help_calibration when given) is below help_threshold
    help_threshold: float = 0.0  # 0 = off (the shipped model's Q does not predict failures: results/q_calibration)
    help_ticks: int = 3
    help_topic: str = "help_needed"
    help_calibration: str = ""  # calibration_map.json of research/q_calibration.py; '' = the raw greedy Q
    action_low: list[float] = field(default_factory=list)  # narrower envelope than the embodiment's; [] = none
    action_high: list[float] = field(default_factory=list)
    dry_run: bool = False  # publish QAction only, never twist/gripper commands
    autostart: bool = True  # configure + activate at startup (no lifecycle manager needed)
    diagnostics_period_s: float = 1.0

    def validate(self) -> "PolicyNodeConfig":
        """Raise ValueError naming the bad field; checked on configure, before anything is loaded."""
        if not self.checkpoint.strip():
            raise ValueError("parameter 'checkpoint' is empty: set it to a model directory")
        if self.instruction_settle_s < 0:
            raise ValueError(f"parameter 'instruction_settle_s' must be >= 0, got {self.instruction_settle_s}")
        for name in ("stale_timeout_s", "diagnostics_period_s"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"parameter '{name}' must be > 0, got {getattr(self, name)}")
        if self.torch_threads < 0:
            raise ValueError(f"parameter 'torch_threads' must be >= 0, got {self.torch_threads}")
        if not 0.0 <= self.help_threshold < 1.0 or self.help_ticks < 1:
            raise ValueError(f"parameter 'help_threshold' must lie in [0, 1) and 'help_ticks' be >= 1, got "
                             f"{self.help_threshold}, {self.help_ticks}")
        if self.takeover_release_s < 0:
            raise ValueError(f"parameter 'takeover_release_s' must be >= 0 (0 = off), got {self.takeover_release_s}")
        if not 0.0 <= self.q_floor < 1.0:
            raise ValueError(f"parameter 'q_floor' must lie in [0, 1), got {self.q_floor}")
        if len(self.action_low) != len(self.action_high):
            raise ValueError(f"action_low has {len(self.action_low)} values, action_high {len(self.action_high)}")
        if any(lo > hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError(f"action_low {self.action_low} exceeds action_high {self.action_high}")
        if self.backend not in ("torch", "onnxruntime"):
            raise ValueError(f"parameter 'backend' must be 'torch' or 'onnxruntime', got {self.backend!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise ValueError(f"parameter 'device' must be cpu, cuda or cuda:N, got {self.device!r}")
        return self
