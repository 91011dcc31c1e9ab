"""experiments.plot on hand-written results folders: files, PNG validity, exact summary numbers, bad input."""
import math
import struct

import pytest

from experiments import plot, results

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _entry(mean, low, high, params, relative, diversity, wall, clusters=None, ari=None):
    return {
        "final_return_mean": mean, "final_return_min": low, "final_return_max": high, "per_seed": [high, low],
        "env_steps": 3000, "params": params, "params_per_seed": [params, params], "relative_size": relative,
        "num_param_sets": 1, "clusters": None, "num_clusters": clusters, "cluster_ari": ari,
        "mask_overlap_mean": None, "policy_diversity": [diversity, diversity], "policy_diversity_mean": diversity,
        "wall_seconds": wall,
    }


def make_folder(path, scenario="bps-15a-3c", methods=("fups", "nops"), summary=None, nan_at=("fups", 1, 1)):
    """A results folder as experiments.run writes it: methods x 2 seeds x 3 logging points, one NaN."""
    path.mkdir(parents=True)
    results.write_json(path / "config.json", {
        "scenario": scenario, "preset": "quick", "methods": list(methods), "out": str(path),
        "config": {"scenario": scenario, "num_seeds": 2, "total_steps": 3000, "num_logs": 3},
    })
    rows = []
    for k, method in enumerate(methods):
        for seed in range(2):
            for log in range(3):
                value = -100.0 + 10 * log + 5 * seed + 20 * k
                if (method, seed, log) == nan_at:
                    value = math.nan
                rows.append({"method": method, "seed": seed, "log": log, "env_steps": 1000 * (log + 1),
                             "wall_seconds": 1.0 + log, "episodes": 0 if math.isnan(value) else 4,
                             "return_mean": value, "entropy": 1.5, "actor_loss": 0.1, "value_loss": 2.0,
                             "return_type_0": value / 3})
    results.write_metrics(path / "metrics.csv", rows, ["return_type_0"])
    if summary is None:
        summary = {
            "fups": _entry(-12.5, -14.0, -11.0, 10118, 1.0, 0.0, 24.7),
            "nops": _entry(-8.25, -9.5, -7.0, 151770, 15.0, 0.125, 61.3),
        }
    results.write_json(path / "summary.json", summary)
    return path


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_folders_writes_figures_and_exact_summary(tmp_path):
    folder = make_folder(tmp_path / "run")
    out = tmp_path / "plots"
    written = plot.plot_folders([folder], out)
    names = {p.name for p in written}
    assert {"learning_curves.png", "model_size.png", "summary.md"} <= names
    assert all(p.exists() and p.parent == out for p in written)
    for name in ("learning_curves.png", "model_size.png"):
        width, height = _png_size(out / name)
        assert 400 <= width <= 4000 and 300 <= height <= 4000, (name, width, height)
        assert (out / name).stat().st_size > 5000
    text = (out / "summary.md").read_text()
    assert "## bps-15a-3c" in text
    fups = next(line for line in text.splitlines() if line.startswith("| FuPS |"))
    nops = next(line for line in text.splitlines() if line.startswith("| NoPS |"))
    for expected in ("-12.50 [-14.00, -11.00]", "10,118", "1.00×", "0.000", "24.7"):
        assert expected in fups, (expected, fups)
    for expected in ("-8.25 [-9.50, -7.00]", "151,770", "15.00×", "0.125", "61.3"):
        assert expected in nops, (expected, nops)


def test_nan_points_and_curves_statistics(tmp_path):
    run = plot.read_run(make_folder(tmp_path / "run"))
    steps, mean, low, high = run.curves["fups"].stats()
    # seed 1 of fups closed no episode at log 1: that point is the other seed's value alone.
    assert list(steps) == [1000, 2000, 3000]
    assert list(mean) == [-97.5, -90.0, -77.5]
    assert list(low) == [-100.0, -90.0, -80.0] and list(high) == [-95.0, -90.0, -75.0]


def test_several_scenarios_clusters_and_unfinished_method(tmp_path):
    summary = {"adaps": _entry(-3.0, -4.0, -2.0, 10118, 1.0, 0.5, 9.0, clusters=[3, 2], ari=[1.0, 0.75])}
    a = make_folder(tmp_path / "a", "bps-30a-5c", methods=("adaps", "seps"), summary=summary, nan_at=None)
    b = make_folder(tmp_path / "b")
    empty = make_folder(tmp_path / "c", "bps-30a-3c", methods=("fups",), summary={}, nan_at=None)
    rows = results.read_metrics(empty / "metrics.csv")
    results.write_metrics(empty / "metrics.csv", [{**r, "return_mean": math.nan} for r in rows], [])
    out = tmp_path / "plots"
    plot.plot_folders([a, b, empty], out)  # 3 panels, one without a single finished episode
    text = (out / "summary.md").read_text()
    assert "## bps-30a-5c" in text and "## bps-15a-3c" in text
    adaps = next(line for line in text.splitlines() if line.startswith("| AdaPS |"))
    assert "3, 2" in adaps and "1.00, 0.75" in adaps
    assert "| SePS (unfinished) | -57.50 [-60.00, -55.00] |" in text  # last logging point of its metrics
    assert "## bps-30a-3c" in text and "| FuPS (unfinished) | – |" in text
    width, height = _png_size(out / "learning_curves.png")
    assert width > 2 * height  # one row of three panels


@pytest.mark.parametrize("missing", ["metrics.csv", "config.json"])
def test_bad_folder_exit_code_2(tmp_path, capsys, missing):
    folder = make_folder(tmp_path / "run")
    (folder / missing).unlink()
    assert plot.main([str(folder), "--out", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err and missing in err
    assert plot.main([str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_cli_default_out_folder(tmp_path, capsys):
    folder = make_folder(tmp_path / "run")
    assert plot.main([str(folder)]) == 0
    assert (folder / "plots" / "learning_curves.png").exists()
    assert str(folder / "plots" / "summary.md") in capsys.readouterr().out


def test_read_summary_of_every_tool(tmp_path):
    """run, plot and render read summary.json through results.read_summary."""
    assert results.read_summary(tmp_path) == {}
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="^not an object of methods$"):
        results.read_summary(tmp_path)
    (tmp_path / "summary.json").write_text("{\"fups\": ")
    with pytest.raises(ValueError, match="Expecting value"):
        results.read_summary(tmp_path)
    (tmp_path / "summary.json").write_text("{\"fups\": {}}")
    assert results.read_summary(tmp_path) == {"fups": {}}
