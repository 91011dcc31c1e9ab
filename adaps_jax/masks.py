"""Neuron masks: from identity vectors to boolean hidden-neuron masks, and applying them.

The public, reusable part of AdaPS (paper section 4.3). Both functions check their arguments, then run
jitted; both are vmappable and work on any flax MLP written outside this project:

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

A list of masks goes to the Dense layers in the order the module applies them, which flax's
automatic names (Dense_0, Dense_1, ...) record. With custom layer names that order is unknown, so
pass the masks by path: `{"params/hidden1": m1, "params/hidden2": m2}`. Dense(use_bias=False) layers
count like any other. Misuse (non-boolean masks, a width the layer does not have, a list where the
order is unknown, a threshold outside (0, 1)) raises an error that names the layer. For layers
followed by a normalisation, see `apply_neuron_masks`: mask after the normalisation.
`apply_neuron_masks` vmapped over a leading mask axis gives one parameter set per cluster or agent:
`jax.vmap(apply_neuron_masks, in_axes=(None, 0))(params, masks)`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any, Sequence

import chex
import jax
import jax.numpy as jnp

MAPPING_HIDDEN = 64
OUTPUT_GAIN = 3.0


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
    # Checked outside jit so that the error is one line, when it is a number (a swept value is traced).
    if isinstance(threshold, (int, float)) and not 0 < threshold < 1:
        raise ValueError(f"cluster_masks: threshold (lambda) must lie in (0, 1), got {threshold}")
    return _cluster_masks(key, vectors, layer_sizes, threshold)


@partial(jax.jit, static_argnames=("layer_sizes",))
def _cluster_masks(
    key: chex.PRNGKey, vectors: chex.Array, layer_sizes: Sequence[int], threshold: float
) -> tuple[chex.Array, ...]:
    """cluster_masks after its check; the layer sizes are static, the threshold is data (one
    compile serves every lambda, so lambda can be swept)."""
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


class MaskError(ValueError):
    """A mask that does not fit the parameters it is applied to."""


def _dense_layers(params: Any) -> dict[str, dict]:
    """Every Dense-like layer by its '/'-joined path: a 'kernel' of 2+ axes whose last axis is the
    output width, with or without a 'bias' (Dense, Dense(use_bias=False), Conv)."""
    layers: dict[str, dict] = {}

    def visit(tree: Any, path: str) -> None:
        if isinstance(tree, Mapping):
            if "kernel" in tree and jnp.ndim(tree["kernel"]) >= 2:
                layers[path] = tree
                return
            for name, value in tree.items():
                visit(value, f"{path}/{name}" if path else str(name))

    visit(params, "")
    return layers


_AUTO_NAME = re.compile(r"(.+)_(\d+)")


def _application_order(paths: list[str]) -> list[str]:
    """The layers in the order an nn.compact module applies them, read from flax's automatic names.

    Inside jit (and after any jax.tree.map) a parameter dict's keys come sorted by name, so the
    order the layers were defined in is lost; only automatic names keep it: within one module the
    Dense layers are Dense_0, Dense_1, ... in definition order, which for an MLP is application
    order. Custom names ("hidden", "head") or siblings of different classes (Dense_0 next to
    MLP_0: each class counts on its own) leave the order unknown, and a list is refused.
    """
    keys: dict[str, tuple[int, ...]] = {}
    classes: dict[str, set[str]] = {}  # parent path -> class names of its layer-bearing children
    for path in paths:
        parts = path.split("/")
        if parts[0] == "params":
            parts = parts[1:]
        numbers = []
        for depth, part in enumerate(parts):
            match = _AUTO_NAME.fullmatch(part)
            if match is None:
                raise MaskError(
                    f"masks given as a list follow flax's automatic layer names (Dense_0, Dense_1, ...), but {path!r} "
                    f"has the custom name {part!r}, which says nothing about the order; pass a dict "
                    f"{{path: mask}} instead (layers: {', '.join(paths)})"
                )
            classes.setdefault("/".join(parts[:depth]), set()).add(match[1])
            numbers.append(int(match[2]))
        keys[path] = tuple(numbers)
    mixed = {parent: names for parent, names in classes.items() if len(names) > 1}
    if mixed:
        parent, names = next(iter(mixed.items()))
        raise MaskError(
            f"masks given as a list are ambiguous here: {parent or 'the top module'} holds layers of classes "
            f"{', '.join(sorted(names))}, whose automatic numbers count separately; pass a dict {{path: mask}} "
            f"(layers: {', '.join(paths)})"
        )
    return sorted(paths, key=keys.__getitem__)


def _check_mask(path: str, mask: Any, width: int, position: str = "") -> None:
    where = f"{position}the mask for {path!r}"
    if not hasattr(mask, "dtype") or mask.dtype != jnp.bool_:
        raise MaskError(
            f"{where} has dtype {getattr(mask, 'dtype', type(mask).__name__)}; masks must be boolean arrays "
            "(e.g. scores > 0.5), so that a mask keeps or drops whole neurons"
        )
    if mask.shape != (width,):
        hint = "; vmap apply_neuron_masks over a leading axis of masks" if mask.ndim > 1 else ""
        raise MaskError(f"{where} has shape {mask.shape}, but the layer outputs {width} neurons: expected ({width},){hint}")


def apply_neuron_masks(params: Any, masks: Sequence[chex.Array] | Mapping[str, chex.Array]) -> Any:
    """Returns `params` with the masked-out hidden neurons removed: phi * M.

    Zeroes the kernel column (and the bias, if the layer has one) of every dropped output neuron
    of the masked Dense layers. With an activation f(0) = 0 such as ReLU, applied right after the
    Dense layer, this equals multiplying the hidden activations by the mask (activation masking).

    Layers followed by a normalisation are different: LayerNorm re-centres and rescales its
    inputs, so a neuron zeroed before it comes out as (0 - mean) / std * scale + bias, non-zero,
    and its zero still shifts the other neurons' mean and variance. Parameter masking then does
    not remove the neuron; apply the mask after the normalisation instead, in the model:
    `x = nn.relu(nn.LayerNorm()(nn.Dense(64)(x))) * mask` (activation masking, as
    `adaps_jax.networks.MaskedMLP` does for its plain MLP).

    Args:
        params: a flax parameter tree; Dense-like layers are those with a 'kernel' (bias optional).
        masks: either a dict {layer path: (width,) bool mask}, e.g. {"params/hidden1": m1}, for any
            naming; or a list/tuple of masks for the first Dense layers in the order the module
            applies them. A list needs flax's automatic names (Dense_0, Dense_1, ... in an
            nn.compact module, nested modules likewise), because a parameter dict does not keep
            definition order: inside jit and after jax.tree.map its keys come sorted by name.
            Anything else raises MaskError (a ValueError) naming the layer. vmap for a leading
            agent or cluster axis of the masks.
    """
    # The checks run here, outside jit, so that a misuse raises a one-line error; only shapes and
    # dtypes are read, so tracers (under an outer jit or vmap) are checked the same way.
    layers = _dense_layers(params)
    if isinstance(masks, Mapping):
        unknown = [path for path in masks if path not in layers]
        if unknown:
            raise MaskError(
                f"no Dense layer at {', '.join(map(repr, unknown))}; Dense layers: {', '.join(sorted(layers)) or 'none'}"
            )
        chosen = dict(masks)
        for path, mask in chosen.items():
            _check_mask(path, mask, layers[path]["kernel"].shape[-1])
    elif isinstance(masks, (list, tuple)):
        order = _application_order(sorted(layers)) if masks else []
        if len(masks) > len(order):
            raise MaskError(f"{len(masks)} masks for {len(order)} Dense layers ({', '.join(order)})")
        chosen = dict(zip(order, masks))
        for i, (path, mask) in enumerate(chosen.items()):
            _check_mask(path, mask, layers[path]["kernel"].shape[-1], f"mask {i} (list order), ")
    else:
        raise TypeError(
            f"masks must be a dict {{layer path: mask}} or a list/tuple of masks, got {type(masks).__name__}"
        )
    return _mask_layers(params, chosen)


@jax.jit
def _mask_layers(params: Any, chosen: dict[str, chex.Array]) -> Any:
    """phi * M for checked masks, given by layer path."""

    def rebuild(tree: Any, path: str) -> Any:
        if path in chosen:
            mask = chosen[path]
            masked = {**tree, "kernel": tree["kernel"] * mask.astype(tree["kernel"].dtype)}
            if "bias" in tree:
                masked["bias"] = tree["bias"] * mask.astype(tree["bias"].dtype)
            return masked
        if isinstance(tree, Mapping):
            return {k: rebuild(v, f"{path}/{k}" if path else str(k)) for k, v in tree.items()}
        return tree

    return rebuild(params, "")


def mask_overlap(masks: Sequence[chex.Array]) -> chex.Array:
    """Pairwise Jaccard overlap |M_a and M_b| / |M_a or M_b| over all layers: (G, G) for G masks."""
    flat = jnp.concatenate([m.reshape(m.shape[0], -1) for m in masks], axis=1).astype(jnp.float32)
    both = flat @ flat.T
    either = flat.sum(1)[:, None] + flat.sum(1)[None, :] - both
    return jnp.where(either > 0, both / jnp.maximum(either, 1.0), 1.0)
