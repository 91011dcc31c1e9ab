"""Does the identity phase find the agent types? Adjusted Rand index of AdaPS's clusters.

    python -m experiments.identity_report crware-2c-small-8ag bps-15a-3c lbf-10x10-6p-3f --seeds 4

Runs only the identity phase (the shared pretraining, the VAE, k-means) for every seed, and prints
per scenario the clusters found, their adjusted Rand index (ARI) against the true types (colours,
levels) with K chosen by each selection rule (`dunn`, the default, and `davies_bouldin`, SePS's)
on the same identity vectors, the masks' mean overlap and the time taken. `--set num_clusters=K`
fixes K instead.
"""
from __future__ import annotations

import json
import sys
import time

from adaps_jax.config import CLUSTER_SELECTIONS, Config, ConfigError
from envs import scenarios
from experiments.cli import OneLineArgumentParser, start_jax


def identity_report(scenario: str, config: Config) -> dict:
    import jax
    import numpy as np

    import envs
    from adaps_jax.diagnostics import mask_overlap_means
    from adaps_jax.identity import adjusted_rand_index
    from adaps_jax.trainer import make_train, seed_keys

    env = envs.make(scenario)
    # Pretraining as one chunk without evaluation: only the identity phase's own work is timed.
    config = config.replace(scenario=scenario, method="adaps", num_logs=2, eval_episodes=0,
                            total_steps=2 * max(config.pretrain_steps, config.steps_per_update))
    trainer = make_train(config, env)
    keys = seed_keys(config.seed, config.num_seeds)
    started = time.time()
    pretrained, _ = jax.jit(jax.vmap(trainer.pretrain))(keys)
    jax.block_until_ready(pretrained)
    pretrain_s = time.time() - started
    vectors = jax.jit(jax.vmap(trainer.identities))(pretrained).identity
    jax.block_until_ready(vectors)
    vae_s = time.time() - started - pretrain_s
    state = jax.jit(jax.vmap(trainer.identify))(pretrained, vectors)  # the VAE is not trained again
    by_selection = {}
    for selection in CLUSTER_SELECTIONS:
        labels, _, k = jax.jit(jax.vmap(lambda s, v: trainer.clusters(s, v, selection)))(pretrained, vectors)
        labels = np.asarray(labels)
        by_selection[selection] = {"num_clusters": np.asarray(k).tolist(), "clusters": labels.tolist(),
                                   "ari": [adjusted_rand_index(env.agent_types, c) for c in labels]}
    overlaps = mask_overlap_means(state.plan)
    return {
        "scenario": scenario,
        "true_types": env.agent_types.tolist(),
        "num_clusters": np.asarray(state.plan.num_clusters).tolist(),
        "clusters": np.asarray(state.plan.cluster).tolist(),
        "ari": [adjusted_rand_index(env.agent_types, c) for c in np.asarray(state.plan.cluster)],
        "selection": config.cluster_selection if config.num_clusters is None else f"K={config.num_clusters}",
        "by_selection": by_selection if config.num_clusters is None else {},
        "mask_overlap_mean": overlaps,
        "pretrain_steps": config.pretrain_steps,
        "samples_per_agent": trainer.samples_per_agent(),
        "seconds": {"pretraining": pretrain_s, "vae": vae_s, "total": time.time() - started},
    }


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="python -m experiments.identity_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="+", help="scenario names (see envs.names())")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set any config field")
    parser.add_argument("--json", help="also write the reports to this JSON file")
    args = parser.parse_args(argv)
    try:
        config = Config(num_seeds=args.seeds).with_overrides(args.set)
        for scenario in args.scenarios:
            scenarios.parse(scenario)
        if args.json:  # found out now, not after minutes of computation
            with open(args.json, "a"):
                pass
    except OSError as err:
        print(f"error: cannot write --json {args.json}: {err.strerror or err}; choose a writable path", file=sys.stderr)
        return 2
    except (ValueError, ConfigError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    start_jax()
    reports = []
    for scenario in args.scenarios:
        r = identity_report(scenario, config)
        reports.append(r)
        others = "  ".join(f"{name}: K {v['num_clusters']} ARI {[round(a, 3) for a in v['ari']]}"
                           for name, v in r["by_selection"].items())
        print(f"{r['scenario']:<20} {r['selection']}: K {r['num_clusters']} ARI {[round(a, 3) for a in r['ari']]}  "
              f"mask overlap {[round(o, 2) for o in r['mask_overlap_mean']]}  {r['seconds']['total']:.0f} s "
              f"(pretraining {r['seconds']['pretraining']:.0f} s, VAE {r['seconds']['vae']:.0f} s)"
              + (f"\n{'':<20} {others}" if others else ""), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reports, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
