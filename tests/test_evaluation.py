"""Test returns: evaluation episodes inside the compiled program."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.types import TimeStep

from adaps_jax.config import Config
from adaps_jax.trainer import make_train
from envs.core import MultiAgentEnv, Observation


@chex.dataclass
class CounterState:
    step_count: chex.Array


class PressTwo(MultiAgentEnv[CounterState]):
    """Two agents of two types, three actions; each gets reward 1 for action 2, else 0; four steps.
    Deterministic: the best policy's team return is exactly 2 x 4 = 8."""

    def __init__(self):
        self.num_agents, self.num_actions, self.obs_dim, self.time_limit = 2, 3, 2, 4
        self.agent_types = np.array([0, 1], np.int32)
        super().__init__()

    def reset(self, key: chex.PRNGKey) -> tuple[CounterState, TimeStep[Observation]]:
        return CounterState(step_count=jnp.zeros((), jnp.int32)), self.first_timestep(self.observation(jnp.ones((2, 2))))

    def step(self, state: CounterState, action: chex.Array) -> tuple[CounterState, TimeStep[Observation]]:
        state = CounterState(step_count=state.step_count + 1)
        reward = (action == 2).astype(jnp.float32)
        return state, self.next_timestep(self.observation(jnp.ones((2, 2))), reward, jnp.asarray(False), state.step_count)

    def render(self, state):
        raise NotImplementedError


def _prefer_action_two(params: dict) -> dict:
    """Actor parameters that favour action 2 everywhere (zero weights, head bias [0, 0, 3])."""
    actor = jax.tree.map(jnp.zeros_like, params["actor"])
    head = sorted(actor["params"])[-1]
    actor["params"][head]["bias"] = actor["params"][head]["bias"].at[..., 2].set(3.0)
    return {**params, "actor": actor}


def test_greedy_evaluation_of_a_known_policy_returns_its_exact_return():
    config = Config(scenario="press-two", method="fups", num_envs=2, hidden_sizes=(4,), num_logs=1, total_steps=10,
                    eval_episodes=16)
    trainer = make_train(config, PressTwo())
    state = trainer.init(jax.random.PRNGKey(0))
    result = trainer.evaluate(state.replace(params=_prefer_action_two(state.params)))
    assert float(result.greedy) == 8.0
    np.testing.assert_array_equal(result.greedy_type, [4.0, 4.0])
    # Sampled actions pick action 2 with probability e^3 / (e^3 + 2) = 0.909: fewer points, never more.
    assert 5.0 < float(result.sampled) < 8.0
    np.testing.assert_allclose(float(result.sampled), float(result.sampled_type.sum()), rtol=1e-6)


@pytest.mark.slow  # minutes of compilation; `make test-slow`
def test_evaluation_never_changes_the_training_trajectory():
    # SNP-PS: a method with masks and several parameter-free per-agent differences, without the
    # identity phase's minutes of compilation (the evaluation reads the state the same way for all).
    base = Config(scenario="bps-4a-2c", method="snp_ps", num_seeds=2, num_envs=2, hidden_sizes=(8,), num_logs=3,
                  total_steps=600)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    runs = []
    for episodes in (0, 4):
        trainer = make_train(base.replace(eval_episodes=episodes))
        runs.append(jax.device_get(jax.jit(jax.vmap(trainer.train))(keys)))
    (state_off, m_off), (state_on, m_on) = runs
    assert np.isnan(m_off.evaluation.greedy).all() and np.isfinite(m_on.evaluation.greedy).all()
    for name in ("episodes", "return_sum", "type_return_sum", "entropy", "actor_loss", "value_loss"):
        np.testing.assert_array_equal(getattr(m_off, name), getattr(m_on, name))
    for a, b in zip(jax.tree.leaves(state_off.params), jax.tree.leaves(state_on.params)):
        np.testing.assert_array_equal(a, b)
