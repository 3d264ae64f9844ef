"""Scripted data-collection policies for the Panda (robosuite) tasks: experts and failure makers.

Same kinds and API as sim/scripted.py (the Meta-World ones), for the 7-D action
(dx, dy, dz, droll, dpitch, dyaw, gripper). The experts are feedback controllers on `raw_obs`
only (the privileged sim state of sim/panda/arm.py, RAW_OBS_FIELDS), so a scripted teleoperator
in another process can run them from the published vector. Each is a small phase machine that
falls back to an earlier phase when the object slips, so action noise rarely makes it fail:

  lift   turn the hand's yaw onto the cube's faces (mod 90 deg), hover, descend, close, lift.
  stack  the same grasp on the red cube, carry it above the green one, lower it on top, open, rise.
  door   point the hand along the door normal with the fingers closing vertically, grasp the lever
         handle, turn it down ~1.3 rad (the hand rolls about the door normal, following the lever's
         arc: the latch frees only past ~1.1 rad), then pull along the hinge's arc, turning the hand
         with the door.

Failure makers (as in sim/scripted.py): held_random, wrong_task (a purposeful wrong motion, see
`_wrong_task_controller`), offset_goal (the expert steered to a shifted object), random.
All randomness comes from the given generator, so an episode is reproducible from its seed.

Measured (results/panda_experts/, seeds 0..19 for the expert, 0..9 per failure kind, the tasks'
budgets): expert 20/20 on every task; held_random, wrong_task and random 0/10 on every task;
offset_goal 3/10 (lift), 4/10 (door), 5/10 (stack): near misses, the only noisy successes.
"""
from __future__ import annotations

import numpy as np

from ..scripted import (CollectionPolicy, HeldRandom, SlowExpert, UniformRandom, build_policy, clip_unit,
                        draw_policy_kind, horizontal_shift)
from ..tasks import SimTask
from .arm import ACTION_NAMES, HOME_ROTATION, raw_fields, rotation_vector

FAILURE_KINDS = ("held_random", "wrong_task", "offset_goal", "random")
POLICY_KINDS = ("expert", "slow_expert") + FAILURE_KINDS
EXPERT_NOISE = 0.1  # sigma of the Gaussian action noise on expert actions

# Mix of failure makers for "noisy" episodes: with the rates above, noisy episodes succeed
# ~5-8 % per task (offset_goal's weight times its rate).
NOISY_KIND_WEIGHTS: dict[str, float] = {
    "held_random": 0.35,
    "wrong_task": 0.35,
    "offset_goal": 0.15,
    "random": 0.15,
}
NOISY_KIND_WEIGHTS_BY_TASK: dict[str, dict[str, float]] = {}

_N = len(ACTION_NAMES)
_POS_SCALE = 0.05  # m per unit action per step (OSC_POSE output_max)
_ROT_SCALE = 0.5  # rad per unit action per step
_OPEN, _CLOSE = -1.0, 1.0


# ----- geometry -----------------------------------------------------------------------------------

def _axis_rotation(axis, angle: float) -> np.ndarray:
    """Rotation matrix of `angle` rad about the unit vector `axis` (Rodrigues)."""
    x, y, z = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def _yaw(angle: float) -> np.ndarray:
    return _axis_rotation((0.0, 0.0, 1.0), angle)


def _pose_action(f: dict, pos, rot, grip: float, kp: float = 0.8, kr: float = 0.8) -> np.ndarray:
    """Proportional step of the hand toward position `pos` and orientation `rot` (world frame)."""
    a = np.zeros(_N)
    a[0:3] = kp * (np.asarray(pos) - f["eef_pos"]) / _POS_SCALE
    a[3:6] = kr * rotation_vector(rot @ f["eef_rot"].T) / _ROT_SCALE
    a[6] = grip
    return a


def _rot_error(f: dict, rot) -> float:
    return float(np.linalg.norm(rotation_vector(rot @ f["eef_rot"].T)))


def _top_down_grasp(cube_rot: np.ndarray) -> np.ndarray:
    """The top-down hand orientation whose fingers close across the cube's faces, turned as little
    as possible from the home orientation (a cube is symmetric under 90 deg turns)."""
    yaw = np.arctan2(cube_rot[1, 0], cube_rot[0, 0])
    yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
    return _yaw(yaw) @ HOME_ROTATION


# ----- experts ------------------------------------------------------------------------------------

class _PickPlace:
    """Grasp a cube from above, then lift it, slide it, or put it on another cube.

    Phases: reach (hover 6 cm above, yaw aligned) -> descend -> close -> carry; from any later
    phase, a cube that left the fingers sends it back to reach. carry lifts the cube by `lift` m
    (plus `slide`, a horizontal move), or with `place_on` brings it 3 cm above that cube, lowers
    it on top, opens and rises. `shift` is added to every object position (offset_goal).
    """

    def __init__(self, cube: str, place_on: str | None = None, lift: float = 0.15,
                 slide=(0.0, 0.0, 0.0), shift=(0.0, 0.0, 0.0)):
        self.cube, self.place_on = cube, place_on
        self.lift = np.array([0.0, 0.0, lift]) + np.asarray(slide, dtype=np.float64)
        self.shift = np.asarray(shift, dtype=np.float64)
        self.phase = "reach"
        self._timer = 0
        self._start: np.ndarray | None = None

    def __call__(self, f: dict) -> np.ndarray:
        cube = f[self.cube + "_pos"] + self.shift
        grasp_rot = _top_down_grasp(f[self.cube + "_rot"])
        eef = f["eef_pos"]
        if self._start is None:
            self._start = cube.copy()
        held = np.linalg.norm(cube - eef) < 0.03
        if self.phase in ("close", "carry", "lower") and not held:
            self.phase = "reach"
        if self.phase == "reach":
            above = cube + np.array([0.0, 0.0, 0.06])
            if np.linalg.norm((above - eef)[:2]) < 0.012 and _rot_error(f, grasp_rot) < 0.1:
                self.phase = "descend"
            return _pose_action(f, above, grasp_rot, _OPEN)
        if self.phase == "descend":
            if np.linalg.norm((cube - eef)[:2]) > 0.03:
                self.phase = "reach"
            elif np.linalg.norm(cube - eef) < 0.012:
                self.phase, self._timer = "close", 0
            return _pose_action(f, cube, grasp_rot, _OPEN)
        if self.phase == "close":
            self._timer += 1
            if self._timer >= 6:
                self.phase = "carry"
            return _pose_action(f, cube, grasp_rot, _CLOSE)
        if self.place_on is None:  # move the held cube to start + lift
            return _pose_action(f, eef + (self._start + self.lift - cube), grasp_rot, _CLOSE)
        # the held cube's centre resting on the other cube (half sizes 2 + 2.5 cm)
        goal = f[self.place_on + "_pos"] + self.shift + np.array([0.0, 0.0, 0.045])
        if self.phase == "carry":
            above = goal + np.array([0.0, 0.0, 0.03])
            if np.linalg.norm((above - cube)[:2]) < 0.008 and abs(above[2] - cube[2]) < 0.015:
                self.phase = "lower"
            return _pose_action(f, eef + (above - cube), grasp_rot, _CLOSE)
        if self.phase == "lower":
            if cube[2] - goal[2] < 0.006:
                self.phase = "release"
            return _pose_action(f, eef + (goal - cube), grasp_rot, _CLOSE)
        # release, then rise (the stack counts only once the fingers let go)
        return _pose_action(f, eef + np.array([0.0, 0.0, 0.05]), grasp_rot, _OPEN, kp=0.5)


# The hand in the door's frame for the handle grasp: pointing into the door (+y of the door frame),
# fingers closing vertically (hand x = -door z): a 90 deg pitch from the home pose (hand x = +door z
# would be a 180 deg turn, which the arm cannot track).
_DOOR_GRASP = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])


class _Door:
    """Grasp the lever handle, turn it down, pull the door open along the hinge's arc.

    The lever is a bar along the latch frame's x axis, 10 cm in front of the door (-y); its joint
    turns it about the door normal (+ = tip down). Targets are points fixed in the latch frame
    (pivot `latch_pos`, axes door_rot turned by the latch angle), so the hand follows the lever as
    it turns and the door as it swings (a bar knocked askew is approached askew). Phases: pre
    (10 cm in front of the bar, oriented) -> approach -> close -> turn (to 1.35 rad) -> pull;
    losing the handle, or an approach blocked for 30 steps, goes back to pre.
    `turn=False` pulls without turning the handle (the latch holds the door: a wrong-task motion).
    """

    GRASP = np.array([0.10, -0.10, 0.0])  # on the bar, 10 cm from the pivot (latch frame)
    TURN = 1.35  # rad: the latch frees past ~1.1

    def __init__(self, shift=(0.0, 0.0, 0.0), turn: bool = True):
        self.shift = np.asarray(shift, dtype=np.float64)
        self.turn = turn
        self.phase = "pre"
        self._timer = 0

    def __call__(self, f: dict) -> np.ndarray:
        latch_angle = f["latch_qpos"]
        door = f["door_rot"]
        normal = door[:, 1]
        pivot = f["latch_pos"] + self.shift

        def target(angle, offset=(0.0, 0.0, 0.0)):
            frame = _axis_rotation(normal, angle) @ door
            return pivot + frame @ (self.GRASP + np.asarray(offset)), frame @ _DOOR_GRASP

        on_bar, _ = target(latch_angle)
        if self.phase in ("close", "turn", "pull") and np.linalg.norm(on_bar - f["eef_pos"]) > 0.04:
            self.phase = "pre"
        if self.phase == "pre":
            pos, rot = target(latch_angle, (0.0, -0.10, 0.0))
            if np.linalg.norm(pos - f["eef_pos"]) < 0.015 and _rot_error(f, rot) < 0.1:
                self.phase, self._timer = "approach", 0
            return _pose_action(f, pos, rot, _OPEN)
        if self.phase == "approach":
            pos, rot = target(latch_angle)
            self._timer += 1
            if np.linalg.norm(pos - f["eef_pos"]) < 0.01:
                self.phase, self._timer = "close", 0
            elif self._timer > 30:
                self.phase = "pre"
            return _pose_action(f, pos, rot, _OPEN)
        if self.phase == "close":
            self._timer += 1
            if self._timer >= 6:
                self.phase = "turn" if self.turn else "pull"
            return _pose_action(f, *target(latch_angle), _CLOSE)
        if self.phase == "turn":
            if latch_angle > 1.15:
                self.phase = "pull"
            return _pose_action(f, *target(min(latch_angle + 0.35, self.TURN)), _CLOSE)
        # pull: the held pose, swung 0.2 rad further about the hinge's vertical axis
        pos, rot = target(max(latch_angle, self.TURN) if self.turn else latch_angle)
        swing = _yaw(0.2)
        hinge = f["hinge_pos"]
        return _pose_action(f, hinge + swing @ (pos - hinge), swing @ rot, _CLOSE)


def _expert_controller(task_name: str, shift=(0.0, 0.0, 0.0)):
    if task_name == "door":
        return _Door(shift)
    if task_name == "stack":
        return _PickPlace("red", place_on="green", shift=shift)
    return _PickPlace("cube", shift=shift)


def _wrong_task_controller(task_name: str, rng: np.random.Generator):
    """Purposeful but wrong motion. stack: lift the red cube and hold it up (the lift expert);
    lift: grasp the cube and drag it 10 cm along the table; door: grasp the handle and pull
    without turning it (the latch holds the door shut)."""
    if task_name == "door":
        return _Door(turn=False)
    if task_name == "stack":
        return _PickPlace("red")
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return _PickPlace("cube", lift=0.0, slide=0.10 * np.array([np.cos(angle), np.sin(angle), 0.0]))


class ExpertPolicy:
    """The task's scripted expert (or `controller`, another feedback law on the same raw_obs) plus
    small Gaussian action noise."""

    kind = "expert"

    def __init__(self, task: SimTask, rng: np.random.Generator, noise: float = EXPERT_NOISE,
                 shift=(0.0, 0.0, 0.0), controller=None):
        self.task = task
        self.rng = rng
        self.noise = float(noise)
        self._controller = controller or _expert_controller(task.name, shift)

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        a = self._controller(raw_fields(self.task.name, raw_obs))
        if self.noise > 0:
            a = a + self.rng.normal(0.0, self.noise, size=a.shape)
        return clip_unit(a)


class WrongTaskPolicy:
    """A wrong feedback law with the expert's noise (see `_wrong_task_controller`)."""

    kind = "wrong_task"

    def __init__(self, task: SimTask, rng: np.random.Generator):
        self._expert = ExpertPolicy(task, rng, controller=_wrong_task_controller(task.name, rng))

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        return self._expert.act(raw_obs)


class OffsetGoalPolicy:
    """The expert, steered by object/handle positions shifted horizontally (random direction,
    distance uniform in `offset_range` m, fixed for the episode): it grasps the wrong spot.
    1-5 cm makes near misses (30-50 % still succeed); 3-10 cm failed 30/30."""

    kind = "offset_goal"

    def __init__(self, task: SimTask, rng: np.random.Generator,
                 offset_range: tuple[float, float] = (0.01, 0.05)):
        self.shift = horizontal_shift(rng, offset_range)
        self._expert = ExpertPolicy(task, rng, shift=self.shift)

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        return self._expert.act(raw_obs)


_POLICIES = {  # kind -> (task, rng) -> policy; the Panda's actions are 7-D
    "expert": ExpertPolicy,
    "slow_expert": lambda task, rng: SlowExpert(ExpertPolicy(task, rng), rng),
    "held_random": lambda task, rng: HeldRandom(ExpertPolicy(task, rng), rng, _N),
    "wrong_task": WrongTaskPolicy,
    "offset_goal": OffsetGoalPolicy,
    "random": lambda task, rng: UniformRandom(rng, _N),
}


def make_collection_policy(kind: str, task: SimTask, rng: np.random.Generator) -> CollectionPolicy:
    """A fresh policy of `kind` (one of POLICY_KINDS) for one episode of `task`."""
    return build_policy(_POLICIES, kind, task, rng)


def sample_policy_kind(mode: str, rng: np.random.Generator, task_name: str | None = None) -> str:
    """The kind for `mode`, with the task's NOISY_KIND_WEIGHTS_BY_TASK entry or NOISY_KIND_WEIGHTS."""
    return draw_policy_kind(mode, rng, NOISY_KIND_WEIGHTS_BY_TASK.get(task_name or "", NOISY_KIND_WEIGHTS))
