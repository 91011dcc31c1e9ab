"""Bad input to the other command lines (plot, report, render, multihost, identity_report, bench):
one line starting `error:`, exit 2, nothing changed. A table of bad invocations, like
tests/test_cli_errors.py for experiments.run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import identity_report, multihost, plot, render, report, results
from experiments.bench import main as bench_main
from experiments.description import RunDescription


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A results folder as experiments.run writes it (config, metrics, summary; nothing trained),
    and damaged copies of it."""
    root = tmp_path_factory.mktemp("folders")
    good = root / "good"
    good.mkdir()
    from adaps_jax.config import Config

    run = RunDescription("bps-4a-2c", "quick", ("fups",), str(good), Config(scenario="bps-4a-2c", num_seeds=2,
                         total_steps=400, num_logs=2, num_envs=2), "v")
    run.save(good / "config.json")
    rows = [{"method": "fups", "seed": s, "log": log, "env_steps": 200 * (log + 1), "wall_seconds": 1.0, "episodes": 4,
             "return_mean": -10.0 + log, "entropy": 1.6, "actor_loss": 0.1, "value_loss": 2.0,
             "eval_return_greedy": -9.0 + log, "eval_return_sampled": -9.5} for log in range(2) for s in range(2)]
    results.write_metrics(good / "metrics.csv", rows, [])
    made = {"good": good}

    def copy(name: str, change) -> None:
        folder = root / name
        folder.mkdir()
        for f in good.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        change(folder)
        made[name] = folder

    def no_method_column(folder: Path) -> None:
        lines = (folder / "metrics.csv").read_text().splitlines()
        (folder / "metrics.csv").write_text("\n".join(line.split(",", 1)[1] for line in lines) + "\n")

    def edit_config(**changes):
        def change(folder: Path) -> None:
            data = json.loads((folder / "config.json").read_text())
            (folder / "config.json").write_text(json.dumps({**data, **changes}) if changes else "[1, 2]")
        return change

    copy("no method column", no_method_column)
    copy("methods 5", edit_config(methods=5))
    copy("config a list", edit_config())
    copy("unknown config key", edit_config(config={**run.config.to_dict(), "bogus": 1}))
    copy("summary wrong types", lambda f: (f / "summary.json").write_text(json.dumps(
        {"fups": {"final_return_iqm": "high", "final_return_ci95": 5, "policy_diversity": "x"}})))
    return made


def one_error(main, argv, capsys) -> str:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as done:
        code = done.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# (command, arguments (FOLDER: the damaged folder of the id), words the one line must contain)
BAD = {
    "plot: no method column": (plot.main, ["FOLDER", "--out", "OUT"], ["lacks the column(s) method"]),
    "plot: methods 5": (plot.main, ["FOLDER", "--out", "OUT"], ["methods must be a list", "5"]),
    "plot: summary wrong types": (plot.main, ["FOLDER", "--out", "OUT"], ["final_return_iqm must be a number", "'high'"]),
    "report: methods 5": (report.main, ["FOLDER"], ["methods must be a list"]),
    "report: summary wrong types": (report.main, ["FOLDER"], ["final_return_iqm"]),
    "render: config a list": (render.main, ["FOLDER"], ["config.json is corrupt", "list"]),
    "render: unknown config key": (render.main, ["FOLDER"], ["'bogus'", "learning_rate"]),
    "render: --out .txt": (render.main, ["good", "--out", "OUT/episode.txt"], ["episode.txt", ".gif"]),
    "render: --out a folder": (render.main, ["good", "--out", "OUT"], [".gif", "not a folder"]),
    "multihost: no coordinator": (multihost.main, ["--out", "OUT/m.json"], ["--coordinator HOST:PORT", "--process-id"]),
    "multihost: process id 5 of 2": (multihost.main, ["--coordinator", "localhost:1234", "--num-processes", "2",
                                                      "--process-id", "5", "--out", "OUT/m.json"], ["--process-id 5", "0..1"]),
    "multihost: notahost": (multihost.main, ["--coordinator", "notahost:1234", "--num-processes", "2", "--process-id", "0",
                                            "--out", "OUT/m.json"], ["notahost", "cannot resolve"]),
    "multihost: unwritable out": (multihost.main, ["--coordinator", "localhost:1234", "--num-processes", "1",
                                                  "--process-id", "0", "--out", "OUT/missing/m.json"], ["cannot write"]),
    "multihost: bad argument": (multihost.main, ["--seeds", "many", "--out", "OUT/m.json"], ["--seeds", "'many'"]),
    "identity_report: unwritable json": (identity_report.main, ["bps-4a-2c", "--json", "OUT/missing/r.json"],
                                         ["cannot write --json", "writable"]),
    "identity_report: unknown scenario": (identity_report.main, ["bps-nope"], ["'bps-nope'"]),
    "bench: unknown section": (bench_main.main, ["--sections", "warp"], ["'warp'", "training"]),
    "bench: two settings": (bench_main.main, ["--quick", "--gpu"], ["--quick and --gpu"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_invocation_is_one_line_exit_2(name, folders, tmp_path, capsys):
    main, argv, words = BAD[name]
    damaged = name.split(": ", 1)[1]
    folder = folders.get(damaged)
    before = {p: p.read_bytes() for f in folders.values() for p in f.rglob("*") if p.is_file()}
    argv = [str(folder) if a == "FOLDER" else str(folders["good"]) if a == "good"
            else a.replace("OUT", str(tmp_path)) for a in argv]
    line = one_error(main, argv, capsys)
    for word in words:
        assert word in line, line
    assert {p: p.read_bytes() for f in folders.values() for p in f.rglob("*") if p.is_file()} == before
