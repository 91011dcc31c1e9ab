"""The masked actor-critic shared by all six methods.

Actor and critic are separate MLPs (64-64 ReLU by default) initialised as in the SePS reference
code: the first layer with PyTorch's default `nn.Linear` init (uniform in +-1/sqrt(fan_in), bias
too), every later layer orthogonal with gain sqrt(2) and zero bias, except the actor head, whose
gain is 0.01 (a near-uniform first policy). Parameters carry a leading axis of
`num_param_sets`; each agent uses set `plan.param_group[agent]` and, when the method has masks,
multiplies its hidden activations by its own boolean neuron masks (equal to f(x; phi * M), see
`adaps_jax.masks.apply_neuron_masks`).
"""
from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from adaps_jax.sharing import MethodSpec, SharingPlan


@jax.custom_batching.custom_vmap
def _qr(matrix: chex.Array) -> tuple[chex.Array, chex.Array]:
    q, r = jnp.linalg.qr(matrix)
    return q, r


@_qr.def_vmap
def _qr_one_at_a_time(axis_size: int, in_batched: list, matrix: chex.Array):
    """Batched QR as a loop of single QRs.

    jaxlib's batched LAPACK kernels split a batch over XLA:CPU's intra-op thread pool and block a
    pool thread until the pieces finish. When two such kernels run at once (the actor's and the
    critic's init under vmap over seeds) they can block every pool thread and the program never
    finishes (jax 0.10.2, 2 cores; even with --xla_cpu_multi_thread_eigen=false). A single matrix
    never uses the pool. Same matrices, same values; init only, so the loop costs nothing that
    matters.
    """
    del axis_size
    if not in_batched[0]:
        return _qr(matrix), (False, False)
    return jax.lax.map(_qr, matrix), (True, True)


def orthogonal(scale: float) -> nn.initializers.Initializer:
    """`jax.nn.initializers.orthogonal(scale)` for 2-D kernels, with the same values, using `_qr`."""

    def init(key: chex.PRNGKey, shape: Sequence[int], dtype=jnp.float32) -> chex.Array:
        n_rows, n_cols = shape
        z = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), dtype)
        q, r = _qr(z)
        q = q * jnp.sign(jnp.diagonal(r))[None, :]
        return scale * (q.T if n_rows < n_cols else q)

    return init


def torch_linear_default(fan_in: int) -> nn.initializers.Initializer:
    """PyTorch's default `nn.Linear` init of weight and bias: uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key: chex.PRNGKey, shape: Sequence[int], dtype=jnp.float32) -> chex.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class MaskedMLP(nn.Module):
    """ReLU MLP whose hidden activations are multiplied by optional neuron masks."""

    hidden_sizes: Sequence[int]
    output_size: int
    output_gain: float

    @nn.compact
    def __call__(self, x: chex.Array, masks: Sequence[chex.Array] = ()) -> chex.Array:
        for i, width in enumerate(self.hidden_sizes):
            if i == 0:  # SePS leaves its first layer at PyTorch's default init
                first = torch_linear_default(x.shape[-1])
                layer = nn.Dense(width, kernel_init=first, bias_init=first)
            else:
                layer = nn.Dense(width, kernel_init=orthogonal(np.sqrt(2)))
            x = nn.relu(layer(x))
            if masks:
                x = x * masks[i]
        return nn.Dense(self.output_size, kernel_init=orthogonal(self.output_gain))(x)


class ActorCritic:
    """Policy logits and values for every agent at once, under a method's sharing plan.

    Observations have shape (..., N, D); outputs (..., N, A) logits and (..., N) values.
    """

    def __init__(self, spec: MethodSpec, num_agents: int, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int]):
        self.spec = spec
        self.num_agents = num_agents
        self.input_dim = obs_dim + (num_agents if spec.add_agent_id else 0)
        self.actor = MaskedMLP(tuple(hidden_sizes), num_actions, 0.01)
        self.critic = MaskedMLP(tuple(hidden_sizes), 1, float(np.sqrt(2)))  # SePS: its hidden layers' gain

    def init(self, key: chex.PRNGKey) -> dict:
        """Independently initialised parameter sets, stacked on a leading axis."""
        dummy = jnp.zeros((1, self.input_dim))
        keys = jax.random.split(key, 2 * self.spec.num_param_sets).reshape(2, self.spec.num_param_sets, -1)
        return {
            "actor": jax.vmap(lambda k: self.actor.init(k, dummy))(keys[0]),
            "critic": jax.vmap(lambda k: self.critic.init(k, dummy))(keys[1]),
        }

    def inputs(self, obs: chex.Array) -> chex.Array:
        if not self.spec.add_agent_id:
            return obs
        ids = jnp.broadcast_to(jnp.eye(self.num_agents, dtype=obs.dtype), obs.shape[:-1] + (self.num_agents,))
        return jnp.concatenate([obs, ids], axis=-1)

    def _apply(self, module: MaskedMLP, params: dict, plan: SharingPlan, masks: tuple, obs: chex.Array) -> chex.Array:
        x = self.inputs(obs)
        masks = masks if self.spec.uses_masks else ()
        if self.spec.num_param_sets == 1:
            return module.apply(jax.tree.map(lambda p: p[0], params), x, masks)
        # Several sets: each agent's set, then a batched matmul over agents. NoPS's param_group is
        # arange(N), so its stacked sets are already in agent order: no gather (whose gradient is a
        # scatter-add over all N sets).
        if self.spec.method.param_sets == "per_agent":
            per_agent = params
        else:
            per_agent = jax.tree.map(lambda p: p[plan.param_group], params)
        return jax.vmap(module.apply, in_axes=(0, -2, 0), out_axes=-2)(per_agent, x, masks)

    def logits(self, params: dict, plan: SharingPlan, obs: chex.Array) -> chex.Array:
        return self._apply(self.actor, params["actor"], plan, plan.actor_masks, obs)

    def values(self, params: dict, plan: SharingPlan, obs: chex.Array) -> chex.Array:
        return self._apply(self.critic, params["critic"], plan, plan.critic_masks, obs)[..., 0]


def masked_logits(logits: chex.Array, action_mask: chex.Array) -> chex.Array:
    """Invalid actions get a large negative logit (not -inf, which would make NaN gradients)."""
    return jnp.where(action_mask, logits, -1e9)
