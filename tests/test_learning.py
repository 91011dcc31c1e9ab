"""Learning tests (slow: minutes of CPU): `make test-slow`.

On bps-15a-3c the colours are hidden, so FuPS (one policy, no id) cannot send agents of different
colours to different landmarks; NoPS and AdaPS can.
"""
import jax
import numpy as np
import pytest

from adaps_jax.config import Config
from adaps_jax.trainer import make_train
from experiments.random_policy import random_returns

pytestmark = pytest.mark.slow
SCENARIO = "bps-15a-3c"


def final_returns(method: str, total_steps: int) -> np.ndarray:
    """Each seed's mean team return over its last logging interval."""
    config = Config(scenario=SCENARIO, method=method, num_seeds=2, total_steps=total_steps, num_logs=10)
    trainer = make_train(config)
    _, metrics = jax.jit(jax.vmap(trainer.train))(jax.random.split(jax.random.PRNGKey(0), 2))
    return np.asarray(metrics.return_sum[:, -1] / metrics.episodes[:, -1])


def test_fups_clearly_beats_a_random_policy():
    random_return = float(random_returns(SCENARIO, episodes=64).mean())
    fups = final_returns("fups", 200_000)
    print(f"random {random_return:.1f}, FuPS after 200k steps {fups}")
    assert np.all(fups > random_return + 100), (random_return, fups)


def test_adaps_and_nops_clearly_beat_fups_when_colours_are_hidden():
    fups = final_returns("fups", 400_000)
    nops = final_returns("nops", 400_000)
    adaps = final_returns("adaps", 400_000)
    print(f"FuPS {fups}, NoPS {nops}, AdaPS {adaps}")
    assert nops.min() > fups.max() + 100
    assert adaps.min() > fups.max() + 100
