"""The training benchmark's machinery: what it times, how it turns timings into rates and targets,
and what it writes. Not timing itself (speed is measured by `make bench`, never in tests)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adaps_jax import diagnostics
from adaps_jax.trainer import make_train
from experiments.bench import baseline, harness, sections
from experiments.bench import main as bench_main
from experiments.bench import report as bench_report

TINY = harness.Settings(pretrain_steps=20, vae_epochs=1, kmeans_restarts=1)


def fake_case(name: str, seconds: list[float], log: list[str], env_steps: int = 1000, agents: int = 3) -> harness.Case:
    times = iter(seconds)

    def run() -> bool:
        log.append(name)
        return True

    case = harness.Case({"method": name}, run, env_steps, agents)
    case.time_once = lambda: (run(), case.seconds.append(next(times)))  # type: ignore[method-assign]
    return case


def test_interleave_alternates_order_and_takes_the_median_chunk():
    log: list[str] = []
    a = fake_case("a", [1.0, 4.0, 2.0], log)
    b = fake_case("b", [0.5, 0.5, 5.0], log)
    results = harness.interleave([a, b], rounds=3)
    assert log == ["a", "b", "b", "a", "a", "b"]
    assert results[0]["env_steps_per_s"] == pytest.approx(500.0)  # median of 1000, 250, 500
    assert results[1]["env_steps_per_s"] == pytest.approx(2000.0)
    assert results[1]["agent_steps_per_s"] == pytest.approx(6000.0)
    assert results[1]["us_per_agent_step"] == pytest.approx(1e6 / 6000.0)


def test_bench_config_sizes_one_chunk_to_the_requested_env_steps():
    config = harness.bench_config("lbf-10x10-6p-3f", "adaps", 8, 4, 24_000, TINY)
    # 8 envs x 5 steps = 40 env-steps per update and seed; 24,000 / (40 x 4) = 150 updates per chunk,
    # after a first chunk of pretraining: 20 env-steps round up to one update.
    assert config.updates_per_log == 150 and config.num_logs == 2 and config.pretrain_logs == 1
    assert config.pretrain_updates == 1
    assert harness.bench_config("lbf-10x10-6p-3f", "fups", 8, 4, 24_000, TINY).num_logs == 1


@pytest.mark.slow  # compiles a training case
def test_training_case_runs_real_chunks_and_counts_env_steps():
    config = harness.bench_config("lbf-10x10-6p-3f", "snp_ps", 2, 2, 40, TINY)
    case = harness.training_case(config)
    harness.interleave([case], rounds=2)
    r = harness.result(case)
    assert case.env_steps_per_chunk == 2 * 2 * 5 * config.updates_per_log == 40
    assert r["finite"] and np.isfinite(r["env_steps_per_s"]) and r["env_steps_per_s"] > 0
    assert r["agent_steps_per_s"] == pytest.approx(6 * r["env_steps_per_s"])
    network = make_train(config).network
    assert r["params"] == diagnostics.parameters_per_set(network) == 12_359


@pytest.mark.slow  # compiles the jumanji baseline
def test_jumanji_baseline_trains_with_finite_losses():
    case = baseline.jumanji_case(num_envs=2, num_seeds=2, chunk_env_steps=40)
    assert case.env_steps_per_chunk == 40 and case.num_agents == 6
    case.time_once()
    assert case.finite and case.seconds[0] > 0


def report_with(fups: float, adaps: float, nops: float, bound: float) -> dict:
    scenario = "lbf-10x10-6p-3f"

    def row(method: str, rate: float) -> dict:
        return {"group": scenario, "scenario": scenario, "method": method, "env_steps_per_s": rate,
                "runs_env_steps_per_s": [rate, rate * 2, rate * 0.5], "agent_steps_per_s": 6 * rate,
                "init_s": 1.0, "first_chunk_s": 1.0}

    return {
        "envs": {"measurements": [{"env": bench_report.PYTHON_BOUND[scenario], "env_steps_per_s": b} for b in (bound / 2, bound)]},
        "training": [row("fups", fups), row("adaps", adaps), row("nops", nops),
                     row(baseline.JUMANJI_A2C, 40.0)],
    }


def test_paired_ratio_is_the_median_of_per_round_ratios():
    row = {"runs_env_steps_per_s": [90.0, 50.0, 200.0]}
    reference = {"runs_env_steps_per_s": [100.0, 40.0, 100.0]}  # ratio of medians would be 90 / 100
    assert harness.paired_ratio(row, reference) == pytest.approx(1.25)  # median of 0.9, 1.25, 2.0


def test_targets_compare_the_slowest_method_with_the_fastest_python_batch():
    targets = bench_report.targets(report_with(fups=100.0, adaps=96.0, nops=45.0, bound=5.0))
    slowest = targets["lbf-10x10-6p-3f: slowest method / Python env alone (target >= 10)"]
    assert slowest["value"] == pytest.approx(9.0) and not slowest["met"] and "nops" in slowest["detail"]
    adaps = targets["lbf-10x10-6p-3f: adaps / fups (target >= 0.95)"]
    assert adaps["value"] == pytest.approx(0.96) and adaps["met"]
    jumanji = targets["lbf-10x10-6p-3f: our fups / minimal jumanji A2C (target > 1)"]
    assert jumanji["value"] == pytest.approx(2.5) and jumanji["met"]


def test_paper_preset_target_pairs_the_rounds_of_its_own_section():
    rows = [{"group": "paper lbf-10x10-6p-3f", "scenario": "lbf-10x10-6p-3f", "case": case, "env_steps_per_s": rates[1],
             "runs_env_steps_per_s": rates, "env_steps_per_chunk": 800}
            for case, rates in (("make bench chunk", [100.0, 50.0, 80.0]), ("paper preset logging interval", [97.0, 47.0, 60.0]))]
    targets = bench_report.targets({"paper": rows})
    paper = targets["lbf-10x10-6p-3f: paper-preset logging interval / make bench chunk (target >= 0.95)"]
    assert paper["value"] == pytest.approx(0.94) and not paper["met"]  # median of 0.97, 0.94, 0.75
    assert len(targets) == 1  # no other section's target is read from these rows


def test_markdown_marks_missed_targets_and_docs_keep_their_own_text(tmp_path):
    report = report_with(fups=100.0, adaps=90.0, nops=60.0, bound=5.0)
    report.update(machine={"date": "d", "cpu_model": "cpu", "cpus_usable": 2, "cpu_count": 2, "jax": "x",
                           "jax_backend": "cpu", "jax_devices": ["cpu"]},
                  code={"git_head": "abc", "uncommitted": []}, settings={"rounds": 1, "chunk_env_steps": 1,
                  "pretrain_steps": 1, "vae_epochs": 1, "kmeans_restarts": 1})
    report["training"] = [r for r in report["training"] if r["method"] != baseline.JUMANJI_A2C]
    report["targets"] = bench_report.targets(report)
    del report["envs"]  # a synthetic environment report has no table to show
    markdown = bench_report.to_markdown(report)
    assert "| lbf-10x10-6p-3f: adaps / fups (target >= 0.95) | 0.9 | **no** |" in markdown
    assert "| lbf-10x10-6p-3f: slowest method / Python env alone (target >= 10) | 12 (nops" in markdown
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text(f"# Benchmarks\n\nhand-written\n\n{bench_report.BEGIN}\nold\n{bench_report.END}\n\nafter\n")
    bench_report.update_docs(markdown, docs)
    text = docs.read_text()
    assert "hand-written" in text and text.endswith("after\n") and "old" not in text
    assert "### Targets" in text
    bench_report.write_outputs(report, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["targets"] == report["targets"]


def test_unknown_section_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main.main(["--sections", "training,warp"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown sections ['warp']" in err and "training" in err


def test_a_failing_section_is_reported_and_keeps_the_others(monkeypatch):
    row = {"scenario": "s", "num_seeds": 1, "env_steps_per_s": 10.0}
    monkeypatch.setitem(sections.SECTIONS, "seeds", lambda settings, log, quick: [row])

    def broken(settings, log, quick):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(sections.SECTIONS, "profile", broken)
    report = bench_main.run(harness.QUICK, ("seeds", "profile"), quick=True, log=lambda *args: None)
    assert report["failed_sections"] == {"profile": "RuntimeError: boom"}
    assert report["seeds"] == [row] and "profile" not in report
    assert "**Section profile failed**: RuntimeError: boom" in bench_report.to_markdown(report)


def test_quick_profile_has_no_30_agent_case(monkeypatch):
    calls = []

    def fake_profile(scenario, method, settings):
        calls.append((scenario, method))
        return {"ms_per_update": {"whole update": 1.0}}

    monkeypatch.setattr(sections, "profile_pieces", fake_profile)
    sections.section_profile(harness.QUICK, log=lambda *args: None)
    assert calls == [("lbf-10x10-6p-3f", "fups")]
    calls.clear()
    sections.section_profile(harness.FULL, log=lambda *args: None)
    assert calls == [(s, "fups") for s in harness.ENVS] + [("bps-30a-3c", "nops")]
