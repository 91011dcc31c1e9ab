"""The whole training as pure functions: `make_train(config)` -> `Trainer` with `init(key)`,
the chunk functions and `train(key)`, each vmappable over seed keys.

Data flow of one A2C update: `num_envs` environment copies step `n_steps` times with every agent
acting from its own (masked, possibly separate) policy; copies that end an episode are reset in
place; the rollout's n-step returns and the A2C loss give one Adam step. Two words, two ideas:
a *chunk* is the compiled work between two logging points (a `lax.scan` of updates, then an
evaluation on separate environment copies); a *logging point* is where the host, after a chunk,
writes one metrics row per seed and a checkpoint. The host loops only over chunks.

AdaPS and SePS first pretrain, as SePS's code does: every agent acts from parameter set 0 with
every neuron kept (FuPS) for `pretrain_steps` environment steps, logged like any other chunk,
while a uniform sample of the transitions is kept. `identify` then turns the sample into the
sharing plan (VAE, k-means, masks) and RL goes on from the pretrained parameters and optimiser
state: AdaPS's one network under its cluster masks; SePS's set 0 for cluster 0, the other sets
as initialised (`continue_pretraining=False` starts every parameter and the optimiser afresh).

    state = init(key)
    for log in range(config.num_logs):
        state, metrics = trainer.chunk(log)(state)   # pretrain_chunk, then identify, then train_chunk
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import envs
from adaps_jax import identity
from adaps_jax.a2c import Rollout, a2c_loss, make_optimizer, policy_logits
from adaps_jax.config import Config, Hyperparams
from adaps_jax.sharing import MethodSpec, SharingPlan, cluster_plan, method_spec, plain_plan
from adaps_jax.networks import ActorCritic
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
    update: chex.Array  # () updates done so far, pretraining included
    samples: identity.Transitions | None  # (S, N, ...) pretraining sample; None outside pretraining
    sample_slots: chex.Array | None  # (pretraining steps,) buffer slot of each step (identity.sample_slots)
    identity_key: chex.PRNGKey  # seeds the VAE, k-means and masks
    hparams: Hyperparams | None  # () arrays of swept values; None: the config's, compiled in as constants


class Episodes(NamedTuple):
    """Episodes completed in a rollout, summed."""

    count: chex.Array  # ()
    team_return: chex.Array  # () summed over agents and episodes
    type_return: chex.Array  # (num_types,) the same, split by agent type


class RolloutResult(NamedTuple):
    state: "RunnerState"
    rollout: Rollout
    episodes: Episodes


class UpdateResult(NamedTuple):
    state: "RunnerState"
    rollout: Rollout
    info: "UpdateInfo"


class UpdateInfo(NamedTuple):
    """What one A2C update reports (per seed)."""

    episodes: Episodes
    entropy: chex.Array  # () mean policy entropy per agent
    actor_loss: chex.Array
    value_loss: chex.Array
    finite: chex.Array  # () loss and gradient finite


class Evaluation(NamedTuple):
    """Mean team return of whole evaluation episodes (summed over agents), and per agent type."""

    greedy: chex.Array  # ()
    sampled: chex.Array  # ()
    greedy_type: chex.Array  # (num_types,)
    sampled_type: chex.Array  # (num_types,)


class ChunkMetrics(NamedTuple):
    """Sums and means over one chunk of updates, and the evaluation after it (per seed)."""

    episodes: chex.Array  # () episodes completed
    return_sum: chex.Array  # () sum over completed episodes of the team return (summed over agents)
    type_return_sum: chex.Array  # (num_types,) the same, split by agent type
    entropy: chex.Array  # () mean policy entropy per agent
    actor_loss: chex.Array
    value_loss: chex.Array
    first_nonfinite_update: chex.Array  # () index of the first update with a non-finite loss or gradient, or -1
    evaluation: Evaluation  # NaN when eval_episodes is 0


class Trainer:
    """Pure training functions for one config; build with `make_train`."""

    def __init__(self, config: Config, env: MultiAgentEnv):
        self.config = config.validate(env.num_agents)
        self.env = env
        self.spec: MethodSpec = method_spec(config, env.num_agents)
        self.network = ActorCritic(self.spec, env.num_agents, env.obs_dim, env.num_actions, config.hidden_sizes)
        self.type_onehot = jnp.asarray(np.eye(env.num_types)[env.agent_types], jnp.float32)  # (N, types)
        self.has_identity_phase = config.has_identity_phase

    def hyperparams(self, state: RunnerState) -> Hyperparams:
        """The state's swept values, or the config's."""
        return self.config.hyperparams() if state.hparams is None else state.hparams

    def optimizer(self, hparams: Hyperparams) -> optax.GradientTransformation:
        """The optimiser at these values; its state's structure never depends on them."""
        return make_optimizer(self.config, hparams)

    # ---- acting and learning -------------------------------------------------------------------

    def rollout(self, state: RunnerState) -> RolloutResult:
        """`n_steps` steps of all copies; returns the rollout and the episodes completed in it."""
        num_envs, network = self.config.num_envs, self.network

        def env_step(carry: RunnerState, _):
            key, act_key, reset_key = jax.random.split(carry.key, 3)
            obs = carry.obs
            logits = policy_logits(network, carry.params, carry.plan, obs.agents_view, obs.action_mask, self.config)
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
            step = (obs.agents_view, obs.action_mask, action, ts.reward, ts.observation.agents_view, terminated, truncated)
            return next_carry, (step, Episodes(done.sum(), finished.sum(), finished.sum(0) @ self.type_onehot))

        state, (steps, episodes) = jax.lax.scan(env_step, state, None, self.config.n_steps)
        rollout = Rollout(*steps, final_obs=state.obs.agents_view)
        return RolloutResult(state, rollout, jax.tree.map(lambda x: x.sum(0), episodes))

    def update(self, state: RunnerState) -> UpdateResult:
        """One A2C update: a rollout, the loss, one optimiser step."""
        hparams = self.hyperparams(state)
        state, rollout, episodes = self.rollout(state)
        grads, info = jax.grad(a2c_loss, has_aux=True)(state.params, self.network, state.plan, rollout, self.config,
                                                       hparams)
        updates, opt_state = self.optimizer(hparams).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(info.total) & jnp.isfinite(optax.tree.norm(grads))
        state = state.replace(params=params, opt_state=opt_state, update=state.update + 1)
        return UpdateResult(state, rollout, UpdateInfo(episodes, info.entropy / self.env.num_agents, info.actor,
                                                       info.value, finite))

    def _train_update(self, state: RunnerState) -> tuple[RunnerState, UpdateInfo]:
        result = self.update(state)
        return result.state, result.info

    def _pretrain_update(self, state: RunnerState) -> tuple[RunnerState, UpdateInfo]:
        """An update of the shared pretraining that also stores its sampled transitions."""
        steps_per_update = self.config.steps_per_update
        start = state.update * steps_per_update
        state, rollout, info = self.update(state)

        def stream(x: chex.Array) -> chex.Array:  # (T, E, N, ...) -> (T*E, N, ...): stream order
            return x.reshape((-1,) + x.shape[2:])

        batch = identity.Transitions(obs=stream(rollout.obs), action=stream(rollout.action),
                                     reward=stream(rollout.reward), next_obs=stream(rollout.next_obs))
        slots = jax.lax.dynamic_slice(state.sample_slots, (start,), (steps_per_update,))
        return state.replace(samples=identity.store_samples(state.samples, batch, slots)), info

    def _chunk(self, state: RunnerState, update_fn: Callable, num_updates: int) -> tuple[RunnerState, ChunkMetrics]:
        first_update = state.update
        state, info = jax.lax.scan(lambda s, _: update_fn(s), state, None, num_updates)
        first_bad = jnp.where(info.finite.all(), -1, first_update + jnp.argmin(info.finite))
        return state, ChunkMetrics(
            episodes=info.episodes.count.sum(), return_sum=info.episodes.team_return.sum(),
            type_return_sum=info.episodes.type_return.sum(0), entropy=info.entropy.mean(),
            actor_loss=info.actor_loss.mean(), value_loss=info.value_loss.mean(),
            first_nonfinite_update=first_bad.astype(jnp.int32), evaluation=self.evaluate(state),
        )

    def train_chunk(self, state: RunnerState) -> tuple[RunnerState, ChunkMetrics]:
        """`updates_per_log` A2C updates of one seed, then the evaluation."""
        return self._chunk(state, self._train_update, self.config.updates_per_log)

    def pretrain_chunk(self, state: RunnerState) -> tuple[RunnerState, ChunkMetrics]:
        """`updates_per_pretrain_log` updates of the shared pretraining (AdaPS, SePS), then the evaluation."""
        return self._chunk(state, self._pretrain_update, self.config.updates_per_pretrain_log)

    def pretrain_chunk_then_identify(self, state: RunnerState) -> tuple[RunnerState, ChunkMetrics]:
        """The last pretraining chunk, then the identity phase (so no checkpoint holds a
        finished pretraining without its plan)."""
        state, metrics = self.pretrain_chunk(state)
        return self.identify(state), metrics

    def chunk(self, log: int) -> Callable[[RunnerState], tuple[RunnerState, ChunkMetrics]]:
        """The per-seed function that computes logging point `log` (0-based)."""
        pretrain_logs = self.config.pretrain_logs
        if log < pretrain_logs - 1:
            return self.pretrain_chunk
        if log == pretrain_logs - 1:
            return self.pretrain_chunk_then_identify
        return self.train_chunk

    # ---- evaluation ------------------------------------------------------------------------------

    def evaluate(self, state: RunnerState) -> Evaluation:
        """`eval_episodes` whole episodes with greedy actions and as many with sampled actions, on
        fresh environment copies of their own. Reads the state, changes nothing in it: training
        goes on exactly as without evaluation."""
        episodes = self.config.eval_episodes
        types = self.env.num_types
        if episodes == 0:
            nan = jnp.full((), jnp.nan)
            return Evaluation(nan, nan, jnp.full((types,), jnp.nan), jnp.full((types,), jnp.nan))
        key = jax.random.fold_in(state.key, 0x5EED)  # a key of its own: the training keys stay untouched
        reset_key, act_key = jax.random.split(key)
        greedy = jnp.arange(2 * episodes) < episodes  # first half greedy, second half sampled
        env_state, ts = jax.vmap(self.env.reset)(jax.random.split(reset_key, 2 * episodes))

        def step(carry, step_key):
            env_state, obs, running, total = carry
            logits = policy_logits(self.network, state.params, state.plan, obs.agents_view, obs.action_mask, self.config)
            action = jnp.where(greedy[:, None], jnp.argmax(logits, -1), jax.random.categorical(step_key, logits))
            env_state, ts = jax.vmap(self.env.step)(env_state, action)
            total = total + jnp.where(running[:, None], ts.reward, 0.0)
            return (env_state, ts.observation, running & ~ts.last(), total), None

        carry = (env_state, ts.observation, jnp.ones((2 * episodes,), bool), jnp.zeros((2 * episodes, self.env.num_agents)))
        (_, _, _, total), _ = jax.lax.scan(step, carry, jax.random.split(act_key, self.env.time_limit))
        per_type = total @ self.type_onehot  # (2M, types)
        return Evaluation(total[:episodes].sum(-1).mean(), total[episodes:].sum(-1).mean(),
                          per_type[:episodes].mean(0), per_type[episodes:].mean(0))

    # ---- set-up and the identity phase -----------------------------------------------------------

    def samples_per_agent(self) -> int:
        """Transitions of each agent kept for the VAE: `identity_samples` split between the agents,
        at most every pretraining step."""
        c = self.config
        stream = c.pretrain_updates * c.steps_per_update
        return max(1, min(c.identity_samples // self.env.num_agents, stream))

    def init(self, key: chex.PRNGKey, hparams: Hyperparams | None = None) -> RunnerState:
        """The state before the first update (AdaPS and SePS: before pretraining). `hparams`
        (swept values, arrays) replace the config's numeric fields for the whole run."""
        key, env_key, params_key, plan_key, identity_key, slots_key = jax.random.split(key, 6)
        env_state, ts = jax.vmap(self.env.reset)(jax.random.split(env_key, self.config.num_envs))
        params = self.network.init(params_key)
        n, d = self.env.num_agents, self.env.obs_dim
        samples = slots = None
        if self.has_identity_phase:
            kept = self.samples_per_agent()
            samples = identity.Transitions(
                obs=jnp.zeros((kept, n, d)), action=jnp.zeros((kept, n), jnp.int32),
                reward=jnp.zeros((kept, n)), next_obs=jnp.zeros((kept, n, d)),
            )
            slots = identity.sample_slots(slots_key, self.config.pretrain_updates * self.config.steps_per_update, kept)
        values = self.config.hyperparams() if hparams is None else hparams
        return RunnerState(
            params=params, opt_state=self.optimizer(values).init(params),
            plan=plain_plan(self.spec, self.config, n, plan_key, values),
            env_state=env_state, obs=ts.observation,
            episode_return=jnp.zeros((self.config.num_envs, n)),
            key=key, update=jnp.zeros((), jnp.int32),
            samples=samples, sample_slots=slots, identity_key=identity_key, hparams=hparams,
        )

    def identities(self, state: RunnerState) -> identity.IdentityResult:
        """The identity VAE trained on the pretraining sample: one identity vector per agent."""
        config, hparams = self.config, self.hyperparams(state)
        return identity.train_identity_vae(
            jax.random.fold_in(state.identity_key, 0), state.samples, num_actions=self.env.num_actions,
            latent_size=config.latent_size, epochs=config.vae_epochs, batch_size=config.vae_batch_size,
            learning_rate=hparams.vae_learning_rate, kl_weight=hparams.vae_kl_weight,
        )

    def clusters(self, state: RunnerState, vectors: chex.Array, selection: str | None = None) -> tuple:
        """k-means of the identity vectors: (assignment (N,), centres (max K, m), K found)."""
        config = self.config
        max_clusters = min(config.num_clusters or config.max_clusters, self.env.num_agents)
        return identity.cluster_agents(
            jax.random.fold_in(state.identity_key, 1), vectors, config.num_clusters, max_clusters,
            config.kmeans_restarts, selection=selection or config.cluster_selection,
        )

    def identify(self, state: RunnerState, vectors: chex.Array | None = None) -> RunnerState:
        """The identity phase: the VAE on the pretraining sample (unless its identity `vectors` are
        given), k-means, and the sharing plan. The sample is dropped; training continues from the
        pretrained state (or afresh)."""
        config = self.config
        if vectors is None:
            vectors = self.identities(state).identity
        assignment, centres, num_clusters = self.clusters(state, vectors)
        mask_key, fresh_key = jax.random.fold_in(state.identity_key, 2), jax.random.fold_in(state.identity_key, 3)
        hparams = self.hyperparams(state)
        plan = cluster_plan(self.spec, config, vectors, assignment, centres, num_clusters, mask_key, hparams)
        state = state.replace(plan=plan, samples=None, sample_slots=None)
        if not config.continue_pretraining:
            params = self.network.init(fresh_key)
            state = state.replace(params=params, opt_state=self.optimizer(hparams).init(params))
        return state

    def pretrain(self, key: chex.PRNGKey, hparams: Hyperparams | None = None) -> tuple[RunnerState, ChunkMetrics]:
        """init and every pretraining chunk (AdaPS, SePS): the state `identify` takes."""
        return jax.lax.scan(lambda s, _: self.pretrain_chunk(s), self.init(key, hparams), None,
                            self.config.pretrain_logs)

    def train(self, key: chex.PRNGKey, hparams: Hyperparams | None = None) -> tuple[RunnerState, ChunkMetrics]:
        """The whole run for one seed: init, pretraining and identity phase (AdaPS, SePS), then the
        RL chunks; metrics stacked over all `num_logs` logging points."""
        state, chunks = self.init(key, hparams), []
        if self.has_identity_phase:
            state, pretrain = self.pretrain(key, hparams)
            state = self.identify(state)
            chunks.append(pretrain)
        rl_logs = self.config.num_logs - self.config.pretrain_logs
        state, rl = jax.lax.scan(lambda s, _: self.train_chunk(s), state, None, rl_logs)
        chunks.append(rl)
        return state, jax.tree.map(lambda *xs: jnp.concatenate(xs), *chunks)

    def env_steps(self, logs_done: int) -> int:
        """Environment steps per seed after `logs_done` logging points, pretraining included."""
        return self.config.updates_done(logs_done) * self.config.steps_per_update


def compiled_chunks(trainer: Trainer, keys: chex.Array, wrap: Callable | None = None) -> Callable[[int], Callable]:
    """For logging point `log`, `jit_over_seeds` of its chunk function (`wrap`ped if given), each
    of the three kinds (pretraining, pretraining then identity phase, RL) compiled once."""
    cache: dict = {}

    def for_log(log: int) -> Callable:
        fn = trainer.chunk(log)
        if fn not in cache:
            cache[fn] = jit_over_seeds(wrap(fn) if wrap else fn, keys, donate=True)
        return cache[fn]

    return for_log


def make_train(config: Config, env: MultiAgentEnv | None = None) -> Trainer:
    """Builds the training functions of `config` (the environment from `config.scenario` by default)."""
    return Trainer(config, env if env is not None else envs.make(config.scenario))


def seed_keys(seed: int, num_seeds: int) -> chex.Array:
    """One key per seed, sharded over the seed axis across the visible devices (`shard_over_seeds`)."""
    return shard_over_seeds(jax.random.split(jax.random.PRNGKey(seed), num_seeds))


def shard_over_seeds(keys: chex.Array) -> chex.Array:
    """`keys` (one row per trained seed, of any number of variants) sharded over the leading axis
    across the visible devices.

    jit then runs each device's share of the rows on that device (`jit_over_seeds` keeps every
    output sharded the same way). In one process the rows go to as many devices as divide them
    evenly (4 seeds on 16 CPU devices: 4 of them); with `jax.distributed` initialised, the devices
    span every process's machine and must all be used, so their number must divide the rows.
    """
    rows = keys.shape[0]
    devices = jax.devices()
    if jax.process_count() == 1:
        devices = devices[: max(d for d in range(1, len(devices) + 1) if rows % d == 0)]
    if len(devices) > 1 and rows % len(devices) == 0:
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
