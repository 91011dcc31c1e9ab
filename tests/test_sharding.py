"""Seeds sharded over several devices: same metrics as on one device, and the state really is split.

The check runs in a subprocess with `XLA_FLAGS=--xla_force_host_platform_device_count=4` (four CPU
devices), since the device count is fixed when JAX's CPU backend starts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, sys
import jax, numpy as np
from jax.sharding import PartitionSpec
from adaps_jax.config import Config
from adaps_jax.trainer import jit_over_seeds, make_train, seed_keys

method = sys.argv[1]
config = Config(scenario="bps-15a-3c", method=method, num_seeds=4, num_envs=2, hidden_sizes=(16,),
                total_steps=2 * 5 * 3 * 2 + 40, pretrain_steps=40, num_logs=2, vae_epochs=1, num_clusters=3)
trainer = make_train(config)

def run(keys):
    init = jit_over_seeds(trainer.init, keys)
    chunk = jit_over_seeds(trainer.train_chunk, keys, donate=True)
    state = init(keys)
    rows = []
    for _ in range(config.num_logs):
        state, metrics = chunk(state)
        rows.append(jax.tree.map(lambda x: np.asarray(x).tolist(), metrics._asdict()))
    return state, rows, chunk

sharded_keys = seed_keys(config.seed, config.num_seeds)
single_keys = jax.random.split(jax.random.PRNGKey(config.seed), config.num_seeds)  # all on device 0
state, sharded_rows, chunk = run(sharded_keys)
_, single_rows, _ = run(single_keys)

from experiments.training import variant_keys
variants = variant_keys(config.seed, 2, 3)  # 3 swept variants x 2 seeds: 6 rows, on the 3 devices dividing them
leaves = jax.tree.leaves(state)
hlo = chunk.lower(state).compile().as_text()
print(json.dumps({
    "devices": len(jax.devices()),
    "keys_devices": len(sharded_keys.sharding.device_set),
    "variant_keys_devices": len(variants.sharding.device_set),
    "variant_keys_repeat_seeds": bool((np.asarray(variants) == np.tile(np.asarray(seed_keys(config.seed, 2)), (3, 1))).all()),
    "leaves": len(leaves),
    "leaves_split_over_4": sum(
        x.sharding.spec == PartitionSpec("seeds") and len({s.device for s in x.addressable_shards}) == 4
        and all(s.data.shape[0] == 1 for s in x.addressable_shards)
        for x in leaves),
    "collectives": [op for op in ("all-gather", "all-reduce", "all-to-all", "collective-permute") if op in hlo],
    "sharded": sharded_rows,
    "single": single_rows,
}))
"""


def _run(method: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", SCRIPT, method], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["nops", pytest.param("adaps", marks=pytest.mark.slow)])
def test_sharded_seeds_match_one_device_and_the_state_is_split(method):
    r = _run(method)
    assert r["devices"] == 4 and r["keys_devices"] == 4
    assert r["variant_keys_devices"] == 3 and r["variant_keys_repeat_seeds"]
    # Every leaf of the training state (parameters, Adam moments, environments, plan, counters)
    # holds one seed on each of the four devices.
    assert r["leaves_split_over_4"] == r["leaves"] > 10
    assert r["collectives"] == []  # seeds never talk to each other
    for sharded, single in zip(r["sharded"], r["single"]):
        assert sharded["episodes"] == single["episodes"]
        assert sharded["first_nonfinite_update"] == single["first_nonfinite_update"] == [-1] * 4
        for key in ("return_sum", "type_return_sum", "entropy", "actor_loss", "value_loss"):
            np.testing.assert_allclose(sharded[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)
