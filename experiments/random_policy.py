"""The test return of uniformly random actions: the floor a trained policy's return is read against.

    python -m experiments.random_policy lbf-10x10-6p-3f-2s bps-15a-3c [--episodes 1024] [--seed 0]

Per scenario, whole episodes (up to the time limit) in which every agent draws each action
uniformly from all of its actions, as an untrained policy without action masking does (an action
an agent cannot carry out gets the environment's own treatment). The figure is the team return
(summed over agents), the same quantity as the runs' test return: its mean over the episodes and
their standard deviation, in a markdown table.
"""
from __future__ import annotations

import sys

import numpy as np

import envs
from experiments.cli import OneLineArgumentParser, start_jax


def random_returns(scenario: str, episodes: int, seed: int = 0) -> np.ndarray:
    """The team return of each of `episodes` episodes of uniformly random actions (one array)."""
    import jax  # here, not at the top: the command line checks its arguments before JAX starts
    import jax.numpy as jnp

    env = envs.make(scenario)
    reset_key, act_key = jax.random.split(jax.random.PRNGKey(seed))

    def run(reset_keys, step_keys):
        env_state, ts = jax.vmap(env.reset)(reset_keys)

        def step(carry, key):
            env_state, running, total = carry
            action = jax.random.randint(key, (episodes, env.num_agents), 0, env.num_actions)
            env_state, ts = jax.vmap(env.step)(env_state, action)
            # An episode's reward counts until its last step; the copy is not reset after it.
            total = total + jnp.where(running, ts.reward.sum(-1), 0.0)
            return (env_state, running & ~ts.last(), total), None

        carry = (env_state, jnp.ones((episodes,), bool), jnp.zeros((episodes,)))
        (_, _, total), _ = jax.lax.scan(step, carry, step_keys)
        return total

    total = jax.jit(run)(jax.random.split(reset_key, episodes), jax.random.split(act_key, env.time_limit))
    return np.asarray(total)


def markdown(scenarios: list[str], episodes: int, seed: int) -> str:
    lines = ["| scenario | random-action team return: mean (sd) | episodes |", "|---|---|---|"]
    for name in scenarios:
        r = random_returns(name, episodes, seed)
        lines.append(f"| {name} | {r.mean():.3f} ({r.std():.3f}) | {episodes:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="python -m experiments.random_policy", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario names, as experiments.run takes them")
    parser.add_argument("--episodes", type=int, default=1024, help="episodes per scenario (default 1024)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in args.scenarios:
        try:
            envs.parse(name)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.episodes < 1:
        print(f"error: --episodes must be at least 1, got {args.episodes}", file=sys.stderr)
        return 2
    start_jax()
    print(markdown(args.scenarios, args.episodes, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
