"""sim_arm: a simulated arm as a ROS 2 robot with cameras: the Meta-World Sawyer (`sim.arm.SimArm`,
parameter simulator: metaworld) or robosuite's Panda (`sim.panda.arm.PandaArm`, simulator: robosuite,
7-D end-effector control and two cameras, config/embodiments/robosuite_panda.yaml).

* An instruction (std_msgs/String from any reliable publisher, latched or not; one publisher repeating
  the same text is one episode: nodes/instruction_input.py) starts an episode: the arm resets to
  the task whose instruction it is (`sim.tasks.task_for_instruction`; or to the `task` parameter when
  set) with placement seed ``seed + k`` for the k-th episode *of that task* (k = 0, 1, ...; the
  default seed 1000 keeps these placements apart from the training seeds 0..999), as the evaluation
  CLI seeds each task (`tools.evaluate --seed-start`), so both paths can run the same placements. An unknown instruction: one error line
  listing the known instructions, the arm stays idle.
* The reset observation is published at once, and the timer starts its period again from the reset:
  a decision made on that frame is applied at the next tick, as in the data (action t from
  observation t, applied at step t+1), whatever the timers' phases were before.
* At ``rate_hz`` a timer applies the latest qt_msgs/QAction received since the last tick (``values``,
  clipped to [-1, 1] by the arm) -- no new action, no motion -- then publishes the cameras
  (sensor_msgs/Image rgb8, all with header.stamp = now: the first on ``image_topic``, the others on
  the embodiment's camera topics) and the robot state (sensor_msgs/JointState: the arm's
  state_names, e.g. hand_x, hand_y, hand_z, gripper_opening). Actions that arrive faster than
  the rate are superseded (counted in the episode's log line).
* At the first success it publishes std_msgs/Bool True on ``success_topic``; after ``max_steps``
  applied actions (0 = the task's budget) False. Either way the episode is over: actions are ignored
  until the next instruction. The camera keeps publishing the paused scene, stamped with the time it
  was rendered (nothing moved since): frames stamped after an instruction was sent are always of its
  episode, so a recorder that hears the instruction late can tell them apart (docs/nodes.md).
* An action whose header.stamp is older than the reset (decided from a frame of the previous scene)
  is ignored, as the recorder ignores it (its ``drop_actions_before_start``).
* A malformed action (wrong length, NaN/inf) is ignored with a warning.
* With ``action_input: commands``, the interface of a real arm behind MoveIt Servo instead: geometry_msgs/TwistStamped on the embodiment's
  twist topic (linear and, for the Panda, angular velocity) and std_msgs/Float64 on its gripper topic
  (config/embodiments/metaworld_sawyer.yaml, robosuite_panda.yaml).
  Once a command has arrived in an episode, every tick is a step: the twist applied is the
  time-weighted mean of the twists in force since the last frame was published (each in force until the next, or
  command_timeout_s), the gripper the latest command (robot/command_window.py), inverted to the
  arm's action by the embodiment (robot/commands.py) -- the exact inverse of what the policy node
  sends. Commands received before the episode's reset are forgotten.
* ``raw_obs_topic`` (std_msgs/Float64MultiArray): the simulator's full state with each frame, for a
  scripted teleoperator (nodes/scripted_teleop_node.py); a real robot has no such topic.

`sim.driver.SimArmDriver` holds all of that without ROS (testable with a fake arm); this node is the adapter.

    python -m qt_policy.nodes.sim_arm_node --ros-args --params-file config/sim_arm.yaml
"""
from __future__ import annotations

import array

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray

from qt_msgs.msg import QAction

from ..sim.arm import SimObservation
from ..sim.driver import SimArmDriver, SimArmNodeConfig
from .instruction_input import subscribe_instructions
from .parameters import declare_parameters, read_parameters
from .qos import RELIABLE_10, SENSOR_PUBLISHER
from .spin import spin_until_signal

# ----- ROS adapter -------------------------------------------------------------------------------------

class SimArmNode(Node):
    def __init__(self, arm=None, **kwargs):
        super().__init__('sim_arm', **kwargs)
        errors = declare_parameters(self, SimArmNodeConfig)
        if errors:
            raise ValueError('; '.join(errors))
        cfg = read_parameters(self, SimArmNodeConfig)
        self.driver = SimArmDriver(cfg, arm=arm)
        self.config = cfg
        emb = self.driver.commands.embodiment
        topics = [cfg.image_topic] + [c.topic for c in emb.cameras[1:]]
        self._image_pubs = [self.create_publisher(Image, t, SENSOR_PUBLISHER) for t in topics]
        self._camera_frames = ['camera'] + [c.name for c in emb.cameras[1:]]
        self._state_pub = self.create_publisher(JointState, cfg.state_topic, SENSOR_PUBLISHER)
        self._success_pub = self.create_publisher(Bool, cfg.success_topic, RELIABLE_10)
        subscribe_instructions(self, cfg.instruction_topic, self._on_instruction)
        self._raw_obs_pub = self.create_publisher(Float64MultiArray, cfg.raw_obs_topic, SENSOR_PUBLISHER)
        if cfg.action_input == 'qaction':
            self.create_subscription(QAction, cfg.action_topic, self._on_action, RELIABLE_10)
            inputs = self.resolve_topic_name(cfg.action_topic)
        else:
            self.create_subscription(TwistStamped, emb.twist.topic, self._on_twist, RELIABLE_10)
            self.create_subscription(Float64, emb.gripper.topic, self._on_gripper, RELIABLE_10)
            inputs = (self.resolve_topic_name(emb.twist.topic) + ' + '
                      + self.resolve_topic_name(emb.gripper.topic))
        self._scene_stamp = None  # when the scene on the cameras was rendered (idle frames keep it)
        self._timer = self.create_timer(1.0 / cfg.rate_hz, self._on_tick)
        self.get_logger().info(
            f'sim arm ready ({cfg.simulator}, {emb.name}): {len(topics)} x {cfg.image_size}px camera at '
            f'{cfg.rate_hz:g} Hz, task '
            f'{cfg.task or "from the instruction"}, seeds from {cfg.seed}, actions from {inputs}; waiting for an '
            f'instruction on {self.resolve_topic_name(cfg.instruction_topic)}')

    def _on_instruction(self, instruction, _raw):
        try:
            line = self.driver.on_instruction(instruction.text, self.get_clock().now().nanoseconds)
        except Exception as exc:  # noqa: BLE001 - e.g. a Meta-World error: report, stay up
            self.driver.active = False
            self.get_logger().error(f'cannot start an episode for {instruction.text!r}: '
                                    f'{type(exc).__name__}: {exc}')
            return
        if line.startswith('error:'):
            self.get_logger().error(line[len('error:'):].strip())
            return
        self.get_logger().info(line)
        if self.driver.active and self.driver.arm.task_name is not None:
            self._timer.reset()  # the next step comes one period after this frame
            self._publish_observation(self.driver.arm.observation)

    def _on_action(self, msg):
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        warning = self.driver.on_action(list(msg.values), stamp_ns)
        if warning:
            self.get_logger().warning(warning)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_twist(self, msg):
        t = msg.twist
        self._warn(self.driver.on_command('twist', self._now_s(), (t.linear.x, t.linear.y, t.linear.z,
                                                                    t.angular.x, t.angular.y, t.angular.z)))

    def _on_gripper(self, msg):
        self._warn(self.driver.on_command('gripper', self._now_s(), (msg.data,)))

    def _warn(self, line):
        if line:
            self.get_logger().warning(line)

    def _on_tick(self):
        try:
            tick = self.driver.tick(self._now_s())
        except Exception as exc:  # noqa: BLE001 - a simulator error ends the episode, not the node
            self.driver.active = False
            self.get_logger().error(f'simulation step failed: {type(exc).__name__}: {exc}; episode stopped')
            return
        if tick.ended is not None:  # before the frame: the recorder closes the episode on this
            self._success_pub.publish(Bool(data=bool(tick.ended)))
            self.get_logger().info(tick.message)
        if tick.observation is not None:
            self._publish_observation(tick.observation, live=self.driver.active or tick.ended is not None)

    def _publish_observation(self, obs: SimObservation, live: bool = True):
        """`live` False: the episode is over and the simulation paused; the frame is the scene as it was
        rendered last, and keeps that time as its stamp."""
        now = self.get_clock().now()
        if live or self._scene_stamp is None:
            self._scene_stamp = now.to_msg()
            self.driver.observation_published(now.nanoseconds * 1e-9)
        stamp = self._scene_stamp
        for pub, frame_id, image in zip(self._image_pubs, self._camera_frames, obs.camera_images):
            img = Image()
            img.header.stamp = stamp
            img.header.frame_id = frame_id
            img.height, img.width = int(image.shape[0]), int(image.shape[1])
            img.encoding = 'rgb8'
            img.is_bigendian = 0
            img.step = img.width * 3
            img.data = array.array('B', np.ascontiguousarray(image, dtype=np.uint8).tobytes())
            pub.publish(img)
        state = JointState()
        state.header.stamp = stamp
        state.name = list(self.driver.arm.state_names)
        state.position = [float(v) for v in obs.state]
        self._state_pub.publish(state)
        self._raw_obs_pub.publish(Float64MultiArray(data=[float(v) for v in obs.raw_obs]))


def main(args=None) -> int:
    return spin_until_signal('sim_arm', SimArmNode, args,
                             on_stop=lambda node, executor: node.driver.arm.close())


if __name__ == '__main__':
    raise SystemExit(main())
