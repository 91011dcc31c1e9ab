"""One training whose seeds are spread over the devices of several machines (`jax.distributed`).

Start the same command on every machine, each with its own `--process-id`:

    python -m experiments.multihost --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0 \\
        --scenario bps-15a-3c --method adaps --seeds 64 --steps 1000000 --out results/multihost.json
    python -m experiments.multihost --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 1 \\
        --scenario bps-15a-3c --method adaps --seeds 64 --steps 1000000 --out results/multihost.json

Under SLURM, Open MPI or on Cloud TPU leave out the three process flags: `jax.distributed.initialize`
reads them from the job's environment. What happens: every process builds the same seed keys;
`seed_keys` shards them over the devices of all processes, so each process initialises and trains
only its own devices' seeds (a chunk has no collectives: the machines meet only at start-up and
when the per-seed metrics of each chunk are all-gathered). Process 0 writes them to `--out` as JSON.
The metrics are those of the same seeds on one machine (tests/test_multihost.py: two processes with
two CPU devices each against one process).

Seeds are independent, so this keeps no checkpoints: for long sweeps that must survive
interruptions, run `experiments.run --set seed=S` on each machine with a different S instead.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import jax

from experiments.cli import EXIT_BAD_INPUT, EXIT_FAILED, OneLineArgumentParser, UsageError

# Variables by which jax.distributed finds the job without the three process flags.
CLUSTER_VARIABLES = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS")
JOIN_TIMEOUT_S = 120  # the other processes have this long to start

# The project's modules are imported only after jax.distributed.initialize: importing jumanji
# (under envs and adaps_jax) already starts JAX's backend, after which JAX refuses to join a job.


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--coordinator", help="host:port of process 0 (omit where the job environment provides it)")
    p.add_argument("--num-processes", type=int, help="number of processes (machines) in the job")
    p.add_argument("--process-id", type=int, help="this process's index, 0 .. num-processes - 1")
    p.add_argument("--scenario", default="bps-15a-3c", help="scenario name (see envs.names())")
    p.add_argument("--method", default="adaps", help="nops, fups, fups_id, seps, snp_ps or adaps")
    p.add_argument("--seeds", type=int, default=8, help="seeds in all; a multiple of the number of devices")
    p.add_argument("--steps", type=int, default=400_000, help="environment steps per seed, pretraining included")
    p.add_argument("--num-logs", type=int, default=10, help="chunks (metric rows per seed)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set any config field")
    p.add_argument("--out", required=True, help="JSON file that process 0 writes")
    return p


def train(config) -> list[dict]:
    """Trains `config` over every device of every process; each chunk's metrics for all seeds."""
    import numpy as np
    from jax.experimental import multihost_utils

    from adaps_jax.config import ConfigError
    from adaps_jax.trainer import compiled_chunks, jit_over_seeds, make_train, seed_keys

    devices = jax.device_count()
    if config.num_seeds % devices:
        raise ConfigError(f"--seeds {config.num_seeds} is not a multiple of the {devices} devices of this job")
    trainer = make_train(config)
    keys = seed_keys(config.seed, config.num_seeds)
    state = jit_over_seeds(trainer.init, keys)(keys)
    chunks = compiled_chunks(trainer, keys)
    rows = []
    for log in range(config.num_logs):
        state, metrics = chunks(log)(state)
        gathered = multihost_utils.process_allgather(metrics, tiled=True)  # every seed, on every process
        evaluation = {f"eval_{name}": np.asarray(value).tolist() for name, value in gathered.evaluation._asdict().items()}
        rows.append({"log": log, "env_steps": trainer.env_steps(log + 1), **evaluation,
                     **{name: np.asarray(value).tolist() for name, value in gathered._asdict().items()
                        if name != "evaluation"}})
    return rows


def check_job(args: argparse.Namespace) -> None:
    """The process flags, checked before joining the job (a bad one would hang or fail deep in JAX)."""
    given = [args.coordinator is not None, args.num_processes is not None, args.process_id is not None]
    cluster = any(name in os.environ for name in CLUSTER_VARIABLES)
    if not all(given) and (any(given) or not cluster):
        raise UsageError("give all of --coordinator HOST:PORT, --num-processes N and --process-id I (or none of "
                         "them under SLURM, Open MPI or Cloud TPU, whose job environment provides them)")
    if not all(given):
        return
    if args.num_processes < 1 or not 0 <= args.process_id < args.num_processes:
        raise UsageError(f"--process-id {args.process_id} is outside 0..{args.num_processes - 1} for "
                         f"--num-processes {args.num_processes}")
    host, sep, port = args.coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--coordinator {args.coordinator!r} is not HOST:PORT (port 1..65535)")
    try:
        socket.getaddrinfo(host.strip("[]"), int(port))
    except OSError as err:
        raise UsageError(f"--coordinator {args.coordinator}: cannot resolve host {host!r} ({err.strerror or err})") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from adaps_jax.config import Config, ConfigError
    from envs import scenarios
    from experiments import results

    try:
        check_job(args)
        config = Config(scenario=args.scenario, method=args.method, num_seeds=args.seeds, total_steps=args.steps,
                        num_logs=args.num_logs).with_overrides(args.set)
        config.validate(scenarios.num_agents(config.scenario))
        out = Path(args.out)
        if out.is_dir() or not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
            raise UsageError(f"--out {out}: cannot write a file there; choose a writable file path")
    except (ValueError, UsageError) as error:  # ConfigError, a bad --set, an unknown scenario, bad flags
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from adaps_jax.runtime import configure_cpu

    configure_cpu()  # XLA flags only: the backend starts inside initialize
    try:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                                   initialization_timeout=JOIN_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - JAX raises several kinds; all mean the job could not form
        print(f"error: cannot join the job at {args.coordinator or 'the job environment'}: "
              f"{type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        rows = train(config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if jax.process_index() == 0:
        summary = {"config": config.to_dict(), "processes": jax.process_count(),
                   "devices": jax.device_count(), "chunks": rows}
        try:
            results.write_json(out, summary)
        except OSError as err:
            print(f"error: cannot write --out {out}: {err.strerror or err}", file=sys.stderr)
            return EXIT_FAILED
        print(f"wrote {args.out}: {config.method} on {config.scenario}, {config.num_seeds} seeds over "
              f"{jax.device_count()} devices of {jax.process_count()} processes")
    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
