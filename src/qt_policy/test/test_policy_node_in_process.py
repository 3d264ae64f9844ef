"""The policy node in this process, without a graph spinning: parameters round-trip through typed ROS
parameters, the lifecycle transitions (a bad checkpoint fails configure, the node stays up), and a
robot state that names other joints is dropped saying which names the embodiment wants."""
import numpy as np
import rclpy

SMALL = dict(image_size=32, frames=2, conv_channels=[8, 16], tokens_per_frame=4, d_model=32,
             num_layers=1, num_heads=2, text_dim=384)


def test_parameters_round_trip_without_a_graph():
    """Dataclass -> typed ROS parameters -> dataclass, with overrides; a wrong type is a clear error."""
    from rclpy.node import Node

    from qt_policy.nodes.parameters import declare_parameters, read_parameters
    from qt_policy.runtime.policy_config import PolicyNodeConfig

    context = rclpy.context.Context()
    rclpy.init(context=context, args=['--ros-args', '-p', 'stale_timeout_s:=0.3', '-p', 'action_low:=[-0.5, -0.5]',
                                      '-p', 'embodiment:=robot.yaml', '-p', 'dry_run:=true', '-p', 'action_high:=[1, 2]'])
    try:
        node = Node('param_test', context=context)
        errors = declare_parameters(node, PolicyNodeConfig)
        assert len(errors) == 1 and "'action_high' must be list[float] (write [1.0, -1.0]" in errors[0]
        cfg = read_parameters(node, PolicyNodeConfig)
        assert cfg.stale_timeout_s == 0.3 and cfg.dry_run is True
        assert cfg.action_low == [-0.5, -0.5] and cfg.embodiment == 'robot.yaml'
        assert cfg.action_high == [] and cfg.q_floor == 0.0  # refused override / default
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_lifecycle_transitions_in_process(tmp_path, monkeypatch):
    """configure -> activate -> deactivate -> cleanup -> configure, with no graph spinning; a bad
    checkpoint fails configure (the node stays up, unconfigured)."""
    import torch
    from lifecycle_msgs.msg import State
    from rclpy.lifecycle import TransitionCallbackReturn

    import qt_policy.core.text as text
    from qt_policy.core.checkpoint import save_checkpoint
    from qt_policy.core.config import ModelConfig
    from qt_policy.core.model import QTransformer
    from qt_policy.nodes.policy_node import PolicyNode

    monkeypatch.setattr(text, 'shared_encoder', lambda: (lambda s: np.ones(384, np.float32) / np.sqrt(384)))
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / 'model', QTransformer(ModelConfig(**SMALL)))
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        bad = PolicyNode(context=context, cli_args=['--ros-args', '-p', f'checkpoint:={tmp_path}/missing'])
        assert bad.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert bad.lifecycle.startswith('configure failed: checkpoint directory')
        bad.destroy_node()

        node = PolicyNode(context=context, cli_args=['--ros-args', '-p', f'checkpoint:={ckpt}', '-r', '__node:=lc'])
        ok = TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == ok and node.runner is not None
        assert node.trigger_activate() == ok and node._timer is not None
        assert node.trigger_deactivate() == ok and node._timer is None
        assert node.trigger_cleanup() == ok and node.runner is None and not node.entities
        assert node.trigger_configure() == ok
        assert node.trigger_shutdown() == ok
        assert node._state_machine.current_state[0] == State.PRIMARY_STATE_FINALIZED
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_a_state_without_the_embodiments_joint_names_is_dropped_saying_which_names(tmp_path, monkeypatch):
    """A JointState naming `gripper` instead of `gripper_opening`: no state, and one warning that names the
    joints the model expects (the model card names them too)."""
    import torch
    from sensor_msgs.msg import JointState

    import qt_policy.core.text as text
    from qt_policy.core.checkpoint import save_checkpoint
    from qt_policy.core.config import ModelConfig
    from qt_policy.core.model import QTransformer
    from qt_policy.nodes.policy_node import PolicyNode

    monkeypatch.setattr(text, 'shared_encoder', lambda: (lambda s: np.ones(384, np.float32) / np.sqrt(384)))
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / 'model', QTransformer(ModelConfig(**{**SMALL, 'state_dim': 4})))
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        node = PolicyNode(context=context, cli_args=['--ros-args', '-p', f'checkpoint:={ckpt}', '-r', '__node:=st'])
        from rclpy.lifecycle import TransitionCallbackReturn
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        warnings = []

        class Logger:
            def warning(self, text):
                warnings.append(text)

            info = error = debug = warning

        monkeypatch.setattr(node, 'get_logger', lambda: Logger())
        wrong = JointState(name=['hand_x', 'hand_y', 'hand_z', 'gripper'], position=[0.1, 0.2, 0.3, 0.4])
        node._on_state(wrong, {})
        node._on_state(wrong, {})  # the same problem again: no second line
        assert len(warnings) == 1 and "lacks joints ['gripper_opening']" in warnings[0]
        assert "['hand_x', 'hand_y', 'hand_z', 'gripper_opening']" in warnings[0] and 'position' in warnings[0]
        assert node.runner._state is None
        right = JointState(name=['gripper_opening', 'hand_z', 'hand_y', 'hand_x'], position=[0.4, 0.3, 0.2, 0.1])
        node._on_state(right, {})
        assert len(warnings) == 1
        np.testing.assert_allclose(node.runner._state, [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
