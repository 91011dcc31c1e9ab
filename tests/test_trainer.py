"""The compiled trainer: exact bookkeeping, determinism, and the identity phase on BPS."""
import jax
import numpy as np
import pytest

import envs
from adaps_jax.config import Config
from adaps_jax.identity import adjusted_rand_index
from adaps_jax.trainer import make_train

SMALL = dict(scenario="bps-15a-3c", num_seeds=2, num_envs=2, n_steps=5, hidden_sizes=(16,), num_logs=2)


def _run(method: str, **changes):
    config = Config(method=method, **{**SMALL, "total_steps": 2 * 2 * 5 * 10, **changes})
    trainer = make_train(config)
    keys = jax.random.split(jax.random.PRNGKey(config.seed), config.num_seeds)
    state, metrics = jax.jit(jax.vmap(trainer.train))(keys)
    return trainer, state, jax.device_get(metrics)


def test_fups_chunk_bookkeeping_is_exact():
    trainer, state, m = _run("fups", eval_episodes=0)
    assert trainer.config.updates_per_log == 10
    # 10 updates x 5 steps = 50 steps per copy per chunk: each of the 2 copies ends exactly one episode.
    np.testing.assert_array_equal(m.episodes, [[2, 2], [2, 2]])
    np.testing.assert_array_equal(m.first_nonfinite_update, -1)
    np.testing.assert_array_equal(state.update, [20, 20])
    assert trainer.env_steps(2) == 200
    assert np.all(m.return_sum < 0)  # BPS rewards are negative distances


@pytest.mark.parametrize("method", ["fups_id", pytest.param("snp_ps", marks=pytest.mark.slow),
                                    pytest.param("seps", marks=pytest.mark.slow)])
def test_every_method_trains_finitely(method):
    _, state, m = _run(method, pretrain_steps=200, total_steps=400, vae_epochs=2, num_clusters=3, eval_episodes=2)
    np.testing.assert_array_equal(m.first_nonfinite_update, -1)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))


@pytest.mark.slow  # minutes of CPU; the identity phase's parts are tested fast in test_identity and test_fidelity
def test_adaps_identity_phase_recovers_the_bps_colours():
    trainer, state, m = _run("adaps", pretrain_steps=10_000, num_envs=8, total_steps=10_000 + 8 * 5 * 2,
                             eval_episodes=0, identity_samples=15 * 2000)
    env = envs.make("bps-15a-3c")
    assert trainer.env_steps(1) == 10_000  # pretraining is the first logging point, counted in the budget
    assert trainer.env_steps(2) == 10_000 + 8 * 5 * 2
    for clusters, k in zip(np.asarray(state.plan.cluster), np.asarray(state.plan.num_clusters)):
        assert k == 3
        assert adjusted_rand_index(env.agent_types, clusters) == 1.0
    # Agents of one cluster share masks; different clusters' masks differ.
    masks = np.asarray(state.plan.actor_masks[0][0])
    assert (masks[0] == masks[4]).all() and not (masks[0] == masks[5]).all()
