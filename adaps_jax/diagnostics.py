"""What a run reports besides returns: model size, policy diversity, clusters and mask overlap.

    report = diagnose(trainer, state)   # state: a trained RunnerState vmapped over seeds

`diagnose` gives the JSON-ready figures of a trained state (per seed where they differ); the run's
summary adds the return statistics to them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import chex
import jax
import jax.numpy as jnp
import numpy as np

from adaps_jax.identity import adjusted_rand_index
from adaps_jax.masks import mask_overlap
from adaps_jax.methods import METHOD_TABLE, SIZE_REFERENCE, used_parameter_sets
from adaps_jax.networks import ActorCritic
from adaps_jax.sharing import SharingPlan, method_spec

if TYPE_CHECKING:
    from adaps_jax.trainer import RunnerState, Trainer


def parameters_per_set(network: ActorCritic) -> int:
    """Trainable parameters of one actor-critic parameter set (no allocation: shapes only)."""
    shapes = jax.eval_shape(network.init, jax.random.PRNGKey(0))
    return sum(int(np.prod(s.shape[1:])) for s in jax.tree.leaves(shapes))


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


def plan_mask_overlap(plan: SharingPlan) -> chex.Array:
    """(N, N) pairwise Jaccard overlap of the agents' combined actor+critic masks (a plan with masks)."""
    return mask_overlap(tuple(plan.actor_masks) + tuple(plan.critic_masks))


def mask_overlap_means(plan: SharingPlan) -> list[float]:
    """Per seed of a plan vmapped over seeds, the mean mask overlap of distinct pairs of agents
    (1 with a single agent)."""
    means = []
    for matrix in np.asarray(jax.jit(jax.vmap(plan_mask_overlap))(plan)):
        off = ~np.eye(len(matrix), dtype=bool)
        means.append(float(matrix[off].mean()) if off.any() else 1.0)
    return means


def cluster_mask_table(plan: SharingPlan) -> dict:
    """One seed's masks per cluster (those of the cluster's first agent; all its agents share
    them): actor / critic, per cluster, per layer, 0/1 per neuron."""
    cluster = np.asarray(plan.cluster)
    first = [int(np.argmax(cluster == k)) for k in range(int(plan.num_clusters))]
    return {part: [[np.asarray(layer[agent], int).tolist() for layer in masks] for agent in first]
            for part, masks in (("actor", plan.actor_masks), ("critic", plan.critic_masks))}


def diagnose(trainer: Trainer, state: RunnerState) -> dict:
    """Model size, clusters, identity, masks and policy diversity of a trained state vmapped over
    seeds. Lists hold one entry per seed; None where the method has no such thing."""
    config, env = trainer.config, trainer.env
    method = METHOD_TABLE[config.method]
    seeds = jax.tree.leaves(state.params)[0].shape[0]
    plan = jax.device_get(state.plan)
    num_clusters = [int(k) for k in plan.num_clusters]
    per_set = parameters_per_set(trainer.network)
    reference = ActorCritic(method_spec(config.replace(method=SIZE_REFERENCE), env.num_agents), env.num_agents,
                            env.obs_dim, env.num_actions, config.hidden_sizes)
    params = [per_set * used_parameter_sets(method, env.num_agents, k) for k in num_clusters]
    agents = jnp.asarray(diversity_agents(env.num_agents, config.diversity_max_agents))
    pools = state.obs.agents_view.reshape(seeds, -1, env.obs_dim)[:, : config.diversity_observations]
    diversity = jax.jit(jax.vmap(lambda p, seed_plan, pool: policy_diversity(trainer.network, p, seed_plan, pool, agents)))(
        state.params, state.plan, pools)
    diversity = [float(d) for d in np.asarray(diversity)]
    report = {
        "params": int(np.max(params)),
        "params_per_seed": params,
        "relative_size": float(np.max(params)) / parameters_per_set(reference),
        "num_param_sets": trainer.spec.num_param_sets,
        "clusters": None, "num_clusters": None, "cluster_ari": None, "identity_vectors": None,
        "cluster_masks": None, "mask_overlap_mean": None,
        "policy_diversity": diversity,
        "policy_diversity_mean": float(np.mean(diversity)),
    }
    if method.identity_phase:
        clusters = np.asarray(plan.cluster).tolist()
        report.update(clusters=clusters, num_clusters=num_clusters,
                      cluster_ari=[adjusted_rand_index(env.agent_types, c) for c in clusters],
                      identity_vectors=np.asarray(plan.identity).round(6).tolist())  # per seed, (N, latent_size)
    if method.masks == "cluster":
        report["cluster_masks"] = [cluster_mask_table(jax.tree.map(lambda x: x[seed], plan)) for seed in range(seeds)]
    if method.masks != "none":
        report["mask_overlap_mean"] = mask_overlap_means(state.plan)
    return report
