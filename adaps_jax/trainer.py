"""The whole training as pure functions: `make_train(config)` -> `Trainer` with `init(key)`,
`train_chunk(state)` and `train(key)`, each vmappable over seed keys.

Data flow of one A2C update: `num_envs` environment copies step `n_steps` times with every agent
acting from its own (masked, possibly separate) policy; copies that end an episode are reset in
place; the rollout's n-step returns and the A2C loss give one Adam step. A chunk is a `lax.scan`
of `updates_per_log` updates; the host loops only over chunks (to log, checkpoint and resume).

AdaPS and SePS first run their identity phase inside `init`: a shared policy (FuPS) trains with
A2C for `pretrain_steps` environment steps while all transitions are kept; the VAE, k-means and
(for AdaPS) the mask mapping turn them into the sharing plan. RL then starts from freshly
initialised parameters (the pretraining network has no masks and a different structure); the
pretraining steps count in the run's step budget and in its logged `env_steps`.
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import envs
from adaps_jax import identity
from adaps_jax.a2c import Rollout, a2c_loss, make_optimizer
from adaps_jax.config import IDENTITY_METHODS, Config
from adaps_jax.methods import MethodSpec, SharingPlan, cluster_plan, method_spec, plain_plan
from adaps_jax.networks import ActorCritic, masked_logits
from envs.core import MultiAgentEnv, Observation


@chex.dataclass
class RunnerState:
    params: dict
    opt_state: optax.OptState
    plan: SharingPlan
    env_state: chex.ArrayTree  # (E, ...) environment copies
    obs: Observation  # (E, N, ...) current observations
    episode_return: chex.Array  # (E, N) return of the running episodes
    key: chex.PRNGKey
    update: chex.Array  # () updates done so far


class ChunkMetrics(NamedTuple):
    """Sums and means over one chunk of updates (per seed)."""

    episodes: chex.Array  # () episodes completed
    return_sum: chex.Array  # () sum over completed episodes of the team return (summed over agents)
    type_return_sum: chex.Array  # (num_types,) the same, split by agent type
    entropy: chex.Array  # () mean policy entropy per agent
    actor_loss: chex.Array
    value_loss: chex.Array
    first_nonfinite_update: chex.Array  # () index of the first update with a non-finite loss or gradient, or -1


class Trainer:
    """Pure training functions for one config; build with `make_train`."""

    def __init__(self, config: Config, env: MultiAgentEnv):
        self.config = config.validate(env.num_agents)
        self.env = env
        self.spec: MethodSpec = method_spec(config, env.num_agents)
        self.network = self._network(self.spec)
        self.optimizer = make_optimizer(config)
        self.type_onehot = jnp.asarray(np.eye(env.num_types)[env.agent_types], jnp.float32)  # (N, types)

    def _network(self, spec: MethodSpec) -> ActorCritic:
        env = self.env
        return ActorCritic(spec, env.num_agents, env.obs_dim, env.num_actions, self.config.hidden_sizes)

    # ---- acting and learning -------------------------------------------------------------------

    def _rollout(self, network: ActorCritic, params: dict, state: RunnerState) -> tuple[RunnerState, Rollout, tuple]:
        """`n_steps` steps of all copies; returns the rollout and the episodes completed in it."""
        num_envs = self.config.num_envs

        def env_step(carry: RunnerState, _):
            key, act_key, reset_key = jax.random.split(carry.key, 3)
            obs = carry.obs
            logits = masked_logits(network.logits(params, carry.plan, obs.agents_view), obs.action_mask)
            action = jax.random.categorical(act_key, logits)
            env_state, ts = jax.vmap(self.env.step)(carry.env_state, action)
            reset_state, reset_ts = jax.vmap(self.env.reset)(jax.random.split(reset_key, num_envs))
            done = ts.last()  # (E,)
            terminated = done[:, None] & (ts.discount == 0.0)
            truncated = done[:, None] & (ts.discount != 0.0)
            episode_return = carry.episode_return + ts.reward
            finished = jnp.where(done[:, None], episode_return, 0.0)  # (E, N)

            def pick(fresh, old):
                return jnp.where(done.reshape((-1,) + (1,) * (old.ndim - 1)), fresh, old)

            next_carry = carry.replace(
                env_state=jax.tree.map(pick, reset_state, env_state),
                obs=jax.tree.map(pick, reset_ts.observation, ts.observation),
                episode_return=jnp.where(done[:, None], 0.0, episode_return),
                key=key,
            )
            step = Rollout(obs.agents_view, obs.action_mask, action, ts.reward, ts.observation.agents_view,
                           terminated, truncated)
            return next_carry, (step, done.sum(), finished.sum(), finished.sum(0) @ self.type_onehot)

        state, (rollout, episodes, returns, type_returns) = jax.lax.scan(env_step, state, None, self.config.n_steps)
        return state, rollout, (episodes.sum(), returns.sum(), type_returns.sum(0))

    def _update(self, network: ActorCritic, state: RunnerState) -> tuple[RunnerState, tuple]:
        """One A2C update: a rollout, the loss, one optimiser step."""
        state, rollout, episodes = self._rollout(network, state.params, state)
        grads, info = jax.grad(a2c_loss, has_aux=True)(state.params, network, state.plan, rollout, self.config)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(info.total) & jnp.isfinite(optax.tree.norm(grads))
        state = state.replace(params=params, opt_state=opt_state, update=state.update + 1)
        num_agents = self.env.num_agents
        return state, (rollout, episodes, info.entropy / num_agents, info.actor, info.value, finite)

    def train_chunk(self, state: RunnerState) -> tuple[RunnerState, ChunkMetrics]:
        """`updates_per_log` A2C updates of one seed."""

        def body(state: RunnerState, _):
            state, (_, episodes, entropy, actor, value, finite) = self._update(self.network, state)
            return state, (episodes, entropy, actor, value, finite)

        first_update = state.update
        state, (episodes, entropy, actor, value, finite) = jax.lax.scan(body, state, None, self.config.updates_per_log)
        count, returns, type_returns = episodes
        first_bad = jnp.where(finite.all(), -1, first_update + jnp.argmin(finite))
        return state, ChunkMetrics(
            episodes=count.sum(), return_sum=returns.sum(), type_return_sum=type_returns.sum(0),
            entropy=entropy.mean(), actor_loss=actor.mean(), value_loss=value.mean(),
            first_nonfinite_update=first_bad.astype(jnp.int32),
        )

    # ---- set-up, including the identity phase ---------------------------------------------------

    def init(self, key: chex.PRNGKey) -> RunnerState:
        """The state before the first A2C update; AdaPS and SePS run their identity phase here."""
        key, env_key, params_key, plan_key = jax.random.split(key, 4)
        env_state, ts = jax.vmap(self.env.reset)(jax.random.split(env_key, self.config.num_envs))
        state = RunnerState(
            params={}, opt_state=(), plan=plain_plan(self.spec, self.config, self.env.num_agents, plan_key),
            env_state=env_state, obs=ts.observation,
            episode_return=jnp.zeros((self.config.num_envs, self.env.num_agents)),
            key=key, update=jnp.zeros((), jnp.int32),
        )
        if self.spec.name in IDENTITY_METHODS:
            state = self._identity_phase(state, plan_key)
        params = self.network.init(params_key)
        return state.replace(params=params, opt_state=self.optimizer.init(params))

    def _identity_phase(self, state: RunnerState, key: chex.PRNGKey) -> RunnerState:
        """Pretrain a shared policy, keep its transitions, and turn them into a sharing plan."""
        config = self.config
        shared = self._network(method_spec(config.replace(method="fups"), self.env.num_agents))
        params_key, vae_key, cluster_key, mask_key = jax.random.split(key, 4)
        params = shared.init(params_key)
        state = state.replace(params=params, opt_state=self.optimizer.init(params))

        def body(state: RunnerState, _):
            state, (rollout, *_) = self._update(shared, state)
            return state, rollout

        state, rollouts = jax.lax.scan(body, state, None, config.pretrain_updates)

        def samples(x: chex.Array) -> chex.Array:  # (U, T, E, N, ...) -> (U*T*E, N, ...)
            return x.reshape((-1,) + x.shape[3:])

        transitions = identity.Transitions(
            obs=samples(rollouts.obs), action=samples(rollouts.action),
            reward=samples(rollouts.reward), next_obs=samples(rollouts.next_obs),
        )
        result = identity.train_identity_vae(
            vae_key, transitions, num_actions=self.env.num_actions, latent_size=config.latent_size,
            epochs=config.vae_epochs, batch_size=config.vae_batch_size,
            learning_rate=config.vae_learning_rate, kl_weight=config.vae_kl_weight,
        )
        max_clusters = min(config.num_clusters or config.max_clusters, self.env.num_agents)
        assignment, centres, num_clusters = identity.cluster_agents(
            cluster_key, result.identity, config.num_clusters, max_clusters, config.kmeans_restarts
        )
        plan = cluster_plan(self.spec, config, assignment, centres, num_clusters, mask_key)
        return state.replace(plan=plan, update=jnp.zeros((), jnp.int32))

    def train(self, key: chex.PRNGKey) -> tuple[RunnerState, ChunkMetrics]:
        """The whole run for one seed: init, then `num_logs` chunks (metrics stacked per chunk)."""
        return jax.lax.scan(lambda s, _: self.train_chunk(s), self.init(key), None, self.config.num_logs)

    def env_steps(self, chunks_done: int) -> int:
        """Environment steps per seed after `chunks_done` chunks, pretraining included."""
        c = self.config
        return (c.pretrain_updates + chunks_done * c.updates_per_log) * c.steps_per_update


def make_train(config: Config, env: MultiAgentEnv | None = None) -> Trainer:
    """Builds the training functions of `config` (the environment from `config.scenario` by default)."""
    return Trainer(config, env if env is not None else envs.make(config.scenario))


def seed_keys(seed: int, num_seeds: int) -> chex.Array:
    """One key per seed, sharded over the seed axis across the visible devices.

    jit then runs each device's share of the seeds on that device (`jit_over_seeds` keeps every
    output sharded the same way). In one process the seeds go to as many devices as divide them
    evenly (4 seeds on 16 CPU devices: 4 of them); with `jax.distributed` initialised, the devices
    span every process's machine and must all be used, so their number must divide the seeds.
    """
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    devices = jax.devices()
    if jax.process_count() == 1:
        devices = devices[: max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)]
    if len(devices) > 1 and num_seeds % len(devices) == 0:
        mesh = jax.sharding.Mesh(np.array(devices), ("seeds",))
        keys = jax.device_put(keys, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds")))
    return keys


def jit_over_seeds(fn, keys: chex.Array, donate: bool = False):
    """`jit(vmap(fn))` for a per-seed function (`trainer.init`, `trainer.train_chunk`) whose outputs
    keep the seed axis laid out like `keys` (see `seed_keys`).

    jit carries the seed sharding of its inputs through the computation, but on its own it leaves
    replicated on every device the outputs that do not depend on them (zero-initialised Adam moments,
    counters, the sharing plan's constants) and those of custom calls it cannot split (the LAPACK QR
    of the orthogonal init: init's parameters). Naming the output sharding keeps every leaf's seeds
    on their own device. `donate` reuses the input state's buffers (for `train_chunk`).
    """
    sharding = keys.sharding if isinstance(keys.sharding, jax.sharding.NamedSharding) else None
    return jax.jit(jax.vmap(fn), out_shardings=sharding, donate_argnums=(0,) if donate else ())
