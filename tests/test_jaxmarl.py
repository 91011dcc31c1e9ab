"""envs.jaxmarl: the scenarios as JaxMARL environments, checked against the native API step by step."""
import importlib.util
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import envs

jaxmarl = pytest.importorskip("jaxmarl")
from jaxmarl.environments import MultiAgentEnv, spaces  # noqa: E402
from jaxmarl.wrappers.baselines import LogWrapper  # noqa: E402

import envs.jaxmarl  # noqa: E402
from envs.jaxmarl import JaxMARLEnv  # noqa: E402

SCENARIOS = ["bps-15a-3c", "crware-2c-tiny-4ag", "lbf-8x8-3p-2f"]


def _stack(env, values, axis=0):
    """The agents' values as one array, agents along `axis` (1 when a leading axis holds env copies)."""
    return jnp.stack([values[a] for a in env.agents], axis=axis)


def _sample(key, mask):
    """One valid action per agent, uniformly among those the mask allows."""
    return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf))


def test_spaces_names_and_classes():
    native = envs.make("crware-2c-tiny-4ag")
    env = JaxMARLEnv(native)
    assert isinstance(env, MultiAgentEnv)
    assert env.num_agents == 4 and env.agents == ["agent_0", "agent_1", "agent_2", "agent_3"]
    assert isinstance(env.action_space("agent_3"), spaces.Discrete) and env.action_space("agent_3").n == 5
    assert isinstance(env.observation_space("agent_0"), spaces.Box)
    assert env.observation_space("agent_0").shape == (44,) and env.observation_space("agent_0").dtype == jnp.float32
    assert env.agent_classes == {"type_0": ["agent_0", "agent_1"], "type_1": ["agent_2", "agent_3"]}
    obs, state = env.reset(jax.random.PRNGKey(0))
    _, ts = jax.jit(native.reset)(jax.random.PRNGKey(0))
    assert sorted(obs) == env.agents
    for i, agent in enumerate(env.agents):
        np.testing.assert_array_equal(obs[agent], ts.observation.agents_view[i])
        np.testing.assert_array_equal(env.get_avail_actions(state)[agent], ts.observation.action_mask[i])
    with pytest.raises(TypeError, match="envs.make"):
        JaxMARLEnv("bps-15a-3c")


def test_module_imports_without_jaxmarl_and_the_adapter_says_what_is_missing(monkeypatch):
    for name in [n for n in sys.modules if n == "jaxmarl" or n.startswith("jaxmarl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "jaxmarl", None)  # makes `import jaxmarl...` raise ImportError
    spec = importlib.util.spec_from_file_location("envs_jaxmarl_without", envs.jaxmarl.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert not module.HAVE_JAXMARL
    with pytest.raises(ImportError, match=r"^JaxMARLEnv needs jaxmarl, which is not installed: pip install"):
        module.JaxMARLEnv(envs.make("bps-15a-3c"))


def _adapter_rollout(env, key, steps):
    """Random valid actions through the JaxMARL API (jitted by the caller, vmapped over keys)."""
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key)

    def step(carry, t):
        obs, state = carry
        act_key, step_key = jax.random.split(jax.random.fold_in(key, t))
        action = _sample(act_key, _stack(env, env.get_avail_actions(state)))
        obs, state, reward, done, _ = env.step(step_key, state, {a: action[i] for i, a in enumerate(env.agents)})
        return (obs, state), (_stack(env, obs), _stack(env, reward), _stack(env, done), done["__all__"])

    _, out = jax.lax.scan(step, (obs, state), jnp.arange(steps))
    return (_stack(env, obs), *out)


def _native_rollouts(native, keys, steps):
    """The same actions on the native environment, one jitted step at a time, resetting by hand."""
    reset, step = jax.jit(native.reset), jax.jit(native.step)

    @jax.jit
    def keys_and_action(key, t, mask):
        act_key, step_key = jax.random.split(jax.random.fold_in(key, t))
        return _sample(act_key, mask), jax.random.split(step_key)[1]

    for key in keys:
        reset_key, key = jax.random.split(key)
        state, ts = reset(reset_key)
        first = ts.observation.agents_view
        views, rewards, dones = [], [], []
        for t in range(steps):
            action, next_reset_key = keys_and_action(key, t, ts.observation.action_mask)
            state, ts = step(state, action)
            rewards.append(ts.reward)
            dones.append(bool(ts.last()))
            if dones[-1]:  # JaxMARL's step resets with the second half of its key
                state, ts = reset(next_reset_key)
            views.append(ts.observation.agents_view)
        yield np.asarray(first), np.stack(views), np.stack(rewards), np.array(dones)


@pytest.mark.parametrize("name", SCENARIOS)
def test_jit_vmap_rollout_matches_native_steps_including_auto_reset(name):
    native = envs.make(name)
    # Episodes last 50 (BPS, LBF) or 500 (C-RWARE) steps; a 40-step limit (read when a step is
    # traced, so set before any) lets every rollout cross an episode end in a few seconds.
    native.time_limit = min(native.time_limit, 40)
    env = JaxMARLEnv(native)
    steps = native.time_limit + 3  # at least one episode ends, and the next one runs on
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    first, views, rewards, agent_dones, all_done = jax.jit(jax.vmap(lambda k: _adapter_rollout(env, k, steps)))(keys)
    assert views.shape == (2, steps, native.num_agents, native.obs_dim)
    for b, (n_first, n_views, n_rewards, n_dones) in enumerate(_native_rollouts(native, keys, steps)):
        assert n_dones.any()
        np.testing.assert_array_equal(first[b], n_first)
        np.testing.assert_array_equal(views[b], n_views)
        np.testing.assert_array_equal(rewards[b], n_rewards)
        np.testing.assert_array_equal(all_done[b], n_dones)
        np.testing.assert_array_equal(agent_dones[b], np.repeat(n_dones[:, None], native.num_agents, 1))
        # The step that ends an episode returns the next episode's first observation, not the last one.
        end = int(np.flatnonzero(n_dones)[0])
        assert not np.array_equal(views[b, end], views[b, end - 1])


def test_log_wrapper_counts_returns_and_lengths():
    native = envs.make("bps-15a-3c")
    env = LogWrapper(JaxMARLEnv(native))
    key = jax.random.PRNGKey(3)
    obs, state = env.reset(key)

    def step(state, t):
        action = {a: (t + i) % 5 for i, a in enumerate(env.agents)}
        _, state, reward, done, info = env.step(jax.random.fold_in(key, t), state, action)
        return state, (_stack(env, reward), done["__all__"], info)

    _, (rewards, done, info) = jax.jit(lambda s: jax.lax.scan(step, s, jnp.arange(55)))(state)
    assert np.flatnonzero(done).tolist() == [49]
    np.testing.assert_array_equal(info["returned_episode"][:, 0], done)
    np.testing.assert_allclose(info["returned_episode_returns"][49], rewards[:50].sum(0), rtol=1e-5)
    np.testing.assert_array_equal(info["returned_episode_lengths"][49], np.full(15, 50))
    assert np.all(info["terminated"] == 0) and np.array_equal(info["truncated"][:, 0], done)  # BPS only truncates
    # Native rewards of the same actions.
    s, _ = native.reset(key)
    for t in range(3):
        s, ts = native.step(s, (t + jnp.arange(15)) % 5)
        np.testing.assert_array_equal(rewards[t], ts.reward)


class ActorCritic(nn.Module):
    """One policy and one value network shared by all agents, as in JaxMARL's IPPO."""

    num_actions: int

    @nn.compact
    def __call__(self, x):
        pi = nn.tanh(nn.Dense(64)(nn.tanh(nn.Dense(64)(x))))
        v = nn.tanh(nn.Dense(64)(nn.tanh(nn.Dense(64)(x))))
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))(pi), nn.Dense(1)(v)[..., 0]


def _train_a2c(env, key, updates, num_envs=16, rollout=25, learn=True):
    """Shared-parameter A2C with GAE written against the JaxMARL API; the team return per update.

    With learn=False the parameters stay at their initialisation, whose near-zero logits make it a
    uniformly random policy, measured by exactly the same code.
    """
    net = ActorCritic(env.action_space(env.agents[0]).n)
    init_key, reset_key, key = jax.random.split(key, 3)
    params = net.init(init_key, jnp.zeros(env.observation_space(env.agents[0]).shape))
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3))
    obs, state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

    def update(carry, _):
        params, opt_state, obs, state, key = carry

        def env_step(carry, _):
            obs, state, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            x = _stack(env, obs, 1)  # (envs, agents, obs_dim)
            logits, value = net.apply(params, x)
            action = jax.random.categorical(act_key, logits)
            actions = {a: action[:, i] for i, a in enumerate(env.agents)}
            obs, state, reward, done, info = jax.vmap(env.step)(jax.random.split(step_key, num_envs), state, actions)
            team = jnp.sum(info["returned_episode_returns"] * info["returned_episode"], axis=-1)
            return (obs, state, key), (x, action, _stack(env, reward, 1), done["__all__"], value, team, done["__all__"])

        (obs, state, key), (x, action, reward, done, value, team, ended) = jax.lax.scan(
            env_step, (obs, state, key), None, rollout
        )
        _, last_value = net.apply(params, _stack(env, obs, 1))

        def gae(carry, step):
            advantage, next_value = carry
            reward, done, value = step
            not_done = 1.0 - done[:, None]
            delta = 0.1 * reward + 0.99 * next_value * not_done - value  # rewards scaled for the critic
            advantage = delta + 0.99 * 0.95 * not_done * advantage
            return (advantage, value), advantage

        _, advantage = jax.lax.scan(gae, (jnp.zeros_like(last_value), last_value), (reward, done, value), reverse=True)
        targets = advantage + value

        def loss(p):
            logits, v = net.apply(p, x)
            logp = jax.nn.log_softmax(logits)
            chosen = jnp.take_along_axis(logp, action[..., None], -1)[..., 0]
            adv = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
            entropy = -jnp.sum(jnp.exp(logp) * logp, -1).mean()
            return -(chosen * adv).mean() + 0.5 * ((v - targets) ** 2).mean() - 0.01 * entropy

        if learn:
            updates_, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
            params = optax.apply_updates(params, updates_)
        mean_team = jnp.sum(team) / jnp.maximum(jnp.sum(ended), 1)
        return (params, opt_state, obs, state, key), (mean_team, jnp.sum(ended))

    _, (team, episodes) = jax.jit(lambda c: jax.lax.scan(update, c, None, updates))(
        (params, tx.init(params), obs, state, key)
    )
    return np.asarray(team), np.asarray(episodes)


@pytest.mark.slow
def test_ippo_style_a2c_learns_on_bps_through_the_jaxmarl_api():
    """Colours are hidden and the policy is shared, so the best it can do is to head for a spot
    between the landmarks: about 20% better than random (-940 -> about -750 after 200 updates)."""
    env = LogWrapper(JaxMARLEnv(envs.make("bps-15a-3c")))
    updates = 200
    random_team, random_eps = _train_a2c(env, jax.random.PRNGKey(0), 40, learn=False)
    team, episodes = _train_a2c(env, jax.random.PRNGKey(0), updates)
    random_return = float(np.sum(random_team * random_eps) / np.sum(random_eps))
    last = slice(updates - 40, updates)
    learned_return = float(np.sum(team[last] * episodes[last]) / np.sum(episodes[last]))
    assert np.sum(random_eps) >= 300 and np.sum(episodes[last]) >= 300  # means over hundreds of episodes
    assert learned_return > random_return + 0.15 * abs(random_return), (random_return, learned_return)
