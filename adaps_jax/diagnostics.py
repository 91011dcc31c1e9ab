"""What a run reports besides returns: model size, policy diversity, clusters and mask overlap."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from adaps_jax.masks import mask_overlap
from adaps_jax.methods import SharingPlan
from adaps_jax.networks import ActorCritic


def parameters_per_set(network: ActorCritic) -> int:
    """Trainable parameters of one actor-critic parameter set (no allocation: shapes only)."""
    shapes = jax.eval_shape(network.init, jax.random.PRNGKey(0))
    return sum(int(np.prod(s.shape[1:])) for s in jax.tree.leaves(shapes))


def used_parameter_sets(method: str, num_agents: int, num_clusters: int) -> int:
    """Parameter sets agents actually train: NoPS one per agent, SePS one per cluster, else one."""
    return {"nops": num_agents, "seps": num_clusters}.get(method, 1)


def js_distance(p: chex.Array, q: chex.Array) -> chex.Array:
    """Jensen-Shannon distance (square root of the divergence in bits, in [0, 1]) over the last axis."""
    m = 0.5 * (p + q)

    def kl(a: chex.Array, b: chex.Array) -> chex.Array:
        return jnp.sum(jnp.where(a > 0, a * (jnp.log2(jnp.maximum(a, 1e-30)) - jnp.log2(jnp.maximum(b, 1e-30))), 0.0), -1)

    return jnp.sqrt(jnp.maximum(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0))


def policy_diversity(
    network: ActorCritic, params: dict, plan: SharingPlan, observations: chex.Array, agents: chex.Array
) -> chex.Array:
    """Mean pairwise Jensen-Shannon distance between agents' action distributions.

    Every agent (with its own parameter set, mask and id) is shown the same observations (S, D);
    the figure is the mean over observations and over pairs of the chosen `agents` (indices) of the
    JS distance between their action distributions. 0 means identical policies (FuPS by construction).
    """
    num_agents = network.num_agents
    shared = jnp.broadcast_to(observations[:, None, :], (observations.shape[0], num_agents, observations.shape[1]))
    probs = jax.nn.softmax(network.logits(params, plan, shared))[:, agents]  # (S, M, A)
    pairwise = js_distance(probs[:, :, None, :], probs[:, None, :, :])  # (S, M, M)
    m = agents.shape[0]
    off_diagonal = 1.0 - jnp.eye(m)
    return jnp.sum(pairwise.mean(0) * off_diagonal) / jnp.maximum(m * (m - 1), 1)


def diversity_agents(num_agents: int, max_agents: int) -> np.ndarray:
    """The agents compared: all, or an evenly spaced subset (so every type is represented)."""
    if num_agents <= max_agents:
        return np.arange(num_agents)
    return np.unique(np.linspace(0, num_agents - 1, max_agents).round().astype(int))


def plan_mask_overlap(plan: SharingPlan) -> np.ndarray | None:
    """Pairwise Jaccard overlap of the agents' combined actor+critic masks; None without masks."""
    if not plan.actor_masks:
        return None
    return np.asarray(mask_overlap(tuple(plan.actor_masks) + tuple(plan.critic_masks)))
