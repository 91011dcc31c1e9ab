"""Does the identity phase find the agent types? Adjusted Rand index of AdaPS's clusters.

    python -m experiments.identity_report bps-15a-3c bps-30a-5c-uneven crware-2c-small-8ag lbf-10x10-6p-3f

Runs only the identity phase (pretraining, VAE, k-means with K chosen by Davies-Bouldin unless
`--set num_clusters=K`) for every seed, and prints per scenario the clusters found, their
adjusted Rand index against the true types (colours, levels) and the masks' mean overlap.
"""
from __future__ import annotations

import argparse
import json
import sys

import jax
import numpy as np

import envs
from adaps_jax.config import Config, ConfigError, parse_value
from adaps_jax.diagnostics import plan_mask_overlap
from adaps_jax.identity import adjusted_rand_index
from adaps_jax.trainer import make_train, seed_keys


def identity_report(scenario: str, config: Config) -> dict:
    env = envs.make(scenario)
    trainer = make_train(config.replace(scenario=scenario, method="adaps"), env)
    state = jax.jit(jax.vmap(trainer.init))(seed_keys(config.seed, config.num_seeds))
    clusters = np.asarray(state.plan.cluster)
    overlaps = []
    for seed in range(config.num_seeds):
        matrix = plan_mask_overlap(jax.tree.map(lambda x: x[seed], state.plan))
        off = ~np.eye(len(matrix), dtype=bool)
        overlaps.append(float(matrix[off].mean()))
    return {
        "scenario": scenario,
        "true_types": env.agent_types.tolist(),
        "num_clusters": np.asarray(state.plan.num_clusters).tolist(),
        "clusters": clusters.tolist(),
        "ari": [adjusted_rand_index(env.agent_types, c) for c in clusters],
        "mask_overlap_mean": overlaps,
        "pretrain_steps": config.pretrain_steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.identity_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="+", help="scenario names (see envs.names())")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set any config field")
    parser.add_argument("--json", help="also write the reports to this JSON file")
    args = parser.parse_args(argv)
    try:
        pairs = [item.split("=", 1) for item in args.set]
        fields = {key: parse_value(key, value) for key, value in pairs}
        config = Config(num_seeds=args.seeds, **fields)
        reports = [identity_report(s, config) for s in args.scenarios]
    except (ValueError, ConfigError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    for r in reports:
        print(f"{r['scenario']:<22} K found {r['num_clusters']}  ARI {[round(a, 3) for a in r['ari']]}  "
              f"mask overlap {[round(o, 2) for o in r['mask_overlap_mean']]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reports, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
