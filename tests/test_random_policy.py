"""experiments.random_policy: the random-action floor, checked against a plain Python loop."""
import jax
import numpy as np
import pytest

import envs
from experiments import random_policy

SCENARIO = "lbf-8x8-3p-2f"


def test_random_returns_match_a_python_loop_over_the_same_draws():
    """The same keys drawn one episode at a time, stepped until the episode's last step."""
    episodes, seed = 3, 7
    got = random_policy.random_returns(SCENARIO, episodes, seed)
    env = envs.make(SCENARIO)
    reset_key, act_key = jax.random.split(jax.random.PRNGKey(seed))
    reset_keys, step_keys = jax.random.split(reset_key, episodes), jax.random.split(act_key, env.time_limit)
    for i in range(episodes):
        state, _ = env.reset(reset_keys[i])
        total = 0.0
        for key in step_keys:
            action = jax.random.randint(key, (episodes, env.num_agents), 0, env.num_actions)[i]
            state, ts = env.step(state, action)
            total += float(ts.reward.sum())
            if bool(ts.last()):
                break
        assert got[i] == pytest.approx(total, abs=1e-6)
    assert got.shape == (episodes,) and np.all((got >= 0) & (got <= 1))  # LBF: the share of food levels


def test_cli_table_and_bad_input(capsys):
    assert random_policy.main([SCENARIO, "--episodes", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| scenario | random-action team return: mean (sd) | episodes |"
    assert out[2].startswith(f"| {SCENARIO} | ") and out[2].endswith(" | 2 |")
    assert random_policy.main(["nope"]) == 2
    assert "unknown scenario 'nope'" in capsys.readouterr().err
    assert random_policy.main([SCENARIO, "--episodes", "0"]) == 2
    assert "--episodes must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        random_policy.main([SCENARIO, "--episodes", "many"])
    assert stop.value.code == 2 and capsys.readouterr().err.startswith("error: argument --episodes")
