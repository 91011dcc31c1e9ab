"""experiments.plot on hand-written results folders: files, PNG validity, exact summary numbers, bad input."""
import math
import struct

import numpy as np
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


# ---- test-return figures ------------------------------------------------------------------------

EVAL_FIELDS = ["method", "seed", "log", "env_steps", "wall_seconds", "episodes", "return_mean", "entropy",
               "actor_loss", "value_loss", "eval_return_greedy", "eval_return_sampled", "return_type_0",
               "return_type_1", "eval_return_greedy_type_0", "eval_return_greedy_type_1",
               "eval_return_sampled_type_0", "eval_return_sampled_type_1"]


def eval_folder(path, scenario, base):
    """A folder of the version that evaluates: 2 seeds x 3 logging points, greedy test return
    base[method] + 10 log + seed, split evenly over two agent types; written with csv directly."""
    import csv
    path.mkdir(parents=True)
    results.write_json(path / "config.json", {"scenario": scenario, "preset": "quick", "methods": list(base),
                                              "config": {"scenario": scenario, "num_seeds": 2}})
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
        writer.writeheader()
        for method, b in base.items():
            for seed in range(2):
                for log in range(3):
                    g = b + 10 * log + seed
                    writer.writerow({"method": method, "seed": seed, "log": log, "env_steps": 1000 * (log + 1),
                                     "wall_seconds": 1.0, "episodes": 4, "return_mean": g - 50, "entropy": 1.0,
                                     "actor_loss": 0.0, "value_loss": 0.0, "eval_return_greedy": g,
                                     "eval_return_sampled": g - 1, "return_type_0": (g - 50) / 2,
                                     "return_type_1": (g - 50) / 2, "eval_return_greedy_type_0": g / 2,
                                     "eval_return_greedy_type_1": g / 2, "eval_return_sampled_type_0": g / 2,
                                     "eval_return_sampled_type_1": g / 2})
    return path


def test_curve_bands_by_hand(tmp_path):
    curve = plot.read_run(make_folder(tmp_path / "run")).curves["fups"]
    steps, iqm, low, high = curve.band("ci")
    # Two seeds: resampled IQMs are the lower value, the mean or the upper value; log 1 has one seed.
    assert list(steps) == [1000, 2000, 3000]
    assert list(iqm) == [-97.5, -90.0, -77.5]
    assert list(low) == [-100.0, -90.0, -80.0] and list(high) == [-95.0, -90.0, -75.0]
    assert [list(a) for a in curve.band("minmax")] == [list(a) for a in curve.stats()]
    with pytest.raises(plot.PlotInputError, match=r"allowed: ci, minmax"):
        curve.band("sd")


def test_evaluated_folders_write_every_figure(tmp_path):
    a = eval_folder(tmp_path / "a", "bps-15a-3c", {"adaps": 0.0, "fups": -20.0, "nops": 5.0})
    b = eval_folder(tmp_path / "b", "lbf-10x10-6p-3f", {"adaps": 1.0, "fups": 2.0})
    runs = [plot.read_run(a), plot.read_run(b)]
    assert runs[0].has_eval and runs[0].num_types == 2
    assert runs[0].test_curves["fups"].returns.tolist() == [[-20.0, -10.0, 0.0], [-19.0, -9.0, 1.0]]
    scenarios, matrices, notes = plot.final_test_scores(runs)
    assert scenarios == ["bps-15a-3c", "lbf-10x10-6p-3f"]
    assert matrices["adaps"].tolist() == [[20.0, 21.0], [21.0, 22.0]]
    assert matrices["fups"].tolist() == [[0.0, 22.0], [1.0, 23.0]] and set(matrices) == {"adaps", "fups"}
    assert notes == ["left out of the aggregate figures (no final test return in every scenario): NoPS"]
    out = tmp_path / "plots"
    collected = []
    written = plot.plot_folders([a, b], out, per_type=True, backend="numpy", notes=collected)
    names = {p.name for p in written}
    assert {"learning_curves.png", "per_type_curves.png", "aggregate_iqm.png", "probability_of_improvement.png"} <= names
    assert collected == notes
    for name in ("aggregate_iqm.png", "probability_of_improvement.png"):
        width, height = _png_size(out / name)
        assert 700 <= width <= 1400 and height < width, (name, width, height)  # shown about 700 px wide
    width, height = _png_size(out / "per_type_curves.png")
    assert width > height  # two scenarios of two types: two rows of two panels and the legend
    assert "model_size.png" not in names  # no summary.json: no method has finished


def test_same_scenario_in_two_folders_skips_the_aggregate(tmp_path):
    a = eval_folder(tmp_path / "a", "bps-15a-3c", {"adaps": 0.0, "fups": -20.0})
    b = eval_folder(tmp_path / "b", "bps-15a-3c", {"adaps": 1.0})
    notes = []
    written = plot.plot_folders([a, b], tmp_path / "plots", backend="numpy", notes=notes)
    assert not any(p.name.startswith("aggregate") for p in written)
    assert notes == ["no aggregate figures: bps-15a-3c has AdaPS in several folders (give one folder per scenario)"]


def test_old_folder_plots_training_curves_and_says_what_needs_evaluation(tmp_path, capsys):
    folder = make_folder(tmp_path / "run")
    out = tmp_path / "plots"
    assert plot.main([str(folder), "--out", str(out), "--band", "minmax", "--per-type"]) == 0
    lines = capsys.readouterr().out.splitlines()
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(notes) == 1 and f"no evaluation columns in {folder}" in notes[0]
    assert "per-type curves included, show the training return" in notes[0]
    assert "aggregate_iqm and probability_of_improvement leave them out" in notes[0] and "rerun" in notes[0]
    assert (out / "learning_curves.png").exists() and (out / "per_type_curves.png").exists()
    assert not (out / "aggregate_iqm.png").exists() and not (out / "probability_of_improvement.png").exists()
    with pytest.raises(plot.PlotInputError, match="allowed: ci, minmax"):
        plot.plot_folders([folder], out, band="range")
    with pytest.raises(plot.PlotInputError, match="allowed: auto, numpy, rliable"):
        plot.plot_folders([folder], out, backend="R")


# ---- identity.png and masks.png ------------------------------------------------------------------

TYPES_15A_3C = [0] * 5 + [1] * 5 + [2] * 5  # envs.make("bps-15a-3c").agent_types


def _method_entry(rng, clusters_per_seed, latent=10, hidden=(64, 64), masks=True):
    """An AdaPS (masks=True) or SePS summary entry with identity data: the vectors of each type lie
    around their own centre, the clusters as given per seed."""
    centres = rng.normal(0, 3, (3, latent))
    vectors = [(centres[TYPES_15A_3C] + rng.normal(0, 0.3, (15, latent))).round(6).tolist()
               for _ in clusters_per_seed]
    entry = {**_entry(-3.0, -4.0, -2.0, 10118, 1.0, 0.5, 9.0,
                      clusters=[max(c) + 1 for c in clusters_per_seed], ari=[1.0, 0.57, 1.0, 1.0][:len(clusters_per_seed)]),
             "clusters": [list(c) for c in clusters_per_seed], "identity_vectors": vectors}
    if masks:
        table = []
        for c in clusters_per_seed:
            shared = rng.random(sum(hidden) * 2) < 0.5
            per_cluster = [np.where(rng.random(shared.size) < 0.3, ~shared, shared).astype(int) for _ in range(max(c) + 1)]
            split = np.cumsum(list(hidden) * 2)[:-1]
            layers = [np.split(m, split) for m in per_cluster]
            table.append({"actor": [[l.tolist() for l in m[:len(hidden)]] for m in layers],
                          "critic": [[l.tolist() for l in m[len(hidden):]] for m in layers]})
        entry["cluster_masks"] = table
    return entry


def method_folder(path, seeds=2):
    """A bps-15a-3c folder with AdaPS and SePS as the run writes them now: seed 0 finds the three
    types, seed 1 merges types 1 and 2."""
    rng = np.random.default_rng(0)
    clusters = [TYPES_15A_3C, [0] * 5 + [1] * 10, TYPES_15A_3C, TYPES_15A_3C][:seeds]
    summary = {"adaps": _method_entry(rng, clusters), "seps": _method_entry(rng, clusters, masks=False)}
    return make_folder(path, methods=("adaps", "seps"), summary=summary, nan_at=None)


def test_identity_projection_is_pca():
    rng = np.random.default_rng(1)
    # Points on a tilted plane in 4-D: PC1 and PC2 span it, so the projection keeps every distance.
    plane = rng.normal(0, 1, (12, 2)) * [5.0, 1.0]
    basis = np.linalg.qr(rng.normal(0, 1, (4, 2)))[0]
    vectors = plane @ basis.T + 7.0
    coords, explained = plot.identity_projection(vectors)
    assert coords.shape == (12, 2)
    assert np.allclose(coords.mean(axis=0), 0.0, atol=1e-9)
    distances = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert np.allclose(distances(coords), distances(vectors), atol=1e-9)
    assert explained[0] > explained[1] > 0 and np.isclose(explained.sum(), 1.0)
    assert coords[:, 0].var() > coords[:, 1].var()
    again, _ = plot.identity_projection(vectors[::-1])  # the sign convention: same picture, rows reversed
    assert np.allclose(again[::-1], coords)
    # All agents on one line: no second direction; all equal: no direction at all.
    line, explained = plot.identity_projection(np.outer(np.arange(5.0), [1.0, 2.0, 2.0]))
    assert np.allclose(line[:, 1], 0.0) and np.allclose(explained, [1.0, 0.0])
    assert np.allclose(np.abs(line[:, 0]), np.abs(np.arange(5.0) - 2.0) * 3.0)
    same, explained = plot.identity_projection(np.ones((4, 3)))
    assert np.allclose(same, 0.0) and np.allclose(explained, 0.0)


def test_jaccard_overlap_by_hand():
    a, b, c, empty = [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]
    overlap = plot.jaccard_overlap([np.array(x) for x in (a, b, c, empty)])
    assert overlap[0, 1] == overlap[1, 0] == 1 / 3  # |{0}| / |{0, 1, 2}|
    assert overlap[0, 2] == 0.0 and overlap[1, 2] == 1 / 3
    assert overlap[0, 0] == 1.0 and overlap[3, 3] == 1.0  # two empty masks: 1, as adaps_jax.masks counts them
    assert overlap[0, 3] == 0.0


def test_identity_and_masks_figures_are_drawn(tmp_path):
    folder = method_folder(tmp_path / "run")
    out = tmp_path / "plots"
    written = {p.name for p in plot.plot_folders([folder], out)}
    assert {"identity.png", "identity.svg", "masks.png", "masks.svg"} <= written
    width, height = _png_size(out / "identity.png")
    assert 700 <= width <= 1600 and height > width / 2  # AdaPS and SePS rows of two seeds
    width, height = _png_size(out / "masks.png")
    assert 1000 <= width <= 2000 and 400 <= height < width  # two seed rows of AdaPS only
    svg = (out / "identity.svg").read_text()
    assert svg.count("ARI 1.00") == 2 and svg.count("ARI 0.57") == 2  # both methods, titles per seed
    assert "unknown here" not in svg  # the types came from envs.make("bps-15a-3c")
    masks_svg = (out / "masks.svg").read_text()
    assert "seed 0" in masks_svg and "seed 1" in masks_svg and "Jaccard overlap" in masks_svg


def test_overlap_written_in_masks_figure_is_the_jaccard_of_all_layers(tmp_path):
    folder = method_folder(tmp_path / "run", seeds=1)
    summary = results.read_json(folder / "summary.json")
    masks = summary["adaps"]["cluster_masks"][0]
    flat = [np.concatenate(masks["actor"][k] + masks["critic"][k]) for k in range(3)]
    both = (flat[0] & flat[1]).sum()
    either = (flat[0] | flat[1]).sum()
    plot.plot_folders([folder], tmp_path / "plots")
    svg = (tmp_path / "plots" / "masks.svg").read_text()
    # matplotlib writes each text also as an SVG comment; the 0-1 entry is there to two decimals.
    assert f"{both / either:.2f}" in svg
    assert svg.count(f"{both / either:.2f}") >= 2  # (0, 1) and (1, 0)


def test_summaries_without_identity_data_draw_neither(tmp_path):
    folder = make_folder(tmp_path / "old", methods=("adaps", "seps"), nan_at=None, summary={
        "adaps": _entry(-3.0, -4.0, -2.0, 10118, 1.0, 0.5, 9.0, clusters=[3, 2], ari=[1.0, 0.75])})
    written = {p.name for p in plot.plot_folders([folder], tmp_path / "plots")}
    assert "identity.png" not in written and "masks.png" not in written
    assert "learning_curves.png" in written


def test_unknown_scenario_draws_grey_points_and_bad_masks_fail_in_one_line(tmp_path, capsys):
    folder = method_folder(tmp_path / "run")
    config = results.read_json(folder / "config.json")
    results.write_json(folder / "config.json", {**config, "scenario": "not-a-scenario"})
    plot.plot_folders([folder], tmp_path / "plots")
    assert "grey: unknown here" in (tmp_path / "plots" / "identity.svg").read_text()
    summary = results.read_json(folder / "summary.json")
    summary["adaps"]["cluster_masks"][1]["critic"][0][0] = [1, 0, 2]
    results.write_json(folder / "summary.json", summary)
    assert plot.main([str(folder), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "cluster_masks critic of seed 1" in err


def test_summary_shows_model_size_range_over_seeds(tmp_path):
    # SePS seeds whose identity phases found 3 and 1 clusters: 3 and 1 networks of 12,359 parameters.
    seps = {**_entry(-5.0, -6.0, -4.0, 37077, 3.0, 0.2, 9.0, clusters=[3, 1], ari=[1.0, 0.5]),
            "params_per_seed": [37077, 12359]}
    folder = make_folder(tmp_path / "run", methods=("seps",), summary={"seps": seps}, nan_at=None)
    plot.plot_folders([folder], tmp_path / "plots")
    row = next(line for line in (tmp_path / "plots" / "summary.md").read_text().splitlines()
               if line.startswith("| SePS |"))
    assert "| 12,359–37,077 | 1.00–3.00× |" in row, row
    assert plot.bar_label(seps) == "1.0×–3.0×\n12,359–37,077"  # the model-size figure's bar says the same
    assert plot.bar_label({"relative_size": 1.5, "params": 500}) == "1.5×\n500"
    assert plot.size_text({"params": 500}, "params", ",") == "500"  # no per-seed counts: the one figure
    assert plot.size_text({}, "params", ",") == "–"
