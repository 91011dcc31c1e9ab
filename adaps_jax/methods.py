"""The six sharing methods as data: which parameter set and which neuron mask each agent uses.

One masked actor-critic serves every method. A method decides only:
- `num_param_sets` (static) and `SharingPlan.param_group[N]`: the parameter set of each agent
  (FuPS, FuPS+id, SNP-PS, AdaPS: one set; SePS: one per cluster; NoPS: one per agent);
- `uses_masks` (static) and `SharingPlan.actor_masks` / `critic_masks`: each agent's boolean
  hidden-neuron masks (AdaPS: its cluster's; SNP-PS: its own random one; others: none);
- `add_agent_id` (static): whether the one-hot agent id is appended to the observation (FuPS+id).
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from adaps_jax.config import Config
from adaps_jax.masks import cluster_masks


class MethodSpec(NamedTuple):
    """The static (shape-deciding) part of a method."""

    name: str
    num_param_sets: int
    uses_masks: bool
    add_agent_id: bool


@chex.dataclass(frozen=True)
class SharingPlan:
    """The per-seed data part of a method; fixed once RL training starts."""

    param_group: chex.Array  # (N,) int32, index into the stacked parameter sets
    cluster: chex.Array  # (N,) int32, the identity cluster (AdaPS, SePS) or 0
    num_clusters: chex.Array  # () int32, clusters found (1 for methods without identity)
    identity: chex.Array  # (N, latent_size) the agents' identity vectors (zeros without an identity phase)
    actor_masks: tuple  # per hidden layer (N, width) bool; empty when the method has no masks
    critic_masks: tuple


def method_spec(config: Config, num_agents: int) -> MethodSpec:
    sets = {"nops": num_agents, "seps": min(config.num_clusters or config.max_clusters, num_agents)}
    return MethodSpec(
        name=config.method,
        num_param_sets=sets.get(config.method, 1),
        uses_masks=config.method in ("adaps", "snp_ps"),
        add_agent_id=config.method == "fups_id",
    )


def plain_plan(spec: MethodSpec, config: Config, num_agents: int, key: chex.PRNGKey) -> SharingPlan:
    """The plan of a method without an identity phase (FuPS, FuPS+id, NoPS, SNP-PS), and the
    pretraining plan of AdaPS and SePS: every agent on parameter set 0, every neuron kept."""
    zeros = jnp.zeros((num_agents,), jnp.int32)
    group = jnp.arange(num_agents, dtype=jnp.int32) if spec.name == "nops" else zeros
    actor_masks = critic_masks = ()
    if spec.uses_masks:  # AdaPS before its identity phase; SNP-PS's are drawn below
        actor_masks = critic_masks = tuple(jnp.ones((num_agents, w), bool) for w in config.hidden_sizes)
    if spec.name == "snp_ps":
        actor_key, critic_key = jax.random.split(key)
        actor_masks = random_neuron_masks(actor_key, num_agents, config.hidden_sizes, config.pruning_rate)
        critic_masks = random_neuron_masks(critic_key, num_agents, config.hidden_sizes, config.pruning_rate)
    return SharingPlan(
        param_group=group, cluster=zeros, num_clusters=jnp.ones((), jnp.int32),
        identity=jnp.zeros((num_agents, config.latent_size)), actor_masks=actor_masks, critic_masks=critic_masks,
    )


def random_neuron_masks(key: chex.PRNGKey, num_agents: int, widths: tuple[int, ...], pruning_rate: float) -> tuple:
    """SNP-PS: each agent drops exactly round(pruning_rate * width) random neurons of each layer."""
    masks = []
    for layer_key, width in zip(jax.random.split(key, len(widths)), widths):
        keep = width - int(round(pruning_rate * width))
        ranks = jax.vmap(lambda k: jax.random.permutation(k, width))(jax.random.split(layer_key, num_agents))
        masks.append(ranks < keep)
    return tuple(masks)


def cluster_plan(
    spec: MethodSpec, config: Config, vectors: chex.Array, assignment: chex.Array, centres: chex.Array,
    num_clusters: chex.Array, key: chex.PRNGKey,
) -> SharingPlan:
    """The plan of AdaPS (one shared set, cluster masks) or SePS (one set per cluster, no masks).

    AdaPS centres the cluster centres on their mean before mapping them to masks, so that clusters
    differ by direction in the identity space whatever the latent's offset.
    """
    if spec.name == "seps":
        return SharingPlan(
            param_group=assignment, cluster=assignment, num_clusters=num_clusters, identity=vectors,
            actor_masks=(), critic_masks=(),
        )
    used = (jnp.arange(centres.shape[0]) < num_clusters)[:, None]
    mean = jnp.sum(centres * used, 0) / num_clusters
    centred = jnp.where(used, centres - mean, 0.0)
    actor_key, critic_key = jax.random.split(key)
    actor = cluster_masks(actor_key, centred, config.hidden_sizes, config.mask_threshold)
    critic = cluster_masks(critic_key, centred, config.hidden_sizes, config.mask_threshold)
    return SharingPlan(
        param_group=jnp.zeros_like(assignment), cluster=assignment, num_clusters=num_clusters, identity=vectors,
        actor_masks=tuple(m[assignment] for m in actor), critic_masks=tuple(m[assignment] for m in critic),
    )
