"""Smoke test of the environment benchmark's measurement helpers and report (not a timing test)."""
from __future__ import annotations

import importlib.util
import json
import math

import pytest

import envs
from experiments import bench_envs


def _positive_finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_measure_bps_and_report(tmp_path):
    m = bench_envs.measure_jax(
        envs.make("bps-15a-3c"), name="bps-15a-3c", impl="adaps-jax", batch=1, steps=5, repeats=2, min_run_s=0.0
    )
    assert m["env"] == "bps-15a-3c" and m["batch"] == 1 and m["num_agents"] == 15
    assert _positive_finite(m["env_steps_per_s"]) and _positive_finite(m["agent_steps_per_s"])
    assert m["agent_steps_per_s"] == pytest.approx(15 * m["env_steps_per_s"])
    assert len(m["runs_env_steps_per_s"]) == 2 and all(_positive_finite(r) for r in m["runs_env_steps_per_s"])
    assert m["finite_checksum"] and m["compile_s"] > 0

    measurements = [m]
    if importlib.util.find_spec("rware") is not None:  # the reference adapter, 4 env-steps
        r = bench_envs.measure_python(bench_envs.RwareRef(), batch=2, total_steps=4, repeats=1)
        assert r["instances"] == 2 and r["env_steps_per_run"] == 4 and r["batch"] == 2
        assert _positive_finite(r["env_steps_per_s"])
        measurements.append(r)

    report = bench_envs.build_report(measurements, (1,), bench_envs.QUICK, {"bps-15a-3c": "measured"})
    json_path, md_path = bench_envs.write_outputs(report, tmp_path)
    loaded = json.loads(json_path.read_text())
    assert set(loaded) >= {"machine", "code", "settings", "our_envs", "measurements", "ratios"}
    assert "envs/bps.py" in loaded["code"]["env_sources_sha256"]
    assert set(loaded["machine"]) >= {"cpu_model", "cpu_count", "jax", "date"}
    assert loaded["machine"]["cpu_count"] >= 1
    assert loaded["measurements"][0]["env_steps_per_s"] == m["env_steps_per_s"]
    for key in ("crware_vs_rware", "crware_vs_jumanji_rware", "lbf_vs_lbforaging", "lbf_vs_jumanji_lbf",
                "bps15_vs_mpe_spread15_agent_steps"):
        assert key in loaded["ratios"]
        assert set(loaded["ratios"][key]) == {"what", "per_batch", "at_2048"}
    assert "| bps-15a-3c | adaps-jax | 1 |" in md_path.read_text()
