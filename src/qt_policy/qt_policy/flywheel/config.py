"""What a flywheel run is: the method, the tasks, the seed data and the per-round budget."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

#: each method's training settings (config fields by name; success_only filters the episodes)
METHODS: dict[str, dict] = {
    "qt": {},  # Q-Transformer on all episodes, failures included
    # behaviour cloning on all episodes with Q-T's sampler (nine tenths of each batch from successes); the
    # flywheel of 2026-12-05 called it bc_all (results/flywheel/)
    "bc_all_qt_sampler": {"algo": "bc"},
    "bc_success": {"algo": "bc", "success_only": True},  # filtered BC: the successes only (self-imitation)
    # HG-DAgger: BC on the successes and on the steps a person drove in the failures (with --takeover-after)
    "hg_dagger": {"algo": "bc", "failure_steps": "interventions", "success_batch_fraction": 0.0},
}

#: placements a round collects on: COLLECT_SEED_START + ROUND_SEED_STRIDE x round + k, far from the
#: generator's seeds (0..), the evaluation seeds (1,000,000+) and the validation seeds (2,000,000+)
COLLECT_SEED_START = 3_000_000
ROUND_SEED_STRIDE = 10_000


def _all_tasks() -> list[str]:
    from ..sim.tasks import TASKS

    return list(TASKS)


@dataclass
class FlywheelConfig:
    # qt (Q-Transformer, all data), bc_all_qt_sampler (behaviour cloning, all data, Q-T's sampler) or
    # bc_success (filtered BC)
    method: str = "qt"
    tasks: list[str] = field(default_factory=_all_tasks)  # simulated tasks, each with its instruction
    rounds: int = 3  # deploy -> record -> retrain rounds after the seed policy (round 0)
    # seed data: this many successful scripted-expert demonstrations per task (no failures), on the
    # generator's placements 0..; ignored with --seed-data
    seed_demos: int = 10
    seed_data: str = ""  # a folder of episode bags to start from instead of scripted demonstrations
    episodes_per_round: int = 30  # episodes per task each round's policy runs and records, on fresh placements
    eval_episodes: int = 50  # evaluation episodes per task after each round, on seeds 1,000,000+ (never collected on)
    # training steps per round; every round trains from scratch on all data so far, the same budget each round
    steps: int = 3000
    train_seed: int = 0  # seed of every round's training
    final_seeds: int = 1  # training seeds for the last round (train_seed, train_seed + 1, ...): the spread of the end result
    collect: str = "harness"  # harness (in-process, in lockstep) or ros (the sim, policy and recorder nodes)
    preset: str = "recommended"  # training preset (core.config.PRESETS) under the method's settings
    # a scripted person takes over a collected episode after this many steps without success and drives it
    # to its end, the steps flagged as interventions (sim/operator.py; through ROS the scripted person's node);
    # 0 = the policy alone
    takeover_after: int = 0
    max_steps: int = 0  # step budget of every collected and evaluation episode; 0 = the task's (Meta-World: 150)
    # > 0: the report gives success@K too, the share of evaluation episodes that succeeded within K steps
    # (issue 37's benchmark: K = 1.5x the fast expert's median length)
    success_within: int = 0
    # memory (MB) of every round's sampler (TrainConfig.buffer_mb); 0 = the training config's. Data larger than
    # it streams through it: give it room to hold the data whole, as the runs the loop is compared with did
    buffer_mb: float = 0.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {list(METHODS)}")
        if self.collect not in ("harness", "ros"):
            raise ValueError(f"collect must be 'harness' or 'ros', got {self.collect!r}")
        if not 0 < self.episodes_per_round <= ROUND_SEED_STRIDE:
            raise ValueError(f"episodes_per_round must be in 1..{ROUND_SEED_STRIDE}")
        if min(self.takeover_after, self.max_steps, self.success_within, self.buffer_mb) < 0:
            raise ValueError("takeover_after, max_steps, success_within (steps) and buffer_mb must be >= 0, got "
                             f"{self.takeover_after}, {self.max_steps}, {self.success_within}, {self.buffer_mb}")
        if self.rounds < 0 or self.final_seeds < 1 or self.steps < 1 or self.eval_episodes < 1:
            raise ValueError("rounds >= 0, final_seeds >= 1, steps >= 1 and eval_episodes >= 1 are required")
        from ..sim.tasks import get_task
        for name in self.tasks:
            get_task(name)  # unknown names fail here, with the known ones listed

    def collect_seeds(self, round_index: int) -> list[int]:
        """The placements round `round_index` (1..) collects on, the same for every task and method."""
        start = COLLECT_SEED_START + ROUND_SEED_STRIDE * round_index
        return list(range(start, start + self.episodes_per_round))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
