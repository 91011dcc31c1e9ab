"""The six sharing methods as data: one table of their properties.

One masked actor-critic serves every method. `METHOD_TABLE` describes each method by what it
decides, and nothing else in the project looks at a method's name:
- `param_sets`: "shared" (one set for all agents), "per_cluster" (one per identity cluster,
  SePS) or "per_agent" (NoPS). `SharingPlan.param_group[N]` is each agent's set;
- `masks`: "none", "random" (each agent's own random neuron mask, SNP-PS) or "cluster" (the
  masks of the agent's identity cluster, AdaPS). `SharingPlan.actor_masks` / `critic_masks`;
- `agent_id`: whether the one-hot agent id is appended to the observation (FuPS+id);
- `identity_phase`: whether the run starts with shared pretraining, the identity VAE and k-means.

`adaps_jax.sharing` turns these properties into parameter sets and masks. Plain data without JAX,
so that the configuration and the command lines can read it without starting JAX.
"""
from __future__ import annotations

from typing import NamedTuple

PARAM_SETS = ("shared", "per_cluster", "per_agent")
MASKS = ("none", "random", "cluster")


class Method(NamedTuple):
    """A sharing method by its properties."""

    name: str  # the config and command-line name
    label: str  # as figures and tables print it
    param_sets: str  # one of PARAM_SETS
    masks: str  # one of MASKS
    agent_id: bool
    identity_phase: bool


METHOD_TABLE: dict[str, Method] = {m.name: m for m in (
    Method("adaps", "AdaPS", "shared", "cluster", agent_id=False, identity_phase=True),
    Method("nops", "NoPS", "per_agent", "none", agent_id=False, identity_phase=False),
    Method("fups", "FuPS", "shared", "none", agent_id=False, identity_phase=False),
    Method("fups_id", "FuPS+id", "shared", "none", agent_id=True, identity_phase=False),
    Method("seps", "SePS", "per_cluster", "none", agent_id=False, identity_phase=True),
    Method("snp_ps", "SNP-PS", "shared", "random", agent_id=False, identity_phase=False),
)}
METHODS = tuple(METHOD_TABLE)
# The method the paper proposes: the one compared against each baseline.
PROPOSED = "adaps"
# The reference for relative model sizes: one shared parameter set.
SIZE_REFERENCE = "fups"


def used_parameter_sets(method: Method, num_agents: int, num_clusters: int) -> int:
    """Parameter sets the agents actually train (SePS: one per cluster found)."""
    return {"shared": 1, "per_cluster": num_clusters, "per_agent": num_agents}[method.param_sets]
