"""Train AdaPS and its baselines on one scenario, for several seeds, into a results folder.

    python -m experiments.run --env crware                      # all six methods, 4 seeds, quick
    python -m experiments.run --env bps --method adaps fups --seeds 8 --preset paper
    python -m experiments.run --env bps --method adaps --sweep mask_threshold=0.1,0.2,0.4,0.6
    python -m experiments.run --resume results/bps-15a-3c-quick  # continue an interrupted run

Each method trains all its seeds, and every value of a `--sweep`, at once (one compiled, vmapped
program); the host only loops over logging points to print progress, append metrics and write a
checkpoint. Ctrl-C or SIGTERM stops after the current logging point with everything written (exit
code 130 / 143); a second Ctrl-C stops at once, keeping the last checkpoint. `--resume DIR`
continues exactly: the resumed run ends with the same metrics and parameters as an uninterrupted
one. Running the same command again into the same folder continues it too; a folder holding a
different run is never touched. Compiled programs are kept on disk (`--no-compile-cache` to not),
so the same config starts at once the next time.

Exit codes: 0 done, 1 numerical trouble (a non-finite loss, gradient or parameter), too little
memory or a failed write, 2 bad input (one line on stderr starting `error:`), 130 / 143 stopped by
SIGINT / SIGTERM.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from adaps_jax.config import Config, ConfigError
from adaps_jax.methods import METHODS
from envs import scenarios
from experiments import results
from experiments.checkpoint import CheckpointError
from experiments.cli import EXIT_BAD_INPUT, EXIT_FAILED, OneLineArgumentParser, UsageError, start_jax
from experiments.console import StopRequest, describe, summary_writer_class, tensorboard_writer
from experiments.description import RunDescription, code_version, parse_sweep
from experiments.folder import check_finished_rows, folder_lock, make_folder, prepare_folder, read_results, remove_if_empty
from experiments.presets import ENV_DEFAULT_SCENARIO, PRESETS, env_family

# Fields chosen by their own flags, never through --set or a config file.
FLAG_FIELDS = {"scenario": "--scenario", "method": "--method"}


def _positive_int(text: str) -> int:
    """A positive integer; accepts `2e6` and `2_000_000`."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        value = int(number) if math.isfinite(number) and number == int(number) else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog="python -m experiments.run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config fields for --set: " + ", ".join(Config.__dataclass_fields__),
    )
    p.add_argument("--env", choices=sorted(ENV_DEFAULT_SCENARIO), help="environment family, with its default scenario")
    p.add_argument("--scenario", help="scenario name (see envs.names()); overrides --env's default")
    p.add_argument("--method", nargs="+", metavar="METHOD", help=f"one or more of: all, {', '.join(METHODS)} (default all)")
    p.add_argument("--seeds", type=_positive_int, help="number of seeds trained together (default 4)")
    p.add_argument("--steps", type=_positive_int, help="environment steps per seed, pretraining included")
    p.add_argument("--num-envs", type=_positive_int, help="parallel environment copies per seed (default 8)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="step budget (default quick)")
    p.add_argument("--out", help="results folder (default results/<scenario>-<preset>)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR, as configured there")
    p.add_argument("--config", metavar="FILE", help="JSON file of config fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set any config field")
    p.add_argument("--sweep", action="append", default=[], metavar="FIELD=V1,V2",
                   help="train every value side by side in one program (repeat for a grid)")
    p.add_argument("--tensorboard", action="store_true", help="also log to DIR/tensorboard (needs tensorboardX)")
    p.add_argument("--no-plots", action="store_true", help="do not draw DIR/plots at the end")
    p.add_argument("--no-compile-cache", action="store_true", help="do not keep compiled programs on disk")
    return p


def resolve_run(args: argparse.Namespace) -> RunDescription:
    """The description of a new run from the command line (no JAX needed)."""
    if args.env is None and args.scenario is None:
        raise UsageError("give --env {bps,crware,lbf} or --scenario NAME (or --resume DIR)")
    if args.scenario is not None and not args.scenario.strip():
        raise UsageError("--scenario is empty; give a scenario name (see envs.names()) or --env {bps,crware,lbf}")
    scenario = args.scenario or ENV_DEFAULT_SCENARIO[args.env]
    try:
        scenarios.parse(scenario)
    except ValueError as err:
        raise UsageError(str(err).splitlines()[0]) from None
    requested = args.method or ["all"]
    for m in requested:
        if m != "all" and m not in METHODS:
            raise UsageError(f"unknown method {m!r}; allowed: all, {', '.join(METHODS)}")
    methods = list(METHODS) if "all" in requested else list(dict.fromkeys(requested))
    preset = args.preset or "quick"
    config = Config(scenario=scenario, **PRESETS[preset].get(env_family(scenario), {}))
    if args.config:
        try:
            loaded = results.read_json(Path(args.config))
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read config file {args.config}: {err}".splitlines()[0]) from None
        if not isinstance(loaded, dict):
            raise UsageError(f"config file {args.config} must hold a JSON object of config fields, "
                             f"got a {type(loaded).__name__}")
        for name in loaded:
            if name in FLAG_FIELDS:
                raise UsageError(f"config file {args.config} sets {name}; choose it with {FLAG_FIELDS[name]}")
        given = Config.from_dict(loaded, f"in {args.config}")  # each field checked against its type
        config = config.replace(**{name: getattr(given, name) for name in loaded})
    for flag, name in (("seeds", "num_seeds"), ("steps", "total_steps"), ("num_envs", "num_envs")):
        if getattr(args, flag) is not None:
            config = config.replace(**{name: getattr(args, flag)})
    config = config.with_overrides(args.set, refused=FLAG_FIELDS)
    run = RunDescription(scenario=scenario, preset=preset, methods=tuple(methods),
                         out=str(args.out or f"results/{scenario}-{preset}"), config=config,
                         code_version=code_version(), sweep=parse_sweep(args.sweep), tensorboard=args.tensorboard)
    run.validate()  # every method at every swept value; also refuses NaN and infinite numbers
    return run


def load_for_resume(args: argparse.Namespace) -> RunDescription:
    """The run stored in the --resume folder, checked against this code."""
    given = {"--env": args.env, "--scenario": args.scenario, "--method": args.method, "--seeds": args.seeds,
             "--steps": args.steps, "--num-envs": args.num_envs, "--preset": args.preset, "--out": args.out,
             "--config": args.config, "--set": args.set, "--sweep": args.sweep}
    extra = [flag for flag, value in given.items() if value]
    directory = Path(args.resume)
    if extra:
        raise UsageError(f"--resume continues {directory} exactly as its config.json says; drop {', '.join(extra)} "
                         "(or start a new run with another --out)")
    if not (directory / "config.json").is_file():
        raise UsageError(f"cannot resume {directory}: no config.json there (not a results folder)")
    run = RunDescription.load(directory)
    if run.code_version != code_version():
        raise UsageError(f"cannot resume {directory}: it was written by code version {run.code_version}, "
                         f"this is {code_version()}; rerun it from scratch into another --out")
    return run.replace(out=str(directory), tensorboard=run.tensorboard or args.tensorboard)


def execute(run: RunDescription, out: Path, stop: StopRequest, tensorboard, plots: bool, started: float) -> int:
    """Trains every method of the run that is not finished yet; the process exit code."""
    from experiments.training import NonFiniteError, OutOfMemory, compare, train_method

    rows, summary = read_results(out)
    resume_hint = f"python -m experiments.run --resume {out}"
    try:
        for method in run.methods:
            names = [v.name for v in run.method_variants(method)]
            if all(name in summary for name in names):
                for name in names:
                    check_finished_rows(rows, name, run.config, out)
                print(f"{method}: already finished, skipped", file=sys.stderr)
                continue
            # Even when a stop came during start-up, the method's first checkpoint is written first.
            entries = train_method(run, method, out, rows, stop, tensorboard, started)
            if entries is None:
                break
            started = time.time()  # the next method's time starts now
            summary.update(entries)
            compare(summary, rows)
            results.write_json(out / "summary.json", summary)
            for name, entry in entries.items():
                print(describe(name, entry), file=sys.stderr)
    except (NonFiniteError, OutOfMemory) as err:  # with a failed last save as its note (checkpoint.Writer.finish)
        print(f"error: {err}" + "".join(f"; {note}" for note in getattr(err, "__notes__", ())), file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:
        print(f"error: cannot write results to {out}: {err}; resume with: {resume_hint}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED
    names = [v.name for v in run.variants()]
    if any(name not in summary for name in names):
        print(f"stopped cleanly after a logging point; resume with: {resume_hint}", file=sys.stderr)
        return stop.exit_code()
    if plots:
        _try_plots(out)
    finals = [f"{n} {summary[n]['final_return_iqm']:.2f}" if summary[n].get("final_return_iqm") is not None
              else f"{n} n/a" for n in names]
    print("test return IQM: " + " | ".join(finals) + f"  ({out})", file=sys.stderr)
    return 0


def _try_plots(out: Path) -> None:
    """Draws the run's plots when matplotlib is installed; results never depend on it."""
    try:
        from experiments import plot
    except ImportError:
        return
    try:
        plot.plot_folders([out], out / "plots")
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install 'adaps-jax[plots]')", file=sys.stderr)
    except Exception as err:  # a plotting bug must not turn a finished run into a failure
        print(f"plots skipped: {type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    out, created, owned = None, False, False
    with StopRequest() as stop:
        try:
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as done:  # --help, or a bad argument (its one error line is printed)
                return int(done.code or 0)
            if args.tensorboard:
                summary_writer_class()  # before anything is written
            run = load_for_resume(args) if args.resume else resolve_run(args)
            out = Path(run.out)
            if not args.resume:
                created = make_folder(out)
            # The lock comes before config.json: two runs started into one new folder at the same
            # instant must not both write it (the loser stops with "in use").
            with folder_lock(out):
                # Only the process holding the lock may remove the folder it created: a loser that
                # removed it would pull the empty folder from under the winner.
                owned = created
                start_jax(args.no_compile_cache)
                if not args.resume:
                    from experiments.provenance import environment_record

                    prepare_folder(run.replace(environment=environment_record()))
                tensorboard = tensorboard_writer(out) if run.tensorboard else None
                code = execute(run, out, stop, tensorboard, not args.no_plots, started)
                if created and code == EXIT_FAILED and [p.name for p in out.iterdir()] == ["config.json"]:
                    (out / "config.json").unlink()  # refused before anything ran (too little memory)
                    remove_if_empty(out)
                return code
        except (UsageError, ConfigError, CheckpointError) as err:
            if owned:
                remove_if_empty(out)  # a run that never started leaves no folder behind
            print(f"error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:  # a second Ctrl-C (or the first, before the handler was set)
            hint = f"; resume from the last checkpoint with: python -m experiments.run --resume {out}" if out else ""
            print(f"\nstopped at once{hint}", file=sys.stderr)
            return stop.exit_code()


if __name__ == "__main__":
    sys.exit(main())
