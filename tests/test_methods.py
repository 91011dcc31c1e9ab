"""Each method's sharing plan and model size (the paper's Fig. 4 setting: bps-30a-3c)."""
import jax
import numpy as np
import pytest

import envs
from adaps_jax.config import Config, ConfigError
from adaps_jax.diagnostics import diversity_agents, js_distance, parameters_per_set, policy_diversity
from adaps_jax.methods import METHOD_TABLE, used_parameter_sets
from adaps_jax.sharing import cluster_plan, method_spec, plain_plan
from adaps_jax.networks import ActorCritic

# One 64-64 actor (10 inputs, 5 actions) and critic: (10*64+64) + (64*64+64) + (64*5+5) and the same with 1 output.
ACTOR = (10 * 64 + 64) + (64 * 64 + 64) + (64 * 5 + 5)
CRITIC = (10 * 64 + 64) + (64 * 64 + 64) + (64 * 1 + 1)


def _network(method: str, env) -> ActorCritic:
    config = Config(method=method, num_clusters=3)
    return ActorCritic(method_spec(config, env.num_agents), env.num_agents, env.obs_dim, env.num_actions, config.hidden_sizes)


def test_parameter_counts_per_method_on_bps_30a_3c():
    env = envs.make("bps-30a-3c")
    per_set = parameters_per_set(_network("fups", env))
    assert per_set == ACTOR + CRITIC == 10118
    sizes = {m: parameters_per_set(_network(m, env)) * used_parameter_sets(METHOD_TABLE[m], 30, 3)
             for m in ("nops", "seps", "fups", "fups_id", "snp_ps", "adaps")}
    assert sizes["nops"] == 30 * per_set
    assert sizes["seps"] == 3 * per_set
    assert sizes["fups"] == sizes["snp_ps"] == sizes["adaps"] == per_set
    # FuPS+id only widens the first layers by the 30-dimensional one-hot id.
    assert sizes["fups_id"] == per_set + 2 * 30 * 64


@pytest.mark.slow  # initialises all six methods
def test_stacked_parameter_sets_have_the_methods_leading_axis():
    env = envs.make("bps-15a-3c")
    for method, sets in (("fups", 1), ("nops", 15), ("seps", 3), ("adaps", 1)):
        params = _network(method, env).init(jax.random.PRNGKey(0))
        assert {x.shape[0] for x in jax.tree.leaves(params)} == {sets}


def test_snp_ps_masks_drop_exactly_the_pruning_rate_per_agent():
    config = Config(method="snp_ps", pruning_rate=0.25)
    plan = plain_plan(method_spec(config, 6), config, 6, jax.random.PRNGKey(0))
    for m in plan.actor_masks + plan.critic_masks:
        assert m.shape == (6, 64)
        np.testing.assert_array_equal(np.asarray(m).sum(1), 48)
    assert len({tuple(np.asarray(m)) for m in plan.actor_masks[0]}) == 6  # every agent its own mask


def test_nops_plan_gives_each_agent_its_own_set_and_fups_one():
    config = Config(method="nops")
    nops = plain_plan(method_spec(config, 5), config, 5, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(nops.param_group, np.arange(5))
    fups = plain_plan(method_spec(config.replace(method="fups"), 5), config, 5, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(fups.param_group, np.zeros(5))
    assert fups.actor_masks == ()



@pytest.mark.parametrize("threshold", [0.2, 0.6, 0.9])
def test_adaps_with_one_cluster_keeps_every_neuron_whatever_lambda(threshold):
    # One cluster: its centred centre is the zero vector (every mask probability exactly 0.5), which
    # must not leave lambda >= 0.5 a network without neurons; AdaPS is then FuPS.
    config = Config(method="adaps", mask_threshold=threshold)
    spec = method_spec(config, 6)
    centres = jax.random.normal(jax.random.PRNGKey(1), (4, 3))  # room for 4 clusters, as k-means returns
    one = cluster_plan(spec, config, centres[np.zeros(6, int)], np.zeros(6, int), centres, np.int32(1),
                       jax.random.PRNGKey(0))
    for m in one.actor_masks + one.critic_masks:
        assert m.shape == (6, 64) and bool(np.asarray(m).all())
    # Two clusters of the same centres: the masks still drop neurons and differ between the clusters.
    assignment = np.array([0, 0, 0, 1, 1, 1])
    two = cluster_plan(spec, config, centres[assignment], assignment, centres, np.int32(2), jax.random.PRNGKey(0))
    kept = np.concatenate([np.asarray(m) for m in two.actor_masks], axis=1)
    assert not kept.all() and (kept[0] != kept[3]).any()


@pytest.mark.slow  # minutes of compilation; `make test-slow`
def test_policy_diversity_is_zero_for_fups_and_positive_for_nops():
    env = envs.make("bps-15a-3c")
    obs = jax.random.normal(jax.random.PRNGKey(1), (32, env.obs_dim))
    agents = diversity_agents(15, 64)
    out = {}
    for method in ("fups", "nops", "fups_id"):
        config = Config(method=method)
        spec = method_spec(config, 15)
        net = ActorCritic(spec, 15, env.obs_dim, env.num_actions, (64, 64))
        params = net.init(jax.random.PRNGKey(0))
        # Scale the actor heads up so that untrained policies are far from uniform.
        params["actor"] = jax.tree.map(lambda x: x * 30, params["actor"])
        out[method] = float(policy_diversity(net, params, plain_plan(spec, config, 15, jax.random.PRNGKey(2)), obs, agents))
    assert out["fups"] == pytest.approx(0.0, abs=1e-3)
    assert out["nops"] > 0.1 and out["fups_id"] > 0.01


def test_js_distance_hand_computed():
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert float(js_distance(p, q)) == pytest.approx(1.0)  # disjoint supports: 1 bit
    assert float(js_distance(p, p)) == pytest.approx(0.0)
    r = np.array([0.5, 0.5])
    # JSD([1,0],[.5,.5]) = 0.5*KL([1,0]||[.75,.25]) + 0.5*KL([.5,.5]||[.75,.25]) in bits
    jsd = 0.5 * np.log2(1 / 0.75) + 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25))
    assert float(js_distance(p, r)) == pytest.approx(np.sqrt(jsd), rel=1e-5)


def test_diversity_agents_subset_is_spread_over_all_agents():
    np.testing.assert_array_equal(diversity_agents(10, 64), np.arange(10))
    chosen = diversity_agents(3000, 64)
    assert len(chosen) == 64 and chosen[0] == 0 and chosen[-1] == 2999


@pytest.mark.parametrize(
    "changes, message",
    [({"method": "magic"}, "unknown method"), ({"num_seeds": 0}, "num_seeds"), ({"mask_threshold": 1.0}, "mask_threshold"),
     ({"mask_threshold": 0.0}, "mask_threshold"), ({"pruning_rate": 1.5}, "pruning_rate"), ({"num_clusters": 16}, "larger than the 15 agents"),
     ({"total_steps": 100}, "total_steps"), ({"num_envs": 10**6}, "absurd")],
)
def test_impossible_configs_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError, match=message) as err:
        Config(**changes).validate(num_agents=15)
    assert "\n" not in str(err.value)
