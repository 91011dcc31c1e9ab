"""The training details that must match the SePS reference code (docs/FIDELITY.md), and the options
that reproduce its quirks."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import envs
from adaps_jax import identity
from adaps_jax.a2c import Rollout, a2c_loss, gradient_clip, reference_nstep_returns
from adaps_jax.config import Config
from adaps_jax.sharing import method_spec, plain_plan
from adaps_jax.networks import ActorCritic
from adaps_jax.trainer import make_train


def test_default_pretraining_is_the_reference_5000_updates_of_8_copies_and_5_steps():
    config = Config(method="adaps")  # 2M steps, 20 logging points
    assert config.pretrain_updates == 5000
    assert config.pretrain_updates * config.steps_per_update == 200_000
    assert config.pretrain_logs == 2 and config.updates_per_pretrain_log == 2500
    # The RL chunks share what is left; every logging point's env steps add up.
    assert config.updates_done(config.num_logs) <= config.total_updates
    assert Config(method="fups").pretrain_updates == 0


def test_sample_slots_keep_exactly_the_requested_number_each_once():
    slots = np.asarray(identity.sample_slots(jax.random.PRNGKey(0), 1000, 64))
    kept = slots[slots < 64]
    assert len(kept) == 64 and sorted(kept) == list(range(64))
    assert (slots[slots >= 64] == 64).all()
    everything = np.asarray(identity.sample_slots(jax.random.PRNGKey(1), 10, 50))  # more than the stream
    assert sorted(everything) == list(range(10))


def test_sample_slots_are_uniform_over_the_stream():
    # Each of 20 positions is kept with probability 5/20; over 4000 draws a position's count has
    # mean 1000 and std 27: 6 std is a test that cannot fail by chance but fails on any bias.
    slots = jax.vmap(lambda k: identity.sample_slots(k, 20, 5))(jax.random.split(jax.random.PRNGKey(2), 4000))
    counts = np.asarray((slots < 5).sum(0))
    assert np.all(np.abs(counts - 1000) < 6 * 27.4), counts


def test_store_samples_writes_kept_rows_and_drops_the_rest():
    buffer = identity.Transitions(obs=jnp.zeros((2, 1, 1)), action=jnp.zeros((2, 1), jnp.int32),
                                  reward=jnp.zeros((2, 1)), next_obs=jnp.zeros((2, 1, 1)))
    batch = jax.tree.map(lambda b: jnp.arange(1.0, 5.0).reshape((4,) + b.shape[1:]).astype(b.dtype), buffer)
    out = identity.store_samples(buffer, batch, jnp.array([2, 1, 2, 0]))  # 2 = out of range: dropped
    np.testing.assert_array_equal(out.reward[:, 0], [4.0, 2.0])


def test_pretraining_sample_is_bounded_whatever_the_number_of_agents():
    for scenario, expected in (("bps-15a-3c", 65_536 // 15), ("bps-3000a-3c", 65_536 // 3000)):
        trainer = make_train(Config(scenario=scenario, method="adaps", num_seeds=1))
        assert trainer.samples_per_agent() == expected
        shapes = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
        stored = sum(np.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(shapes.samples))
        assert stored <= 65_536 * (2 * trainer.env.obs_dim + 2) * 4


def test_stored_transitions_are_the_rollouts_own():
    config = Config(scenario="bps-15a-3c", method="adaps", num_envs=2, hidden_sizes=(8,), num_logs=2,
                    total_steps=400, pretrain_steps=200, identity_samples=15 * 7, eval_episodes=0)
    trainer = make_train(config)
    state = trainer.init(jax.random.PRNGKey(0))
    state, _ = trainer.pretrain_chunk(state)
    obs, next_obs = np.asarray(state.samples.obs), np.asarray(state.samples.next_obs)
    assert obs.shape == (7, 15, trainer.env.obs_dim)
    # BPS: position moves by velocity * dt, so every kept next_obs is the step after its obs.
    assert np.all(np.abs(obs).sum(-1) > 0) and np.all(np.abs(next_obs - obs).sum(-1) > 0)


# ---- choosing K ----------------------------------------------------------------------------------

def _planted(sizes, seed=0, spread=0.03, dim=10):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return jnp.asarray(centres[labels] + spread * rng.normal(size=(len(labels), dim)), jnp.float32), labels


@pytest.mark.parametrize("sizes", [(2, 2), (2, 2, 2), (1, 12), (1, 1, 1, 5), (5, 5, 5), (3, 3, 3, 12, 9), (12, 12), (1, 2, 3, 4)])
def test_dunn_selection_finds_planted_clusters_of_sizes_1_to_12(sizes):
    points, labels = _planted(sizes)
    found, _, k = identity.cluster_agents(jax.random.PRNGKey(0), points, None, min(10, len(labels)))
    assert int(k) == len(sizes)
    assert identity.adjusted_rand_index(labels, np.asarray(found)) == 1.0


def test_dunn_selection_keeps_one_group_as_one_cluster():
    points, _ = _planted((12,), spread=1.0)
    _, _, k = identity.cluster_agents(jax.random.PRNGKey(0), points, None, 10)
    assert int(k) == 1


def test_davies_bouldin_over_splits_pairs_where_dunn_does_not():
    """The reason for the default: three pairs (LBF's 6 players of 3 levels)."""
    points, labels = _planted((2, 2, 2), seed=3, spread=0.1)
    _, _, k_db = identity.cluster_agents(jax.random.PRNGKey(0), points, None, 5, selection="davies_bouldin")
    _, _, k_dunn = identity.cluster_agents(jax.random.PRNGKey(0), points, None, 5)
    assert int(k_dunn) == 3 and int(k_db) > 3


def test_dunn_index_hand_computed():
    points = jnp.array([[0.0, 0.0], [0.0, 1.0], [4.0, 0.0], [4.0, 2.0]])
    # Diameters 1 and 2, closest points of different clusters 4 apart: 4 / 2.
    assert float(identity.dunn_index(points, jnp.array([0, 0, 1, 1]))) == pytest.approx(2.0)
    assert float(identity.dunn_index(points, jnp.zeros(4, jnp.int32))) == 0.0


# ---- continuing from pretraining ----------------------------------------------------------------

SMALL = dict(scenario="bps-15a-3c", num_envs=2, hidden_sizes=(8,), num_logs=2, total_steps=400,
             pretrain_steps=200, identity_samples=300, vae_epochs=1, eval_episodes=0, num_clusters=3)


def _pretrained_and_identified(method: str, **changes):
    trainer = make_train(Config(method=method, **{**SMALL, **changes}))
    initial = trainer.init(jax.random.PRNGKey(0))
    pretrained, _ = trainer.pretrain_chunk(initial)
    return trainer, initial, pretrained, trainer.identify(pretrained)


@pytest.mark.slow  # SePS pretraining and identity phase compiled
def test_seps_cluster_0_continues_the_pretrained_network_and_the_others_start_as_initialised():
    trainer, initial, pretrained, state = _pretrained_and_identified("seps")
    assert trainer.spec.num_param_sets == 3
    for before, after, now in zip(jax.tree.leaves(initial.params), jax.tree.leaves(pretrained.params),
                                  jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(now, after)  # identify changes no parameter
        assert not np.array_equal(after[0], before[0])  # set 0 was pretrained
        np.testing.assert_array_equal(after[1:], before[1:])  # the others untouched
    adam = state.opt_state[1][0]
    assert int(adam.count) == trainer.config.pretrain_updates == 20  # one count for every set, as in SePS
    for mu in jax.tree.leaves(adam.mu):
        assert np.abs(mu[0]).sum() > 0 and np.abs(mu[1:]).sum() == 0


def test_adaps_continues_the_pretrained_network_under_its_masks():
    _, _, pretrained, state = _pretrained_and_identified("adaps")
    for a, b in zip(jax.tree.leaves(pretrained.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)
    assert all(np.asarray(m).all() for m in pretrained.plan.actor_masks)  # pretraining kept every neuron
    assert not all(np.asarray(m).all() for m in state.plan.actor_masks)


def test_continue_pretraining_false_starts_afresh():
    trainer, _, pretrained, state = _pretrained_and_identified("seps", continue_pretraining=False)
    assert int(state.opt_state[1][0].count) == 0
    fresh = trainer.network.init(jax.random.fold_in(pretrained.identity_key, 3))
    for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)


# ---- gradient clipping, returns, action masks ---------------------------------------------------

def test_default_clip_is_one_global_norm_over_every_parameter_set():
    grads = {"w": jnp.array([[3.0, 0.0], [0.3, 0.0]]), "b": jnp.array([[4.0], [0.4]])}
    clip = gradient_clip(Config(max_grad_norm=1.0))
    clipped, _ = clip.update(grads, clip.init(grads))
    flat = np.concatenate([np.ravel(grads["b"]), np.ravel(grads["w"])])
    scale = 1.0 / np.linalg.norm(flat)
    np.testing.assert_allclose(clipped["w"], np.asarray(grads["w"]) * scale, rtol=1e-6)
    np.testing.assert_allclose(clipped["b"], np.asarray(grads["b"]) * scale, rtol=1e-6)
    expected, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
    for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)


def test_reference_returns_hand_computed():
    # G_t = gamma G_{t+1} + (1 - d_t) r_t: the reward of the ending step is dropped and the return
    # runs on into the next episode.
    gamma = 0.5
    g = reference_nstep_returns(jnp.array([1.0, 2.0, 3.0]), jnp.array([False, True, False]), jnp.array(8.0), gamma)
    g2 = 3 + 0.5 * 8
    g1 = 0.5 * g2
    g0 = 1 + 0.5 * g1
    np.testing.assert_allclose(g, [g0, g1, g2])


def _loss(config, mask):
    T, E, N, D, A = 3, 2, 2, 4, 3
    spec = method_spec(config, N)
    net = ActorCritic(spec, N, D, A, config.hidden_sizes)
    params = net.init(jax.random.PRNGKey(0))
    plan = plain_plan(spec, config, N, jax.random.PRNGKey(1))
    k = jax.random.split(jax.random.PRNGKey(2), 5)
    rollout = Rollout(
        obs=jax.random.normal(k[0], (T, E, N, D)), action_mask=mask(T, E, N, A),
        action=jnp.zeros((T, E, N), jnp.int32), reward=jax.random.normal(k[2], (T, E, N)),
        next_obs=jax.random.normal(k[3], (T, E, N, D)), terminated=jnp.zeros((T, E, N), bool),
        truncated=jnp.zeros((T, E, N), bool), final_obs=jax.random.normal(k[4], (E, N, D)),
    )
    return a2c_loss(params, net, plan, rollout, config)[0]


def test_the_policy_ignores_action_masks_unless_asked():
    def some_invalid(*shape):
        return jnp.ones(shape, bool).at[..., 2].set(False)

    def all_valid(*shape):
        return jnp.ones(shape, bool)

    config = Config(hidden_sizes=(8,))
    assert float(_loss(config, some_invalid)) == float(_loss(config, all_valid))
    masking = config.replace(mask_invalid_actions=True)
    assert float(_loss(masking, some_invalid)) != float(_loss(masking, all_valid))


@pytest.mark.slow  # minutes of compilation; `make test-slow`
def test_lbf_policy_takes_invalid_actions_by_default():
    config = Config(scenario="lbf-8x8-3p-2f", method="fups", num_envs=4, hidden_sizes=(8,), num_logs=1,
                    total_steps=400, eval_episodes=0)
    trainer = make_train(config)
    state = trainer.init(jax.random.PRNGKey(0))
    _, rollout, _ = trainer.rollout(state)
    chosen_valid = jnp.take_along_axis(rollout.action_mask, rollout.action[..., None], -1)
    assert not bool(chosen_valid.all())
