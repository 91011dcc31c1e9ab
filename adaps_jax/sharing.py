"""From a method's properties (adaps_jax.methods) to what the network uses: how many parameter
sets it allocates (`MethodSpec`, static) and, per seed, each agent's parameter set and neuron masks
(`SharingPlan`, data).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import chex
import jax
import jax.numpy as jnp

from adaps_jax.masks import cluster_masks
from adaps_jax.methods import METHOD_TABLE, Method, used_parameter_sets

if TYPE_CHECKING:
    from adaps_jax.config import Config, Hyperparams


class MethodSpec(NamedTuple):
    """The static (shape-deciding) part of a method in one scenario."""

    method: Method
    num_param_sets: int  # sets allocated: SePS allocates its maximum number of clusters

    @property
    def uses_masks(self) -> bool:
        return self.method.masks != "none"

    @property
    def add_agent_id(self) -> bool:
        return self.method.agent_id


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
    method = METHOD_TABLE[config.method]
    max_clusters = min(config.num_clusters or config.max_clusters, num_agents)
    return MethodSpec(method, used_parameter_sets(method, num_agents, max_clusters))


def plain_plan(spec: MethodSpec, config: Config, num_agents: int, key: chex.PRNGKey,
               hparams: Hyperparams | None = None) -> SharingPlan:
    """The plan of a method without an identity phase (FuPS, FuPS+id, NoPS, SNP-PS), and the
    pretraining plan of AdaPS and SePS: every agent on parameter set 0 (NoPS: its own), every
    neuron kept (SNP-PS: its random masks)."""
    hparams = hparams or config.hyperparams()
    zeros = jnp.zeros((num_agents,), jnp.int32)
    group = jnp.arange(num_agents, dtype=jnp.int32) if spec.method.param_sets == "per_agent" else zeros
    actor_masks = critic_masks = ()
    if spec.method.masks == "cluster":  # every neuron until the identity phase has found the clusters
        actor_masks = critic_masks = tuple(jnp.ones((num_agents, w), bool) for w in config.hidden_sizes)
    elif spec.method.masks == "random":
        actor_key, critic_key = jax.random.split(key)
        actor_masks = random_neuron_masks(actor_key, num_agents, config.hidden_sizes, hparams.pruning_rate)
        critic_masks = random_neuron_masks(critic_key, num_agents, config.hidden_sizes, hparams.pruning_rate)
    return SharingPlan(
        param_group=group, cluster=zeros, num_clusters=jnp.ones((), jnp.int32),
        identity=jnp.zeros((num_agents, config.latent_size)), actor_masks=actor_masks, critic_masks=critic_masks,
    )


def random_neuron_masks(key: chex.PRNGKey, num_agents: int, widths: tuple[int, ...], pruning_rate) -> tuple:
    """SNP-PS: each agent drops exactly round(pruning_rate * width) random neurons of each layer.
    `pruning_rate` may be traced (a swept value): the count is compared, never used as a shape."""
    masks = []
    for layer_key, width in zip(jax.random.split(key, len(widths)), widths):
        keep = width - jnp.round(pruning_rate * width)
        ranks = jax.vmap(lambda k: jax.random.permutation(k, width))(jax.random.split(layer_key, num_agents))
        masks.append(ranks < keep)
    return tuple(masks)


def cluster_plan(
    spec: MethodSpec, config: Config, vectors: chex.Array, assignment: chex.Array, centres: chex.Array,
    num_clusters: chex.Array, key: chex.PRNGKey, hparams: Hyperparams | None = None,
) -> SharingPlan:
    """The plan after the identity phase: SePS one parameter set per cluster, AdaPS one shared set
    under cluster masks.

    AdaPS centres the cluster centres on their mean before mapping them to masks, so that clusters
    differ by direction in the identity space whatever the latent's offset. With one cluster there
    is nothing to tell apart and every neuron is kept (AdaPS is FuPS), whatever lambda: its centred
    centre is the zero vector, whose mask probabilities are all exactly 0.5, so lambda >= 0.5 would
    otherwise drop every neuron and leave a network whose output ignores its input.
    """
    hparams = hparams or config.hyperparams()
    group = assignment if spec.method.param_sets == "per_cluster" else jnp.zeros_like(assignment)
    actor = critic = ()
    if spec.method.masks == "cluster":
        used = (jnp.arange(centres.shape[0]) < num_clusters)[:, None]
        mean = jnp.sum(centres * used, 0) / num_clusters
        centred = jnp.where(used, centres - mean, 0.0)
        single = num_clusters == 1
        actor_key, critic_key = jax.random.split(key)
        actor, critic = (tuple(m[assignment] | single for m in cluster_masks(k, centred, config.hidden_sizes,
                                                                               hparams.mask_threshold))
                         for k in (actor_key, critic_key))
    return SharingPlan(param_group=group, cluster=assignment, num_clusters=num_clusters, identity=vectors,
                       actor_masks=actor, critic_masks=critic)
