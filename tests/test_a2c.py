"""A2C pieces against hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaps_jax.a2c import Rollout, a2c_loss, clip_by_group_norm, nstep_returns
from adaps_jax.config import Config
from adaps_jax.sharing import method_spec, plain_plan
from adaps_jax.networks import ActorCritic

GAMMA = 0.5
REWARDS = jnp.array([1.0, 2.0, 3.0])
NEXT_VALUES = jnp.array([10.0, 20.0, 30.0])
NO = jnp.array([False, False, False])


def test_nstep_returns_without_episode_end_bootstrap_from_last_value():
    g = nstep_returns(REWARDS, NEXT_VALUES, NO, NO, GAMMA)
    g2 = 3 + 0.5 * 30
    g1 = 2 + 0.5 * g2
    g0 = 1 + 0.5 * g1
    np.testing.assert_allclose(g, [g0, g1, g2])


def test_nstep_returns_termination_does_not_bootstrap():
    terminated = jnp.array([False, True, False])
    g = nstep_returns(REWARDS, NEXT_VALUES, terminated, NO, GAMMA)
    np.testing.assert_allclose(g, [1 + 0.5 * 2, 2, 3 + 0.5 * 30])


def test_nstep_returns_truncation_bootstraps_from_the_final_observation():
    truncated = jnp.array([False, True, False])
    g = nstep_returns(REWARDS, NEXT_VALUES, NO, truncated, GAMMA)
    g1 = 2 + 0.5 * 20
    np.testing.assert_allclose(g, [1 + 0.5 * g1, g1, 3 + 0.5 * 30])


def test_nstep_returns_terminal_last_step_gives_plain_rewards():
    terminated = jnp.array([False, False, True])
    g = nstep_returns(REWARDS, NEXT_VALUES, terminated, NO, GAMMA)
    np.testing.assert_allclose(g, [1 + 0.5 * (2 + 0.5 * 3), 2 + 0.5 * 3, 3])


def test_nstep_returns_broadcast_over_envs_and_agents():
    rewards = jnp.broadcast_to(REWARDS[:, None, None], (3, 2, 4))
    values = jnp.broadcast_to(NEXT_VALUES[:, None, None], (3, 2, 4))
    no = jnp.zeros((3, 2, 4), bool)
    g = nstep_returns(rewards, values, no, no, GAMMA)
    np.testing.assert_allclose(g[:, 1, 3], nstep_returns(REWARDS, NEXT_VALUES, NO, NO, GAMMA))


def test_clip_by_group_norm_clips_each_parameter_set_on_its_own():
    grads = {"w": jnp.array([[3.0, 0.0], [0.3, 0.0]]), "b": jnp.array([[4.0], [0.4]])}
    clipped, _ = clip_by_group_norm(1.0).update(grads, None)
    np.testing.assert_allclose(clipped["w"], [[0.6, 0.0], [0.3, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"], [[0.8], [0.4]], rtol=1e-6)


@pytest.mark.parametrize("method", ["fups", "nops"])
def test_a2c_loss_matches_a_numpy_reference(method):
    """The loss equals a direct numpy computation from the network's own outputs."""
    config = Config(method=method, gamma=0.9, entropy_coef=0.01, value_coef=0.5, hidden_sizes=(8,))
    T, E, N, D, A = 4, 2, 3, 5, 4
    spec = method_spec(config, N)
    net = ActorCritic(spec, N, D, A, config.hidden_sizes)
    params = net.init(jax.random.PRNGKey(0))
    plan = plain_plan(spec, config, N, jax.random.PRNGKey(1))
    k = jax.random.split(jax.random.PRNGKey(2), 4)
    rollout = Rollout(
        obs=jax.random.normal(k[0], (T, E, N, D)), action_mask=jnp.ones((T, E, N, A), bool),
        action=jax.random.randint(k[1], (T, E, N), 0, A), reward=jax.random.normal(k[2], (T, E, N)),
        next_obs=jax.random.normal(k[3], (T, E, N, D)),
        terminated=jnp.zeros((T, E, N), bool).at[1, 0].set(True), truncated=jnp.zeros((T, E, N), bool).at[2, 1].set(True),
        final_obs=jax.random.normal(k[3], (E, N, D)),
    )
    total, info = a2c_loss(params, net, plan, rollout, config)

    logits = np.asarray(net.logits(params, plan, rollout.obs), np.float64)
    values = np.asarray(net.values(params, plan, rollout.obs), np.float64)
    next_values = np.asarray(net.values(params, plan, rollout.next_obs), np.float64)
    r, term, trunc = np.asarray(rollout.reward), np.asarray(rollout.terminated), np.asarray(rollout.truncated)
    returns = np.zeros_like(r)
    following = next_values[-1]
    for t in reversed(range(T)):
        boot = np.where(term[t], 0.0, next_values[t])
        returns[t] = r[t] + 0.9 * np.where(term[t] | trunc[t], boot, following)
        following = returns[t]
    adv = returns - values
    logp_all = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    logp = np.take_along_axis(logp_all, np.asarray(rollout.action)[..., None], -1)[..., 0]
    entropy = -(np.exp(logp_all) * logp_all).sum(-1)
    actor = (-(adv * logp)).mean((0, 1)).sum()
    value = (adv**2).mean((0, 1)).sum()
    ent = entropy.mean((0, 1)).sum()
    np.testing.assert_allclose(info.actor, actor, rtol=1e-4)
    np.testing.assert_allclose(info.value, value, rtol=1e-4)
    np.testing.assert_allclose(info.entropy, ent, rtol=1e-4)
    np.testing.assert_allclose(total, actor + 0.5 * value - 0.01 * ent, rtol=1e-4)
