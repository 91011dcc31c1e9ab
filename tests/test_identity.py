"""Tests for adaps_jax.identity: identity VAE, k-means, Davies-Bouldin, auto-K, ARI."""

from __future__ import annotations

import functools
import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from adaps_jax.identity import (
    IdentityResult,
    Transitions,
    _lloyd_step,
    adjusted_rand_index,
    cluster_agents,
    davies_bouldin,
    kmeans,
    train_identity_vae,
)


def planted(seed: int, sizes: list[int], dim: int = 10, spread: float = 0.05):
    """Well-separated clusters: centres on scaled axes (pairwise distance >= 10), small noise.

    Agents of different clusters are interleaved so that cluster ids are not sorted.
    """
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])
    labels = labels[rng.permutation(labels.size)]
    centres = np.zeros((len(sizes), dim))
    for c in range(len(sizes)):
        centres[c, c % dim] = 10.0 * (1 + c // dim)
    points = centres[labels] + spread * rng.standard_normal((labels.size, dim))
    return jnp.asarray(points, jnp.float32), labels


# --------------------------------------------------------------------------------------------
# Adjusted Rand index
# --------------------------------------------------------------------------------------------


def test_ari_known_values():
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4.0 / 7.0, abs=1e-12)
    assert adjusted_rand_index([0, 0, 1, 2], [0, 0, 1, 1]) == pytest.approx(4.0 / 7.0, abs=1e-12)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5, abs=1e-12)
    assert adjusted_rand_index([0, 0, 0, 0], [0, 1, 2, 3]) == pytest.approx(0.0, abs=1e-12)
    # Relabelling (any label values) is a perfect match.
    assert adjusted_rand_index([0, 0, 1, 1, 2], [7, 7, -3, -3, 5]) == 1.0
    # Degenerate agreements: both one cluster, both all singletons.
    assert adjusted_rand_index([1, 1, 1], [0, 0, 0]) == 1.0
    assert adjusted_rand_index([0, 1, 2], [2, 0, 1]) == 1.0


def _ari_hubert_arabie(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook ARI from the contingency table (valid where its denominator is non-zero)."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.int64)
    np.add.at(table, (ai, bi), 1)
    comb = lambda x: x * (x - 1) / 2.0  # noqa: E731
    index = comb(table).sum()
    rows, cols = comb(table.sum(1)).sum(), comb(table.sum(0)).sum()
    expected = rows * cols / comb(a.size)
    return float((index - expected) / (0.5 * (rows + cols) - expected))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=2, max_size=30),
    st.permutations(list(range(5))),
)
def test_ari_matches_textbook_formula_and_is_invariant(pairs, relabel):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    ari = adjusted_rand_index(a, b)
    assert ari == pytest.approx(adjusted_rand_index(b, a), abs=1e-12)
    assert ari == pytest.approx(adjusted_rand_index(a, np.asarray(relabel)[b]), abs=1e-12)
    comb = lambda x: x * (x - 1) / 2.0  # noqa: E731
    rows = sum(comb(c) for c in np.unique(a, return_counts=True)[1])
    cols = sum(comb(c) for c in np.unique(b, return_counts=True)[1])
    denominator = 0.5 * (rows + cols) - rows * cols / comb(a.size)
    if abs(denominator) > 1e-9:
        assert ari == pytest.approx(_ari_hubert_arabie(a, b), abs=1e-9)


# --------------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------------

# Compiled once and shared: every clustering test below (and the VAE test: 16 agents, m = 10) uses
# (16, 10) points, so each of these compiles a single time (compilation dominates the run time).
NUM_POINTS, DIM, MAX_CLUSTERS = 16, 10, 6
KMEANS3 = jax.jit(functools.partial(kmeans, k=3))
AUTO = jax.jit(functools.partial(cluster_agents, num_clusters=None, max_clusters=MAX_CLUSTERS))
FIXED3 = jax.jit(functools.partial(cluster_agents, num_clusters=3, max_clusters=MAX_CLUSTERS))
DB = jax.jit(davies_bouldin)
# Planted configurations with N = 16. MAX_CLUSTERS = 6 is below K - 1 + (smallest cluster size),
# so no candidate K can split a whole cluster into singletons (see test_davies_bouldin_singletons).
THREE, FIVE = [5, 5, 6], [4, 3, 3, 3, 3]


def test_kmeans_tiny_example_hand_computed():
    points = jnp.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    kmeans2 = jax.jit(functools.partial(kmeans, k=2))
    labels, centres, inertia = kmeans2(jax.random.PRNGKey(0), points)
    # Clusters {0, 1} and {2, 3}; centres (0, .5), (10, .5); each point is 0.5 away: 4 * 0.25.
    assert adjusted_rand_index([0, 0, 1, 1], labels) == 1.0
    assert labels.dtype == jnp.int32
    order = np.argsort(np.asarray(centres[:, 0]))
    np.testing.assert_allclose(np.asarray(centres)[order], [[0.0, 0.5], [10.0, 0.5]], atol=1e-6)
    assert float(inertia) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_recovers_planted_clusters(seed):
    points, truth = planted(seed, THREE)
    labels, centres, inertia = KMEANS3(jax.random.PRNGKey(seed), points)
    assert adjusted_rand_index(truth, labels) == 1.0
    # The centres are the cluster means and the inertia their within-cluster sum of squares.
    p, l = np.asarray(points), np.asarray(labels)
    means = np.stack([p[l == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(np.asarray(centres), means, atol=1e-5)
    assert float(inertia) == pytest.approx(((p - means[l]) ** 2).sum(), rel=1e-5)


def test_kmeans_identical_points_are_deterministic():
    points = jnp.full((NUM_POINTS, DIM), 2.5, jnp.float32)
    labels, centres, inertia = KMEANS3(jax.random.PRNGKey(3), points)
    np.testing.assert_array_equal(labels, np.zeros(NUM_POINTS, np.int32))
    np.testing.assert_array_equal(centres, np.full((3, DIM), 2.5))
    assert float(inertia) == 0.0


def test_empty_cluster_is_relocated_to_the_farthest_point():
    points = jnp.array([[0.0], [1.0], [4.0]])
    centres = jnp.array([[0.0], [100.0], [200.0]])  # clusters 1 and 2 get no points
    new = _lloyd_step(points, centres, jnp.array([True, True, True]))
    # Cluster 0 -> mean 5/3; empty cluster 1 -> farthest point (4), empty cluster 2 -> next (1).
    np.testing.assert_allclose(np.asarray(new)[:, 0], [5.0 / 3.0, 4.0, 1.0], rtol=1e-6)


def test_kmeans_rejects_bad_k():
    with pytest.raises(ValueError):
        kmeans(jax.random.PRNGKey(0), jnp.zeros((3, 2)), 4)
    with pytest.raises(ValueError):
        cluster_agents(jax.random.PRNGKey(0), jnp.zeros((3, 2)), 3, max_clusters=2)


# --------------------------------------------------------------------------------------------
# Davies-Bouldin
# --------------------------------------------------------------------------------------------


def test_davies_bouldin_hand_computed():
    points = jnp.array(
        [[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 2.0], [0.0, 10.0], [0.0, 14.0]]
    )
    labels = jnp.array([0, 0, 1, 1, 2, 2])
    centres = jnp.array([[1.0, 0.0], [10.0, 1.0], [0.0, 12.0]])
    # s = (1, 1, 2); d01 = sqrt(82), d02 = sqrt(145), d12 = sqrt(221);
    # D0 = max(2/sqrt82, 3/sqrt145) = 3/sqrt145, D1 = max(2/sqrt82, 3/sqrt221) = 2/sqrt82,
    # D2 = max(3/sqrt145, 3/sqrt221) = 3/sqrt145.
    expected = (2 * 3 / math.sqrt(145) + 2 / math.sqrt(82)) / 3
    assert float(DB(points, labels, centres)) == pytest.approx(expected, rel=1e-6)
    # Padding with unused (empty) clusters changes nothing.
    padded = jnp.concatenate([centres, jnp.zeros((2, 2))])
    assert float(DB(points, labels, padded)) == pytest.approx(expected, rel=1e-6)
    # Under jit + vmap; the score is invariant to scaling the data.
    batched = jax.jit(jax.vmap(davies_bouldin))(
        jnp.stack([points, 3.0 * points]),
        jnp.stack([labels, labels]),
        jnp.stack([centres, 3.0 * centres]),
    )
    np.testing.assert_allclose(batched, [expected, expected], rtol=1e-6)


def test_davies_bouldin_zero_when_clusters_are_points():
    points = jnp.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    centres = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    assert float(DB(points, jnp.array([0, 0, 1]), centres)) == 0.0


def test_davies_bouldin_singletons():
    """Property of the (scikit-learn) definition, kept on purpose: singleton clusters have zero
    scatter, so splitting a tight cluster entirely into singletons lowers the score. This is why
    auto-K can over-split when max_clusters >= K - 1 + (smallest cluster size)."""
    points = jnp.array([[0.0, 0.0], [0.0, 0.2], [10.0, 0.0], [10.0, 0.2], [5.0, 9.0], [5.2, 9.0]])
    true = jnp.array([0, 0, 1, 1, 2, 2])
    split = jnp.array([0, 0, 1, 1, 2, 3])
    centres = lambda l, k: jnp.stack([points[l == c].mean(0) for c in range(k)])  # noqa: E731
    assert float(DB(points, split, centres(split, 4))) < float(
        DB(points, true, centres(true, 3))
    )


# --------------------------------------------------------------------------------------------
# cluster_agents
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [THREE, FIVE])
def test_cluster_agents_picks_the_planted_k(sizes):
    points, truth = planted(len(sizes), sizes)
    labels, centres, chosen = AUTO(jax.random.PRNGKey(0), points)
    assert int(chosen) == len(sizes)
    assert adjusted_rand_index(truth, labels) == 1.0
    assert centres.shape == (MAX_CLUSTERS, DIM)
    np.testing.assert_array_equal(centres[len(sizes) :], 0.0)


def test_cluster_agents_given_k_is_padded():
    points, truth = planted(7, THREE)
    labels, centres, chosen = FIXED3(jax.random.PRNGKey(1), points)
    assert int(chosen) == 3 and centres.shape == (MAX_CLUSTERS, DIM)
    assert adjusted_rand_index(truth, labels) == 1.0
    np.testing.assert_array_equal(centres[3:], 0.0)


def test_cluster_agents_identical_agents_form_one_cluster():
    points = jnp.full((NUM_POINTS, DIM), -1.5, jnp.float32)
    labels, centres, chosen = AUTO(jax.random.PRNGKey(2), points)
    assert int(chosen) == 1
    np.testing.assert_array_equal(labels, 0)
    expected = np.zeros((MAX_CLUSTERS, DIM))
    expected[0] = -1.5
    np.testing.assert_array_equal(centres, expected)
    labels, centres, chosen = FIXED3(jax.random.PRNGKey(2), points)
    assert int(chosen) == 3
    np.testing.assert_array_equal(labels, 0)


def test_clustering_under_jit_and_vmap_matches_separate_calls():
    data = [planted(11, THREE), planted(12, FIVE)]
    points = jnp.stack([d[0] for d in data])
    keys = jax.random.split(jax.random.PRNGKey(5), 2)
    batched_auto = jax.jit(jax.vmap(AUTO))(keys, points)
    batched_fixed = jax.jit(jax.vmap(KMEANS3))(keys, points)
    for i in range(2):
        single = AUTO(keys[i], points[i]) + KMEANS3(keys[i], points[i])
        for b, s in zip(batched_auto + batched_fixed, single):
            np.testing.assert_allclose(np.asarray(b[i]), np.asarray(s), rtol=1e-5, atol=1e-6)
        assert int(batched_auto[2][i]) == len(np.unique(data[i][1]))
        assert adjusted_rand_index(data[i][1], batched_auto[0][i]) == 1.0


# --------------------------------------------------------------------------------------------
# Identity VAE
# --------------------------------------------------------------------------------------------

NUM_ACTIONS = 3
# SePS defaults (batch 128, lr 3e-4, KL 1e-4, m = 10, hidden 64) with more epochs, because the test
# dataset (2 880 single-agent transitions) is far smaller than SePS's pretraining data.
TRAIN_KWARGS = dict(num_actions=NUM_ACTIONS, epochs=60)
TRAIN = jax.jit(functools.partial(train_identity_vae, **TRAIN_KWARGS))


def grouped_transitions(key: jax.Array, num_samples: int = 180) -> tuple[Transitions, np.ndarray]:
    """16 agents in 3 interleaved groups (6, 5, 5): group g shifts next_obs along axis g and gets
    reward (0, 1, -1)[g]; observations are standard normal, actions uniform."""
    groups = np.arange(NUM_POINTS) % 3
    k_obs, k_act, k_noise = jax.random.split(key, 3)
    obs = jax.random.normal(k_obs, (num_samples, NUM_POINTS, 4))
    action = jax.random.randint(k_act, (num_samples, NUM_POINTS), 0, NUM_ACTIONS)
    next_obs = obs + jnp.eye(3, 4)[groups] + 0.1 * jax.random.normal(k_noise, obs.shape)
    reward = jnp.broadcast_to(jnp.array([0.0, 1.0, -1.0])[groups], (num_samples, NUM_POINTS))
    return Transitions(obs, action, reward, next_obs), groups


def test_vae_identities_cluster_by_dynamics():
    transitions, groups = grouped_transitions(jax.random.PRNGKey(0))
    result = TRAIN(jax.random.PRNGKey(0), transitions)
    assert isinstance(result, IdentityResult)
    assert result.identity.shape == (NUM_POINTS, 10) and result.log_var.shape == (NUM_POINTS, 10)
    assert result.loss.shape == result.recon_loss.shape == result.kl_loss.shape == (60,)
    assert bool(jnp.all(jnp.isfinite(result.loss)))
    # Learnt: the reconstruction error of the 5 standardised targets drops from ~5 to near 0.
    assert float(result.loss[0]) > 2.0 and float(result.recon_loss[-1]) < 0.2
    np.testing.assert_allclose(
        result.loss, result.recon_loss + 1e-4 * result.kl_loss, rtol=1e-5, atol=1e-6
    )

    labels, _, _ = FIXED3(jax.random.PRNGKey(1), result.identity)
    assert adjusted_rand_index(groups, labels) == 1.0
    labels, _, chosen = AUTO(jax.random.PRNGKey(1), result.identity)
    assert int(chosen) == 3
    assert adjusted_rand_index(groups, labels) == 1.0


def test_vae_under_jit_and_vmap_matches_separate_calls():
    data = [grouped_transitions(jax.random.PRNGKey(s))[0] for s in (1, 2)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *data)
    keys = jax.random.split(jax.random.PRNGKey(9), 2)
    train = functools.partial(train_identity_vae, **TRAIN_KWARGS)
    batched = jax.jit(jax.vmap(train))(keys, batch)
    for i in range(2):
        single = TRAIN(keys[i], data[i])
        for b, s in zip(batched, single):
            np.testing.assert_allclose(np.asarray(b[i]), np.asarray(s), rtol=1e-5, atol=1e-6)
