"""Neuron masks: from identity vectors to boolean hidden-neuron masks, and applying them.

The public, reusable part of AdaPS (paper section 4.3). Both functions are jitted and vmappable,
and work on any flax MLP written outside this project:

    import flax.linen as nn
    from adaps_jax.masks import cluster_masks, apply_neuron_masks

    class MLP(nn.Module):          # any stack of Dense layers, written anywhere
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(32)(x))   # Dense_0
            x = nn.relu(nn.Dense(32)(x))   # Dense_1
            return nn.Dense(4)(x)

    params = MLP().init(key, x)
    masks = cluster_masks(key, centres, (32, 32))          # tuple of (K, 32) bool, one per layer
    masks_k = jax.tree.map(lambda m: m[k], masks)           # cluster k's masks
    y = MLP().apply(apply_neuron_masks(params, masks_k), x)  # f(x; phi * M_k)

With custom layer names, pass the masks by path: `{"params/hidden1": m1, "params/hidden2": m2}`.
`apply_neuron_masks` vmapped over a leading mask axis gives one parameter set per cluster or agent:
`jax.vmap(apply_neuron_masks, in_axes=(None, 0))(params, masks)`.
"""
from __future__ import annotations

import re
from functools import partial
from typing import Any, Sequence

import chex
import jax
import jax.numpy as jnp

MAPPING_HIDDEN = 64
OUTPUT_GAIN = 3.0


@partial(jax.jit, static_argnames=("layer_sizes", "threshold"))
def cluster_masks(
    key: chex.PRNGKey, vectors: chex.Array, layer_sizes: Sequence[int], threshold: float = 0.2
) -> tuple[chex.Array, ...]:
    """Maps each vector (e.g. a cluster centre) to one boolean mask per hidden layer.

    A fixed, randomly initialised mapping network f_m (one hidden layer of 64 tanh units, Gaussian
    weights, drawn from `key` and never trained) gives one sigmoid probability per hidden neuron,
    and a neuron is kept where it exceeds `threshold` (the paper's lambda):
    M_k = [sigmoid(f_m(z_k)) > lambda]. Same key and vectors give the same masks.

    The paper leaves f_m's scale open, and it decides everything: with PyTorch's default init the
    logits stay near 0, every probability near 0.5, and lambda = 0.2 keeps every neuron (AdaPS would
    equal FuPS). So each vector is first rescaled to unit root-mean-square (the latent's arbitrary
    scale must not decide how many neurons survive) and the output layer has gain OUTPUT_GAIN, which
    makes the logits roughly N(0, 2^2): lambda = 0.2 keeps about three quarters of the neurons, and
    vectors pointing in different directions keep different neurons.

    Args:
        key: seeds the mapping network; keep it fixed for a run.
        vectors: (K, m) identity vectors, one per cluster (or per agent).
        layer_sizes: the hidden-layer widths to mask, e.g. (64, 64).
        threshold: lambda in (0, 1); larger drops more neurons.
    Returns:
        A tuple with one (K, layer_size) bool array per hidden layer.
    """
    total = sum(layer_sizes)
    k1, k2 = jax.random.split(key)
    m = vectors.shape[-1]
    w1 = jax.random.normal(k1, (m, MAPPING_HIDDEN)) / jnp.sqrt(m)
    w2 = jax.random.normal(k2, (MAPPING_HIDDEN, total)) * OUTPUT_GAIN / jnp.sqrt(MAPPING_HIDDEN)
    rms = jnp.sqrt(jnp.mean(vectors**2, axis=-1, keepdims=True))
    unit = vectors / jnp.maximum(rms, 1e-8)
    probability = jax.nn.sigmoid(jnp.tanh(unit @ w1) @ w2)
    keep = probability > threshold
    bounds = [sum(layer_sizes[:i]) for i in range(len(layer_sizes) + 1)]
    return tuple(keep[..., lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:]))


def _dense_layers(params: Any) -> dict[str, dict]:
    """Every Dense-like layer ('kernel' and 'bias' leaves) by its '/'-joined path in the tree."""
    layers: dict[str, dict] = {}

    def visit(tree: Any, path: str) -> None:
        if hasattr(tree, "items"):
            if "kernel" in tree and "bias" in tree:
                layers[path] = tree
                return
            for name, value in tree.items():
                visit(value, f"{path}/{name}" if path else str(name))

    visit(params, "")
    return layers


def _natural_key(path: str) -> list:
    """Sorts 'Dense_2' before 'Dense_10', so flax's automatic names come in definition order."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


@jax.jit
def apply_neuron_masks(params: Any, masks: Sequence[chex.Array] | dict[str, chex.Array]) -> Any:
    """Returns `params` with the masked-out hidden neurons removed: phi * M.

    Zeroes the kernel column and bias of every dropped output neuron of the masked Dense layers.
    With an activation f(0) = 0 such as ReLU this equals multiplying the hidden activations by
    the mask, so it serves activation masking as well.

    Args:
        params: a flax parameter tree of an MLP made of Dense layers.
        masks: a dict {layer path: (width,) bool mask}, e.g. {"params/hidden1": m1}; or a sequence of
            masks for the first layers in natural order of their names, which is definition order
            for flax's automatic names (Dense_0, Dense_1, ...). vmap for a leading agent axis.
    """
    layers = _dense_layers(params)
    if isinstance(masks, dict):
        unknown = set(masks) - set(layers)
        if unknown:
            raise ValueError(f"no Dense layer at {sorted(unknown)}; layers: {sorted(layers)}")
        chosen = masks
    else:
        order = sorted(layers, key=_natural_key)
        if len(masks) > len(order):
            raise ValueError(f"{len(masks)} masks for an MLP with {len(order)} Dense layers")
        chosen = dict(zip(order, masks))

    def rebuild(tree: Any, path: str) -> Any:
        if path in chosen:
            mask = chosen[path].astype(tree["kernel"].dtype)
            return {**tree, "kernel": tree["kernel"] * mask, "bias": tree["bias"] * mask}
        if hasattr(tree, "items"):
            return {k: rebuild(v, f"{path}/{k}" if path else str(k)) for k, v in tree.items()}
        return tree

    return rebuild(params, "")


def mask_overlap(masks: Sequence[chex.Array]) -> chex.Array:
    """Pairwise Jaccard overlap |M_a and M_b| / |M_a or M_b| over all layers: (G, G) for G masks."""
    flat = jnp.concatenate([m.reshape(m.shape[0], -1) for m in masks], axis=1).astype(jnp.float32)
    both = flat @ flat.T
    either = flat.sum(1)[:, None] + flat.sum(1)[None, :] - both
    return jnp.where(either > 0, both / jnp.maximum(either, 1.0), 1.0)
