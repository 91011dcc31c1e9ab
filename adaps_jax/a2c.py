"""A2C with n-step returns, as in the SePS reference code, for every agent at once.

Three details of SePS's code are options here (docs/FIDELITY.md measures them): whether the
policy masks invalid actions (SePS: no, the environment turns them into no-ops), the gradient
clip (SePS: one global norm over every network, the default here) and its return computation
(`reference_nstep_returns`; the default here is the textbook one).
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from adaps_jax.config import Config, Hyperparams
from adaps_jax.networks import ActorCritic, masked_logits
from adaps_jax.sharing import SharingPlan


class Rollout(NamedTuple):
    """T steps of E environment copies and N agents; leading axes (T, E, N)."""

    obs: chex.Array  # (T, E, N, D) observation the action was chosen from
    action_mask: chex.Array  # (T, E, N, A)
    action: chex.Array  # (T, E, N)
    reward: chex.Array  # (T, E, N)
    next_obs: chex.Array  # (T, E, N, D) observation reached, before any automatic reset
    terminated: chex.Array  # (T, E, N) the episode ended in a terminal state: no bootstrap
    truncated: chex.Array  # (T, E, N) the episode hit its time limit: bootstrap from next_obs
    final_obs: chex.Array  # (E, N, D) observation after the last step, after any automatic reset


def nstep_returns(
    rewards: chex.Array, next_values: chex.Array, terminated: chex.Array, truncated: chex.Array, gamma: float
) -> chex.Array:
    """Discounted n-step returns over a rollout of T steps (leading axis T).

    G_t = r_t + gamma * B_t, where B_t is 0 after a termination, V(next_obs_t) after a truncation
    or at the rollout's last step, and G_{t+1} otherwise. `next_values[t]` is the critic's value of
    the observation reached by step t, before any reset.
    """

    def backward(following: chex.Array, step: tuple) -> tuple[chex.Array, chex.Array]:
        reward, next_value, term, trunc = step
        bootstrap = jnp.where(term, 0.0, next_value)
        g = reward + gamma * jnp.where(term | trunc, bootstrap, following)
        return g, g

    _, returns = jax.lax.scan(
        backward, next_values[-1], (rewards, next_values, terminated, truncated), reverse=True
    )
    return returns


def reference_nstep_returns(
    rewards: chex.Array, done: chex.Array, final_value: chex.Array, gamma: float
) -> chex.Array:
    """SePS's returns: G_t = gamma * G_{t+1} + (1 - d_t) * r_t, with G_T = V(final observation).

    `done[t]` is whether step t ended the episode (SePS's C-RWARE and LBF forks report their time
    limit as an ordinary end). Two departures from the textbook: the reward of an episode's last
    step is dropped, and the return runs on across the reset into the next episode (the value
    after the rollout is that of the observation after the reset). Kept to reproduce SePS's
    numbers, not as a default.
    """

    def backward(following: chex.Array, step: tuple) -> tuple[chex.Array, chex.Array]:
        reward, d = step
        g = gamma * following + jnp.where(d, 0.0, reward)
        return g, g

    _, returns = jax.lax.scan(backward, final_value, (rewards, done), reverse=True)
    return returns


class LossInfo(NamedTuple):
    total: chex.Array
    actor: chex.Array
    value: chex.Array
    entropy: chex.Array


def a2c_loss(params: dict, network: ActorCritic, plan: SharingPlan, rollout: Rollout, config: Config,
             hparams: Hyperparams | None = None) -> tuple[chex.Array, LossInfo]:
    """Actor loss + value_coef * value loss - entropy_coef * entropy.

    Each term is averaged over the (T, E) batch and summed over agents, as SePS sums its agents'
    losses. gamma and the coefficients come from `hparams` (swept values), else from `config`.
    """
    hparams = hparams or config.hyperparams()
    logits = policy_logits(network, params, plan, rollout.obs, rollout.action_mask, config)
    values = network.values(params, plan, rollout.obs)
    if config.reference_returns:
        final_value = jax.lax.stop_gradient(network.values(params, plan, rollout.final_obs))
        done = rollout.terminated | rollout.truncated
        returns = reference_nstep_returns(rollout.reward, done, final_value, hparams.gamma)
    else:
        next_values = jax.lax.stop_gradient(network.values(params, plan, rollout.next_obs))
        returns = nstep_returns(rollout.reward, next_values, rollout.terminated, rollout.truncated, hparams.gamma)
    advantage = returns - values

    log_probs = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_probs, rollout.action[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)

    def per_agent(x: chex.Array) -> chex.Array:  # mean over (T, E), sum over agents
        return jnp.sum(jnp.mean(x, axis=(0, 1)))

    actor = per_agent(-jax.lax.stop_gradient(advantage) * log_prob)
    value = per_agent(advantage**2)
    ent = per_agent(entropy)
    total = actor + hparams.value_coef * value - hparams.entropy_coef * ent
    return total, LossInfo(total, actor, value, ent)


def policy_logits(network: ActorCritic, params: dict, plan: SharingPlan, obs: chex.Array,
                  action_mask: chex.Array, config: Config) -> chex.Array:
    """The policy's logits; invalid actions masked out only with `config.mask_invalid_actions`."""
    logits = network.logits(params, plan, obs)
    return masked_logits(logits, action_mask) if config.mask_invalid_actions else logits


def clip_by_group_norm(max_norm: float) -> optax.GradientTransformation:
    """Clips each parameter set (the leading axis of every leaf) to a global norm of `max_norm`.

    An option (`clip_per_set`): SePS clips one global norm over all its networks
    (`optax.clip_by_global_norm`, the default), so one set's large gradient shrinks every other
    set's step; per set, each agent or cluster network is clipped on its own.
    """

    def update_fn(updates, state, params=None):
        del params
        squares = sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(updates))
        scale = jnp.minimum(1.0, max_norm / jnp.maximum(jnp.sqrt(squares), 1e-12))
        return jax.tree.map(lambda g: g * scale.reshape((-1,) + (1,) * (g.ndim - 1)), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def gradient_clip(config: Config, hparams: Hyperparams | None = None) -> optax.GradientTransformation:
    """One global norm over every parameter set (SePS), or each set on its own (`clip_per_set`)."""
    clip = clip_by_group_norm if config.clip_per_set else optax.clip_by_global_norm
    return clip((hparams or config.hyperparams()).max_grad_norm)


def make_optimizer(config: Config, hparams: Hyperparams | None = None) -> optax.GradientTransformation:
    """Gradient clip, then Adam. One Adam step count serves every parameter set: as in SePS,
    where the networks no agent uses get zero gradients and their moments stay zero. The state's
    structure does not depend on the clip norm or the learning rate, which may be traced."""
    hparams = hparams or config.hyperparams()
    return optax.chain(gradient_clip(config, hparams), optax.adam(hparams.learning_rate, eps=config.adam_eps))
