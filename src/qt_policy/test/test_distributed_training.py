"""Data-parallel training through torchrun: conversion first, ranks in sync on one node and on two
(c10d rendezvous, both on 127.0.0.1: the README's multi-node command)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qt_policy.core.checkpoint import read_config
from qt_test_helpers.episodes import write_drawer_bags

TINY = ["--conv-channels", "4", "8", "--tokens-per-frame", "2", "--d-model", "16", "--num-layers", "1",
        "--num-heads", "2", "--num-bins", "16", "--batch-size", "8", "--log-every", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    return write_drawer_bags(tmp_path_factory.mktemp("bags"))


def torchrun(*args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])


def finish(proc, timeout=240):
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    return out


def test_torchrun_needs_converted_shards_and_keeps_two_ranks_in_sync(bags, tmp_path):
    import shutil

    from qt_policy.tools.convert import main as convert_main
    data, out = tmp_path / "data", tmp_path / "ddp"
    shutil.copytree(bags, data, ignore=shutil.ignore_patterns("_shards*"))
    train = ["-m", "qt_policy.tools.train", "--data", data, "--out", out, "--steps", "3", *TINY]
    port = 29500 + os.getpid() % 1000
    proc = torchrun("--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port, *train)
    proc.communicate(timeout=240)
    assert proc.returncode != 0 and not (data / "_shards").exists()  # conversion is its own step
    assert convert_main([str(data), str(data / "_shards"), "--shard-mb", "0.001", "--no-progress"]) == 0
    out_text = finish(torchrun("--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port + 1, *train))
    assert "ranks in sync" in out_text
    assert read_config(out / "checkpoint")["world_size"] == 2


def test_torchrun_two_nodes_of_one_process_each_on_this_machine(bags, tmp_path):
    """The multi-node command of the README (c10d rendezvous), both nodes on 127.0.0.1."""
    from qt_policy.tools.convert import main as convert_main
    assert convert_main([str(bags), str(tmp_path / "shards"), "--no-progress"]) == 0
    endpoint = f"127.0.0.1:{30500 + os.getpid() % 1000}"
    nodes = [torchrun("--nnodes", 2, "--nproc-per-node", 1, "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                      "--rdzv-id", "qt-test", "-m", "qt_policy.tools.train", "--data", tmp_path / "shards",
                      "--out", tmp_path / f"run{k}", "--steps", "2", *TINY) for k in range(2)]
    outputs = [finish(p) for p in nodes]
    assert any("ranks in sync" in o for o in outputs)
    written = [k for k in range(2) if (tmp_path / f"run{k}" / "checkpoint").is_dir()]
    assert len(written) == 1 and read_config(tmp_path / f"run{written[0]}" / "checkpoint")["world_size"] == 2
