"""experiments.report on hand-written results folders: exact cells, summary.json before metrics.csv,
old folders without test returns, bad input."""
import csv
import json

import pytest

from experiments import report

FIELDS = ["method", "seed", "log", "env_steps", "wall_seconds", "episodes", "return_mean", "entropy", "actor_loss",
          "value_loss", "return_type_0"]
EVAL = ["eval_return_greedy", "eval_return_sampled", "eval_return_greedy_type_0", "eval_return_sampled_type_0"]


def make_folder(path, scenario, finals, summary, evaluated=True):
    """Methods x seeds x 2 logging points; `finals[method][seed]` is the greedy test return at the last
    point (the first point is 0). Written with csv directly so the columns are exactly these."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"scenario": scenario, "preset": "quick", "methods": list(finals),
                                                  "config": {"num_seeds": 3}}))
    fields = FIELDS + (EVAL if evaluated else [])
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for method, values in finals.items():
            for seed, final in enumerate(values):
                for log, v in enumerate((0.0, final)):
                    writer.writerow({"method": method, "seed": seed, "log": log, "env_steps": 100 * (log + 1),
                                     "wall_seconds": 1.0, "episodes": 2, "return_mean": -1.0, "entropy": 1.0,
                                     "actor_loss": 0.0, "value_loss": 0.0, "return_type_0": -1.0,
                                     "eval_return_greedy": v, "eval_return_sampled": v,
                                     "eval_return_greedy_type_0": v, "eval_return_sampled_type_0": v})
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def _entry(params, relative, diversity, **extra):
    return {"final_return_mean": -1.0, "params": params, "relative_size": relative, "policy_diversity_mean": diversity,
            **extra}


def folders(tmp_path):
    a = make_folder(tmp_path / "a", "bps-15a-3c", {"adaps": [2.0, 2.0, 4.0], "fups": [1.0, 1.0, 1.0]},
                    {"adaps": _entry(10118, 1.0, 0.5, num_clusters=[3, 3, 2], cluster_ari=[1.0, 1.0, 0.5681], wall_seconds=1234.5,
                                     sampled={"final_return_iqm": 2.5, "final_return_ci95": [2.0, 3.0]},
                                     auc_return_iqm=1.5, auc_return_ci95=[1.0, 2.0]),
                     "fups": _entry(10118, 1.0, 0.0, num_clusters=None, cluster_ari=None)})
    # The run wrote the statistics into summary.json: the report takes them from there.
    # SePS's seeds found 3, 1 and 3 clusters: one network per cluster, so the seeds differ in size.
    b = make_folder(tmp_path / "b", "lbf-10x10-6p-3f",
                    {"adaps": [0.0, 0.0, 0.0], "nops": [0.5, 0.5, 0.5], "seps": [0.25, 0.25, 0.25]},
                    {"adaps": _entry(12359, 1.0, 0.25, final_return_iqm=0.75, final_return_ci95=[0.5, 0.875],
                                     params_per_seed=[12359, 12359, 12359]),
                     "nops": _entry(74154, 6.0, 0.125, final_return_iqm=None, final_return_ci95=None),
                     "seps": _entry(37077, 3.0, 0.1, params_per_seed=[37077, 12359, 37077])})
    old = make_folder(tmp_path / "old", "crware-2c-tiny-4ag", {"adaps": [1.0], "fups": [2.0]},
                      {"fups": _entry(14470, 1.0, 0.0)}, evaluated=False)
    return a, b, old


def _line(text, start, section):
    body = text.split(f"## {section}")[1].split("## ")[0]
    return next(line for line in body.splitlines() if line.startswith(start))


def test_report_cells_by_hand(tmp_path):
    text = report.build_report(list(folders(tmp_path)), backend="numpy")
    assert "| method | bps-15a-3c | lbf-10x10-6p-3f | crware-2c-tiny-4ag |" in text
    # adaps on bps: seeds 2, 2, 4; IQM of three values is their mean; resampled means run from 2 to 4,
    # and each end has chance above 2.5% ((2/3)^3 and (1/3)^3).
    assert _line(text, "| AdaPS |", "Final test return") == "| AdaPS | 2.67 [2.00, 4.00] | 0.750 [0.500, 0.875] | – |"
    assert _line(text, "| FuPS |", "Final test return") == "| FuPS | 1.00 [1.00, 1.00] | – | – |"
    # At a glance: the same return cell, then relative size and diversity from summary.json.
    assert _line(text, "| AdaPS |", "At a glance") == ("| AdaPS | 2.67 [2.00, 4.00] · 1.00× · 0.500 "
                                                       "| 0.750 [0.500, 0.875] · 1.00× · 0.250 | – |")
    assert _line(text, "| NoPS |", "At a glance") == "| NoPS | – | – · 6.00× · 0.125 | – |"
    assert _line(text, "| NoPS |", "Final test return") == "| NoPS | – | – | – |"  # null in summary.json
    assert _line(text, "| NoPS |", "Parameters") == "| NoPS | – | 74,154 | – |"
    assert _line(text, "| FuPS |", "Parameters") == "| FuPS | 10,118 | – | 14,470 |"
    assert _line(text, "| NoPS |", "Relative size") == "| NoPS | – | 6.00× | – |"
    # Seeds of different sizes show smallest–largest; seeds of one size a single figure.
    assert _line(text, "| SePS |", "Parameters") == "| SePS | – | 12,359–37,077 | – |"
    assert _line(text, "| SePS |", "Relative size") == "| SePS | – | 1.00–3.00× | – |"
    assert _line(text, "| AdaPS |", "Relative size") == "| AdaPS | 1.00× | 1.00× | – |"
    assert _line(text, "| SePS |", "At a glance").endswith(" · 1.00–3.00× · 0.100 | – |")
    assert _line(text, "| AdaPS |", "Policy diversity") == "| AdaPS | 0.500 | 0.250 | – |"
    assert _line(text, "| AdaPS |", "Final test return, sampled") == "| AdaPS | 2.50 [2.00, 3.00] | – | – |"
    assert _line(text, "| AdaPS |", "Area under") == "| AdaPS | 1.50 [1.00, 2.00] | – | – |"
    assert _line(text, "| AdaPS |", "Wall time") == "| AdaPS | 1,234 s | – | – |"
    assert _line(text, "| AdaPS |", "Identity phase") == "| AdaPS | 3 (1.00), 3 (1.00), 2 (0.57) | – | – |"
    assert "| FuPS |" not in text.split("## Identity phase")[1].split("## ")[0]  # no identity phase, no row
    # P(AdaPS > FuPS) on bps: every AdaPS seed beats every FuPS seed. On lbf from metrics.csv: 0 < 0.5 always.
    assert _line(text, "| FuPS |", "Probability of improvement") == "| FuPS | 1.00 [1.00, 1.00] | – | – |"
    assert _line(text, "| NoPS |", "Probability of improvement") == "| NoPS | – | 0.00 [0.00, 0.00] | – |"
    assert f"No test return in {tmp_path / 'old'}" in text


def test_cli_writes_the_file_and_reports_bad_folders(tmp_path, capsys):
    a, b, old = folders(tmp_path)
    out = tmp_path / "report.md"
    assert report.main([str(a), str(b), "--out", str(out), "--stats-backend", "numpy"]) == 0
    assert out.read_text().startswith("# Results report") and capsys.readouterr().out.strip() == str(out)
    assert report.main([str(a), "--stats-backend", "numpy"]) == 0
    assert "| AdaPS | 2.67 [2.00, 4.00] |" in capsys.readouterr().out
    for argv, words in (
        ([str(tmp_path / "nowhere")], ["nowhere", "no such results folder"]),
        ([str(a), "--out", str(tmp_path / "no" / "dir" / "r.md")], ["cannot write", "r.md"]),
    ):
        assert report.main(argv + ["--stats-backend", "numpy"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and all(w in err for w in words), err
    (old / "metrics.csv").unlink()
    assert report.main([str(old)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {old}: not a results folder (no metrics.csv)"


def test_malformed_statistics_in_summary(tmp_path, capsys):
    a = make_folder(tmp_path / "a", "bps-15a-3c", {"adaps": [1.0]},
                    {"adaps": _entry(1, 1.0, 0.0, final_return_iqm=1.0, final_return_ci95="wide")})
    assert report.main([str(a), "--stats-backend", "numpy"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "final_return_ci95 [low, high]" in err and "adaps" in err


def test_same_scenario_twice_names_the_folders(tmp_path):
    a = make_folder(tmp_path / "x" / "run", "bps-15a-3c", {"fups": [1.0]}, {})
    b = make_folder(tmp_path / "y" / "run", "bps-15a-3c", {"fups": [2.0]}, {})
    c = make_folder(tmp_path / "z", "bps-15a-3c", {"fups": [3.0]}, {})
    text = report.build_report([a, b, c], backend="numpy")
    assert f"| method | bps-15a-3c ({a}) | bps-15a-3c ({b}) | bps-15a-3c (z) |" in text
    # No summary.json entry: still training, so every figure carries the mark.
    assert "| FuPS | 1.00 [1.00, 1.00] † | 2.00 [2.00, 2.00] † | 3.00 [3.00, 3.00] † |" in text
    assert "† marks a figure of a method still training" in text


def _ablation_folder(path, scenario, finals, config, sweep=None, summary=None):
    """make_folder, with the config.json a run of these AdaPS arms writes (its sweep, if any)."""
    make_folder(path, scenario, finals, summary if summary is not None else {name: {} for name in finals})
    data = {"scenario": scenario, "preset": "paper", "methods": ["adaps"] if sweep else list(finals),
            "config": {"num_seeds": 3, "mask_threshold": 0.2, "num_clusters": None, **config}}
    if sweep:
        data["sweep"] = sweep
    (path / "config.json").write_text(json.dumps(data))
    return path


def test_ablation_arms_by_hand(tmp_path, capsys):
    main = _ablation_folder(tmp_path / "main", "bps-15a-3c", {"adaps": [1.0, 1.0, 1.0], "fups": [9.0, 9.0, 9.0]}, {},
                            summary={"adaps": {"num_clusters": [3, 3, 3], "cluster_ari": [1.0, 1.0, 1.0],
                                               "auc_return_iqm": 0.5, "auc_return_ci95": [0.25, 0.75]}, "fups": {}})
    # A sweep whose lambda = 0.2 point repeats the default arm: the first folder given (main) is shown.
    sweep = _ablation_folder(tmp_path / "sweep", "bps-15a-3c", {"adaps[mask_threshold=0.1]": [2.0, 2.0, 2.0],
                                                                "adaps[mask_threshold=0.2]": [5.0, 5.0, 5.0]}, {},
                             sweep={"mask_threshold": [0.1, 0.2]})
    k6 = _ablation_folder(tmp_path / "k6", "bps-15a-3c", {"adaps": [0.0, 0.0, 1.0]}, {"num_clusters": 6},
                          summary={})  # no summary entry yet: still training
    lbf = _ablation_folder(tmp_path / "lbf", "lbf-10x10-6p-3f", {"adaps": [0.5, 0.5, 0.5]}, {})
    text = report.build_report([main, sweep, k6, lbf], backend="numpy", ablation=True)
    assert "| arm | bps-15a-3c | lbf-10x10-6p-3f |" in text
    final = text.split("## Final test return")[1].split("## ")[0]
    assert [line.split(" | ")[0] for line in final.splitlines() if line.startswith("| λ")] == [
        "| λ = 0.1, K = automatic", "| λ = 0.2, K = automatic (default)", "| λ = 0.2, K = 6"]
    assert _line(text, "| λ = 0.1, K = automatic |", "Final test return") == "| λ = 0.1, K = automatic | 2.00 [2.00, 2.00] | – |"
    assert _line(text, "| λ = 0.2, K = automatic (default) |", "Final test return") == (
        "| λ = 0.2, K = automatic (default) | 1.00 [1.00, 1.00] | 0.500 [0.500, 0.500] |")
    # k6: seeds 0, 0, 1 (IQM of three = their mean), no summary entry: marked as still training.
    assert _line(text, "| λ = 0.2, K = 6 |", "Final test return") == "| λ = 0.2, K = 6 | 0.33 [0.00, 1.00] † | – |"
    assert _line(text, "| λ = 0.2, K = automatic (default) |", "Area under") == (
        "| λ = 0.2, K = automatic (default) | 0.50 [0.25, 0.75] | – |")
    assert _line(text, "| λ = 0.2, K = automatic (default) |", "Identity phase") == (
        "| λ = 0.2, K = automatic (default) | 3 (1.00), 3 (1.00), 3 (1.00) | – |")
    # P(arm > default): 2 > 1 always; k6's seeds tie (1 = 1, half) once in three: 1/6.
    assert _line(text, "| λ = 0.1, K = automatic |", "Probability") == "| λ = 0.1, K = automatic | 1.00 [1.00, 1.00] | – |"
    assert _line(text, "| λ = 0.2, K = 6 |", "Probability").startswith("| λ = 0.2, K = 6 | 0.17 [0.00, ")
    assert _line(text, "| λ = 0.2, K = automatic (default) |", "Probability") == "| λ = 0.2, K = automatic (default) | – | – |"

    other = _ablation_folder(tmp_path / "other", "bps-15a-3c", {"adaps": [1.0, 1.0, 1.0]}, {"num_seeds": 4, "num_clusters": 3})
    fups = make_folder(tmp_path / "fups", "bps-15a-3c", {"fups": [1.0]}, {})
    for folders, words in (([main, other], ["other", "main", "differ in num_seeds", "mask_threshold and num_clusters"]),
                           ([fups], ["fups", "holds no AdaPS run"])):
        assert report.main([*map(str, folders), "--ablation"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and all(w in err for w in words), err
