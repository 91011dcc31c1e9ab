"""jax.distributed: one run over two processes of two CPU devices each gives the metrics of one process.

Both runs are real `python -m experiments.multihost` processes talking to a coordinator on localhost.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--scenario", "lbf-10x10-6p-3f", "--method", "snp_ps", "--seeds", "4", "--steps", "120", "--num-logs", "2",
         "--set", "num_envs=2", "--set", "hidden_sizes=16"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(out: Path, processes: int, devices_each: int) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_each}"}
    coordinator = f"localhost:{free_port()}"
    procs = [subprocess.Popen([sys.executable, "-m", "experiments.multihost", "--coordinator", coordinator,
                               "--num-processes", str(processes), "--process-id", str(i), "--out", str(out), *FLAGS],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(processes)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multihost")
    return launch(tmp / "two.json", 2, 2), launch(tmp / "one.json", 1, 1)


@pytest.mark.slow  # two processes joining a job: a minute of CPU
def test_two_processes_use_all_four_devices(runs):
    two, one = runs
    assert (two["processes"], two["devices"]) == (2, 4)
    assert (one["processes"], one["devices"]) == (1, 1)


@pytest.mark.slow  # the same two-process job
def test_two_processes_give_the_metrics_of_one(runs):
    two, one = runs
    assert len(two["chunks"]) == len(one["chunks"]) == 2
    for a, b in zip(two["chunks"], one["chunks"]):
        assert a["env_steps"] == b["env_steps"] == 60 * (a["log"] + 1)  # 6 updates of 2 envs x 5 steps
        for name in ("episodes", "return_sum", "entropy", "actor_loss", "value_loss", "first_nonfinite_update"):
            assert np.shape(a[name]) == (4,), name
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    entropies = np.asarray(two["chunks"][-1]["entropy"])
    assert len(set(entropies.round(6))) == 4  # four different seeds, not one seed four times


def test_seeds_must_divide_over_the_devices(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=3"}
    out = subprocess.run([sys.executable, "-m", "experiments.multihost", "--coordinator", f"localhost:{free_port()}",
                          "--num-processes", "1", "--process-id", "0", "--out", str(tmp_path / "x.json"), *FLAGS],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "error: --seeds 4 is not a multiple of the 3 devices of this job"
    assert not (tmp_path / "x.json").exists()
