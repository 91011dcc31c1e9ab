"""The baseline: a minimal PureJaxRL-style A2C on jumanji's LevelBasedForaging, timed like ours."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaps_jax.networks import orthogonal
from adaps_jax.trainer import jit_over_seeds, seed_keys
from experiments import bench_envs
from experiments.bench.harness import Case

JUMANJI_A2C = "jumanji LBF minimal A2C (FuPS)"



class JumanjiLbfA2C:
    """FuPS A2C in the PureJaxRL style on jumanji's LevelBasedForaging (10x10, 6 agents, 3 food).

    One shared actor and one shared critic (64-64 ReLU, orthogonal init, actor head 0.01), the
    agents' 27-number views as inputs, invalid actions masked; `num_envs` copies stepped through
    jumanji's `VmapAutoResetWrapper` (its standard auto-reset); n-step returns cut at episode ends
    (no truncation bootstrap: the minimal version), entropy 0.01, value loss 0.5, Adam 3e-4 with
    a global gradient-norm clip of 0.5; losses averaged over steps and copies and summed over agents.
    Seeds are vmapped. Everything is one jitted `lax.scan` of updates, like our `train_chunk`.
    """

    def __init__(self, num_envs: int = 8, n_steps: int = 5, hidden: int = 64, gamma: float = 0.99):
        import flax.linen as nn
        from jumanji.wrappers import VmapAutoResetWrapper

        self.env = VmapAutoResetWrapper(bench_envs.jumanji_lbf())
        self.num_envs, self.n_steps, self.gamma = num_envs, n_steps, gamma
        self.num_agents = int(np.asarray(self.env.action_spec.num_values).shape[0])

        class MLP(nn.Module):
            out: int
            gain: float

            @nn.compact
            def __call__(self, x):
                # Our orthogonal init: flax's, with the same values, but one QR per matrix under vmap.
                # flax's batched QR deadlocked this program with the seeds sharded 2 per CPU device
                # (the jaxlib 0.10.2 hang described in adaps_jax/networks.py).
                init = orthogonal
                x = nn.relu(nn.Dense(hidden, kernel_init=init(np.sqrt(2)))(x))
                x = nn.relu(nn.Dense(hidden, kernel_init=init(np.sqrt(2)))(x))
                return nn.Dense(self.out, kernel_init=init(self.gain))(x)

        self.actor, self.critic = MLP(6, 0.01), MLP(1, 1.0)
        self.optimizer = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(3e-4, eps=1e-5))

    def init(self, key):
        env_key, actor_key, critic_key, key = jax.random.split(key, 4)
        states, timestep = self.env.reset(jax.random.split(env_key, self.num_envs))
        dummy = jnp.zeros((1, 27))
        params = {"actor": self.actor.init(actor_key, dummy), "critic": self.critic.init(critic_key, dummy)}
        return params, self.optimizer.init(params), states, timestep, key

    def train_chunk(self, carry, updates: int):
        actor, critic, env, gamma = self.actor, self.critic, self.env, self.gamma

        def update(carry, _):
            params, opt_state, states, timestep, key = carry

            def step(c, _):
                states, timestep, key = c
                key, act_key = jax.random.split(key)
                obs = timestep.observation
                x = obs.agents_view.astype(jnp.float32)
                logits = jnp.where(obs.action_mask, actor.apply(params["actor"], x), -1e9)
                action = jax.random.categorical(act_key, logits)
                states, next_timestep = env.step(states, action)
                return (states, next_timestep, key), (x, obs.action_mask, action, next_timestep.reward,
                                                      next_timestep.last())

            (states, timestep, key), (x, mask, action, reward, done) = jax.lax.scan(
                step, (states, timestep, key), None, self.n_steps)
            last_value = critic.apply(params["critic"], timestep.observation.agents_view.astype(jnp.float32))[..., 0]

            def loss(p):
                logits = jnp.where(mask, actor.apply(p["actor"], x), -1e9)
                value = critic.apply(p["critic"], x)[..., 0]

                def back(g, t):
                    r, d = t
                    g = r + gamma * jnp.where(d[:, None], 0.0, g)
                    return g, g

                _, returns = jax.lax.scan(back, jax.lax.stop_gradient(last_value), (reward, done), reverse=True)
                advantage = returns - value
                log_probs = jax.nn.log_softmax(logits)
                log_prob = jnp.take_along_axis(log_probs, action[..., None], -1)[..., 0]
                entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, -1)
                per_agent = lambda v: jnp.sum(jnp.mean(v, axis=(0, 1)))  # noqa: E731
                return (per_agent(-jax.lax.stop_gradient(advantage) * log_prob) + 0.5 * per_agent(advantage**2)
                        - 0.01 * per_agent(entropy))

            value, grads = jax.value_and_grad(loss)(params)
            updates_, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates_), opt_state, states, timestep, key), value

        carry, losses = jax.lax.scan(update, carry, None, updates)
        return carry, losses


def jumanji_case(num_envs: int, num_seeds: int, chunk_env_steps: int, n_steps: int = 5) -> Case:
    a2c = JumanjiLbfA2C(num_envs=num_envs, n_steps=n_steps)
    updates = max(1, round(chunk_env_steps / (num_envs * n_steps * num_seeds)))
    keys = seed_keys(0, num_seeds)  # its seeds are sharded over the CPU devices like ours
    start = time.perf_counter()
    carry = jax.block_until_ready(jit_over_seeds(a2c.init, keys)(keys))
    init_s = time.perf_counter() - start
    chunk = jit_over_seeds(lambda c: a2c.train_chunk(c, updates), keys, donate=True)
    start = time.perf_counter()
    carry, _ = jax.block_until_ready(chunk(carry))
    first_chunk_s = time.perf_counter() - start
    holder = {"carry": carry}

    def run() -> bool:
        holder["carry"], losses = jax.block_until_ready(chunk(holder["carry"]))
        return bool(np.all(np.isfinite(np.asarray(losses))))

    info = {"scenario": "jumanji LevelBasedForaging 10x10-6p-3f", "method": JUMANJI_A2C, "num_envs": num_envs,
            "num_seeds": num_seeds, "n_steps": n_steps, "updates_per_chunk": updates, "init_s": init_s,
            "first_chunk_s": first_chunk_s}
    return Case(info, run, num_seeds * updates * num_envs * n_steps, a2c.num_agents)
