"""Play one episode with a trained policy from a results folder and save it as a GIF.

    python -m experiments.render results/bps-15a-3c-quick                      # first finished method, seed 0
    python -m experiments.render results/bps-15a-3c-quick --method adaps --seed 2 --greedy --out adaps.gif

Loads the run's config.json and the method's latest checkpoint (`checkpoints/<method>`), takes one
seed's parameters and sharing plan, and plays one full episode of a fresh environment copy: every
agent samples from its policy (or takes its most likely valid action with --greedy). Each frame
shows the scenario and method, the step, the team return so far and a legend of the colours. Prints
the GIF's path and the episode's team return (rewards summed over agents and steps).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adaps_jax.config import ConfigError
from experiments import checkpoint, results
from experiments.cli import EXIT_BAD_INPUT, OneLineArgumentParser, UsageError, start_jax
from experiments.description import RunDescription, base_method, code_version


def choose_method(folder: Path, run: RunDescription, method: str | None) -> str:
    methods = [v.name for v in run.variants()]
    if method is not None:
        if method not in methods:
            raise UsageError(f"method {method!r} is not in the run {folder}; its methods: {', '.join(methods)}")
        return method
    try:
        summary = results.read_summary(folder)
    except ValueError as err:
        raise UsageError(f"{folder}: summary.json is unreadable ({err}); choose one with --method".splitlines()[0]) from None
    finished = [m for m in methods if m in summary]
    if not finished:
        raise UsageError(f"no method of {folder} has finished; choose one with --method ({', '.join(methods)})")
    return finished[0]


def play_episode(trainer, params, plan, key, greedy: bool) -> tuple[list, list[float]]:
    """One full episode of a fresh environment copy under the policy: its states (the reset state
    first) and the team reward of each step."""
    import jax
    import jax.numpy as jnp

    from adaps_jax.a2c import policy_logits

    env, network = trainer.env, trainer.network

    @jax.jit
    def act(obs, key):
        logits = policy_logits(network, params, plan, obs.agents_view, obs.action_mask, trainer.config)
        return jnp.argmax(logits, axis=-1) if greedy else jax.random.categorical(key, logits)

    step = jax.jit(env.step)
    reset_key, key = jax.random.split(key)
    state, ts = jax.jit(env.reset)(reset_key)
    states = [jax.device_get(state)]
    team_rewards = []
    for _ in range(env.time_limit):
        key, act_key = jax.random.split(key)
        state, ts = step(state, act(ts.observation, act_key))
        states.append(jax.device_get(state))
        team_rewards.append(float(jnp.sum(ts.reward)))
        if bool(ts.last()):
            break
    return states, team_rewards


def render(folder: Path, method: str | None = None, seed: int = 0, out: Path | None = None, greedy: bool = False,
           episode_seed: int = 0) -> tuple[Path, float, str, int]:
    """Writes the GIF; returns its path, the team return, the method and the episode length."""
    if out is not None and (out.suffix.lower() != ".gif" or out.is_dir()):
        raise UsageError(f"--out {out} must be a .gif file path (not a folder or another format)")
    run = RunDescription.load(folder)
    name = choose_method(folder, run, method)
    if run.code_version != code_version():
        print(f"warning: {folder} was written by code version {run.code_version}, this is {code_version()}",
              file=sys.stderr)
    variants = run.method_variants(base_method(name))
    index = [v.name for v in variants].index(name)
    config = run.config_of(variants[index])
    if not 0 <= seed < config.num_seeds:
        raise UsageError(f"--seed {seed} is out of range; the run has seeds 0..{config.num_seeds - 1}")
    start_jax()
    import jax

    import envs
    from adaps_jax.trainer import make_train
    from envs import render as draw
    from experiments.training import abstract_state, variant_hparams, variant_keys

    env = envs.make(run.scenario)
    trainer = make_train(config, env)
    ckpt_dir = folder / "checkpoints" / variants[index].method
    if not checkpoint.exists(ckpt_dir):
        raise checkpoint.CheckpointError(f"no checkpoint of {name} in {folder} (expected {ckpt_dir})")
    keys = variant_keys(config.seed, config.num_seeds, len(variants))
    hparams = variant_hparams(run.config, variants, config.num_seeds, keys)
    shapes = abstract_state(trainer, keys, checkpoint.saved_logs(ckpt_dir), hparams)
    state, _ = checkpoint.restore(ckpt_dir, shapes)
    row = index * config.num_seeds + seed
    params = jax.tree.map(lambda x: x[row], state.params)
    plan = jax.tree.map(lambda x: x[row], state.plan)
    method = name
    key = jax.random.fold_in(jax.random.PRNGKey(episode_seed), seed)
    states, team_rewards = play_episode(trainer, params, plan, key, greedy)
    mode = "greedy" if greedy else "sampled"
    out = Path(out) if out is not None else folder / "plots" / f"episode_{method}_seed{seed}_{mode}.gif"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot write to {out.parent}: {err.strerror or err}") from None
    frames = draw.episode_frames(env, states, team_rewards, f"{run.scenario} · {method} (seed {seed}, {mode} actions)")
    path = draw.save_gif(frames, out)
    return path, float(sum(team_rewards)), method, len(states) - 1


def main(argv: list[str] | None = None) -> int:
    p = OneLineArgumentParser(prog="python -m experiments.render", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("folder", metavar="DIR", help="results folder written by experiments.run")
    p.add_argument("--method", help="method to play (default: the first finished one in summary.json)")
    p.add_argument("--seed", type=int, default=0, help="which trained seed's policy (default 0)")
    p.add_argument("--out", metavar="FILE.gif", help="GIF path (default DIR/plots/episode_<method>_seed<S>_<mode>.gif)")
    p.add_argument("--greedy", action="store_true", help="take each agent's most likely action instead of sampling")
    p.add_argument("--episode-seed", type=int, default=0, help="random seed of the episode's start and actions")
    args = p.parse_args(argv)
    try:
        path, team_return, method, length = render(Path(args.folder), args.method, args.seed,
                                                   Path(args.out) if args.out else None, args.greedy, args.episode_seed)
    except (UsageError, ConfigError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:
        print(f"error: cannot write {args.out or 'the GIF'}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(path)
    print(f"team return {team_return:.2f} ({method}, seed {args.seed}, {length} steps, "
          f"{'greedy' if args.greedy else 'sampled'} actions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
