"""The public mask API: masked forward equals f(x; phi * M), masks are deterministic and vmappable."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaps_jax.masks import MaskError, apply_neuron_masks, cluster_masks, mask_overlap
from adaps_jax.networks import MaskedMLP


class PlainMLP(nn.Module):
    """A flax model written without this project in mind."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(16, name="first")(x))
        x = nn.relu(nn.Dense(12, name="second")(x))
        return nn.Dense(3, name="head")(x)


def _explicit_forward(params, x, masks):
    """numpy f(x; phi * M): zero the masked neurons' incoming weights and biases by hand."""
    p = jax.tree.map(np.asarray, params["params"])
    h = x
    for name, mask in zip(("first", "second"), masks):
        w = p[name]["kernel"] * np.asarray(mask)[None, :]
        b = p[name]["bias"] * np.asarray(mask)
        h = np.maximum(h @ w + b, 0.0)
    return h @ p["head"]["kernel"] + p["head"]["bias"]


def test_apply_neuron_masks_on_a_foreign_flax_model_equals_explicit_masking():
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (7, 5))
    params = PlainMLP().init(key, x)
    centres = jax.random.normal(jax.random.PRNGKey(1), (3, 10))
    masks = cluster_masks(jax.random.PRNGKey(2), centres, (16, 12), 0.5)
    for k in range(3):
        mask_k = tuple(m[k] for m in masks)
        by_path = {"params/first": mask_k[0], "params/second": mask_k[1]}
        got = PlainMLP().apply(apply_neuron_masks(params, by_path), x)
        np.testing.assert_allclose(got, _explicit_forward(params, np.asarray(x), mask_k), rtol=1e-5, atol=1e-6)
    # Dropping neurons changes the output (the test above cannot pass vacuously).
    first = {"params/first": masks[0][0], "params/second": masks[1][0]}
    assert not np.allclose(PlainMLP().apply(params, x), PlainMLP().apply(apply_neuron_masks(params, first), x))


class AutoNamedMLP(nn.Module):
    """Eleven hidden layers with flax's automatic names: Dense_10 must come after Dense_9."""

    @nn.compact
    def __call__(self, x):
        for width in range(3, 14):
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(2)(x)


def test_sequence_masks_follow_definition_order_of_automatic_names():
    x = jnp.ones((2, 4))
    params = AutoNamedMLP().init(jax.random.PRNGKey(0), x)
    masks = tuple(jnp.arange(w) % 2 == 0 for w in range(3, 14))
    masked = apply_neuron_masks(params, masks)
    for i, w in enumerate(range(3, 14)):
        np.testing.assert_array_equal(masked["params"][f"Dense_{i}"]["bias"].shape, (w,))
        assert np.all(np.asarray(masked["params"][f"Dense_{i}"]["kernel"])[:, 1::2] == 0)


def test_activation_masking_in_the_actor_critic_equals_parameter_masking():
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 6))
    net = MaskedMLP((16, 16), 5, 0.01)
    params = net.init(jax.random.PRNGKey(4), x)
    masks = (jnp.arange(16) % 3 != 0, jnp.arange(16) % 2 == 0)
    np.testing.assert_allclose(net.apply(params, x, masks), net.apply(apply_neuron_masks(params, masks), x), rtol=1e-5, atol=1e-7)


def test_apply_neuron_masks_vmaps_over_agents():
    x = jnp.ones((1, 5))
    params = PlainMLP().init(jax.random.PRNGKey(0), x)
    masks = cluster_masks(jax.random.PRNGKey(2), jax.random.normal(jax.random.PRNGKey(1), (4, 10)), (16, 12), 0.5)
    per_agent = jax.vmap(apply_neuron_masks, in_axes=(None, 0))(params, {"params/first": masks[0], "params/second": masks[1]})
    assert per_agent["params"]["first"]["kernel"].shape == (4, 5, 16)
    np.testing.assert_array_equal(per_agent["params"]["first"]["bias"][2] != 0, (params["params"]["first"]["bias"] != 0) & masks[0][2])
    np.testing.assert_array_equal(per_agent["params"]["head"]["kernel"][1], params["params"]["head"]["kernel"])


def test_cluster_masks_deterministic_shaped_and_monotone_in_threshold():
    key, centres = jax.random.PRNGKey(5), jax.random.normal(jax.random.PRNGKey(6), (3, 10))
    low = cluster_masks(key, centres, (64, 32), 0.2)
    again = cluster_masks(key, centres, (64, 32), 0.2)
    high = cluster_masks(key, centres, (64, 32), 0.8)
    assert [m.shape for m in low] == [(3, 64), (3, 32)] and low[0].dtype == jnp.bool_
    for a, b, h in zip(low, again, high):
        np.testing.assert_array_equal(a, b)
        assert np.all(np.asarray(h) <= np.asarray(a))  # a larger lambda keeps a subset
    kept = float(np.mean(np.concatenate([np.asarray(m).ravel() for m in low])))
    assert 0.6 < kept < 0.9, kept  # lambda 0.2 keeps most, not all, neurons
    assert not np.array_equal(low[0][0], low[0][1])  # different centres, different masks


def test_cluster_masks_ignore_the_scale_of_the_vectors():
    key, centres = jax.random.PRNGKey(5), jax.random.normal(jax.random.PRNGKey(6), (3, 10))
    for a, b in zip(cluster_masks(key, centres, (64,), 0.2), cluster_masks(key, 1e-3 * centres, (64,), 0.2)):
        np.testing.assert_array_equal(a, b)


def test_mask_overlap_hand_computed():
    masks = (jnp.array([[1, 1, 0, 0], [1, 0, 1, 0]], bool),)
    np.testing.assert_allclose(mask_overlap(masks), [[1.0, 1 / 3], [1 / 3, 1.0]])


class NoBiasMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(6, use_bias=False)(x))
        x = nn.relu(nn.Dense(5)(x))
        return nn.Dense(2)(x)


def test_dense_without_bias_is_masked_in_list_order():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4))
    params = NoBiasMLP().init(jax.random.PRNGKey(1), x)
    m0, m1 = jnp.array([1, 0, 1, 1, 0, 1], bool), jnp.array([0, 1, 1, 0, 1], bool)
    masked = apply_neuron_masks(params, [m0, m1])
    assert set(masked["params"]["Dense_0"]) == {"kernel"}  # no bias appears
    np.testing.assert_array_equal(masked["params"]["Dense_0"]["kernel"], params["params"]["Dense_0"]["kernel"] * m0)
    np.testing.assert_array_equal(masked["params"]["Dense_1"]["bias"], params["params"]["Dense_1"]["bias"] * m1)
    p = jax.tree.map(np.asarray, params["params"])
    h = np.maximum(np.asarray(x) @ p["Dense_0"]["kernel"], 0) * np.asarray(m0)
    h = np.maximum(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], 0) * np.asarray(m1)
    want = h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"]
    np.testing.assert_allclose(NoBiasMLP().apply(masked, x), want, rtol=1e-5, atol=1e-6)


def test_list_masks_are_refused_where_names_do_not_give_the_order():
    params = PlainMLP().init(jax.random.PRNGKey(0), jnp.ones((1, 5)))
    # Sorted by name, "head" would come before "second": a list would mask the wrong layer.
    with pytest.raises(MaskError, match=r"custom name 'first'.*pass a dict"):
        apply_neuron_masks(params, [jnp.ones(16, bool), jnp.ones(12, bool)])

    class Mixed(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(4, (1,))(x)  # Conv_0 and Dense_0 count separately
            return nn.Dense(3)(x)

    mixed = Mixed().init(jax.random.PRNGKey(0), jnp.ones((1, 2, 3)))
    with pytest.raises(MaskError, match="ambiguous.*Conv, Dense"):
        apply_neuron_masks(mixed, [jnp.ones(4, bool)])
    # By path it works.
    out = apply_neuron_masks(mixed, {"params/Conv_0": jnp.array([1, 0, 1, 1], bool)})
    assert np.all(np.asarray(out["params"]["Conv_0"]["kernel"])[..., 1] == 0)


def test_mask_misuse_names_the_layer():
    params = PlainMLP().init(jax.random.PRNGKey(0), jnp.ones((1, 5)))
    with pytest.raises(MaskError, match=r"^the mask for 'params/first' has dtype float32; masks must be boolean[^\n]*$"):
        apply_neuron_masks(params, {"params/first": jnp.ones(16)})
    with pytest.raises(MaskError, match=r"'params/second' has shape \(16,\), but the layer outputs 12"):
        apply_neuron_masks(params, {"params/second": jnp.ones(16, bool)})
    with pytest.raises(MaskError, match=r"'params/first' has shape \(4, 16\).*vmap"):
        apply_neuron_masks(params, {"params/first": jnp.ones((4, 16), bool)})
    with pytest.raises(MaskError, match=r"^no Dense layer at 'params/third'; Dense layers: params/first, params/head, params/second$"):
        apply_neuron_masks(params, {"params/third": jnp.ones(4, bool)})
    auto = AutoNamedMLP().init(jax.random.PRNGKey(0), jnp.ones((1, 4)))
    with pytest.raises(MaskError, match=r"mask 1 \(list order\), the mask for 'params/Dense_1' has shape \(3,\), but the layer outputs 4"):
        apply_neuron_masks(auto, [jnp.ones(3, bool), jnp.ones(3, bool)])
    with pytest.raises(MaskError, match="13 masks for 12 Dense layers"):
        apply_neuron_masks(auto, [jnp.ones(3, bool)] * 13)
    with pytest.raises(TypeError, match="dict .* or a list/tuple"):
        apply_neuron_masks(auto, jnp.ones((2, 3), bool))


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_cluster_masks_refuse_thresholds_outside_the_open_unit_interval(threshold):
    with pytest.raises(ValueError, match=r"^cluster_masks: threshold \(lambda\) must lie in \(0, 1\), got \S+$"):
        cluster_masks(jax.random.PRNGKey(0), jnp.ones((2, 3)), (4,), threshold)


def test_cluster_masks_values_are_pinned():
    """The masks training depends on, bit for bit: the validation must not have changed them."""
    masks = cluster_masks(jax.random.PRNGKey(5), jax.random.normal(jax.random.PRNGKey(6), (2, 4)), (8, 4), 0.2)
    assert [np.asarray(m).astype(int).tolist() for m in masks] == [
        [[0, 1, 1, 1, 1, 0, 0, 1], [0, 1, 0, 1, 1, 0, 1, 0]],
        [[0, 0, 0, 1], [0, 0, 0, 1]],
    ]


class NormedMLP(nn.Module):
    """Dense then LayerNorm; `mask`, when given, multiplies the normalised outputs."""

    @nn.compact
    def __call__(self, x, mask=None):
        x = nn.LayerNorm()(nn.Dense(8)(x))
        return x if mask is None else x * mask


def test_masking_before_layernorm_does_not_remove_neurons_masking_after_does():
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    params = NormedMLP().init(jax.random.PRNGKey(1), x)
    mask = jnp.arange(8) % 2 == 0
    plain = np.asarray(NormedMLP().apply(params, x))
    before = np.asarray(NormedMLP().apply(apply_neuron_masks(params, [mask]), x))
    # The dropped neurons come back as -mean / std, and the kept ones move too (new statistics).
    assert np.all(np.abs(before[:, 1::2]) > 1e-3)
    assert not np.allclose(before[:, ::2], plain[:, ::2])
    # Masking after the normalisation drops exactly the masked neurons and leaves the others.
    after = np.asarray(NormedMLP().apply(params, x, mask))
    assert np.all(after[:, 1::2] == 0)
    np.testing.assert_array_equal(after[:, ::2], plain[:, ::2])
