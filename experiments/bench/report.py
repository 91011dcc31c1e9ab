"""The benchmark's report: its targets (data), the Markdown tables and the generated block of
docs/BENCHMARKS.md."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, NamedTuple

from adaps_jax.methods import METHODS
from experiments import bench_envs
from experiments.bench.baseline import JUMANJI_A2C
from experiments.bench.harness import ENVS, num_agents_of, paired_ratio
from experiments.presets import PRESETS, env_family

# The environments a trainer on the original Python packages would step (names from bench_envs).
PYTHON_BOUND = {
    "bps-15a-3c": "mpe2 spread-15 (as BPS fork)",
    "crware-2c-tiny-4ag": bench_envs.RwareRef.name,
    "lbf-10x10-6p-3f": bench_envs.LbforagingRef.name,
}


class Target(NamedTuple):
    """A ratio of two measurements that must reach `threshold` ("{s}" in a name: one per environment)."""

    name: str
    kind: str  # how the ratio is read from the report (RATIOS)
    numerator: dict  # what picks the measurement (method, group, ...); "{s}" stands for the environment
    denominator: dict
    threshold: float
    per_environment: bool = False
    section: str = "training"  # the report section whose measurements a "paired" target compares


TARGETS = (
    Target("{s}: slowest method / Python env alone (target >= 10)", "python_bound", {}, {}, 10.0, True),
    Target("{s}: adaps / fups (target >= 0.95)", "paired", {"method": "adaps", "group": "{s}"},
           {"method": "fups", "group": "{s}"}, 0.95, True),
    Target("{s}: snp_ps / fups (target >= 0.95)", "paired", {"method": "snp_ps", "group": "{s}"},
           {"method": "fups", "group": "{s}"}, 0.95, True),
    Target("bps-30a-3c: nops / fups (target >= 0.5)", "paired", {"method": "nops", "group": "bps-30a-3c"},
           {"method": "fups", "group": "bps-30a-3c"}, 0.5),
    Target("lbf-10x10-6p-3f: our fups / minimal jumanji A2C (target > 1)", "paired",
           {"method": "fups", "group": "lbf-10x10-6p-3f"}, {"method": JUMANJI_A2C}, 1.0),
    Target("{s}: paper-preset logging interval / make bench chunk (target >= 0.95)", "paired",
           {"case": "paper preset logging interval", "group": "paper {s}"},
           {"case": "make bench chunk", "group": "paper {s}"}, 0.95, True, "paper"),
    Target("sweep: per (value, seed) / one value alone (target >= 0.9)", "per_value_seed",
           {"sweep_values": "many"}, {"sweep_values": 1}, 0.9),
    Target("command line: bare kernel / whole command line, cold (target >= 0.8, i.e. CLI <= 1.25x)", "cli",
           {"case": "bare kernel"}, {"case": "command line, cold"}, 0.8),
)


def _find(rows, **match):
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def python_bounds(envs_report: dict | None) -> dict[str, dict]:
    """Per environment: the fastest Python reference rate over the batches measured (the bound)."""
    if not envs_report:
        return {}
    out = {}
    for scenario, ref in PYTHON_BOUND.items():
        rates = [m["env_steps_per_s"] for m in envs_report["measurements"] if m["env"] == ref]
        if rates:
            out[scenario] = {"reference": ref, "env_steps_per_s": max(rates)}
    return out


def _ratio(target: Target, report: dict, scenario: str) -> tuple[float, str] | None:
    """The measured ratio of a target and a detail, or None when the report lacks its measurements."""
    def fill(match: dict) -> dict:
        return {k: v.replace("{s}", scenario) if isinstance(v, str) else v for k, v in match.items()}

    training = report.get("training") or []
    if target.kind == "python_bound":
        bound = python_bounds(report.get("envs")).get(scenario)
        slowest = min((r for r in training if r.get("group") == scenario and r["method"] in METHODS),
                      key=lambda r: r["env_steps_per_s"], default=None)
        if not bound or not slowest:
            return None
        return (slowest["env_steps_per_s"] / bound["env_steps_per_s"],
                f"{slowest['method']} {slowest['env_steps_per_s']:,.0f} vs {bound['reference']} "
                f"{bound['env_steps_per_s']:,.0f} env-steps/s")
    if target.kind == "paired":
        rows = report.get(target.section) or []
        a, b = _find(rows, **fill(target.numerator)), _find(rows, **fill(target.denominator))
        if not a or not b:
            return None
        detail = f"{a['env_steps_per_s']:,.0f} vs {b['env_steps_per_s']:,.0f} env-steps/s" \
            if b.get("method") == JUMANJI_A2C or target.section != "training" else ""
        return paired_ratio(a, b), detail
    if target.kind == "per_value_seed":
        rows = report.get("sweep") or []
        single = _find(rows, sweep_values=1)
        swept = next((r for r in rows if r.get("sweep_values", 1) > 1), None)
        if not single or not swept:
            return None
        per_round = [a / (swept["sweep_values"] * swept["num_seeds"]) / (b / single["num_seeds"])
                     for a, b in zip(swept["runs_env_steps_per_s"], single["runs_env_steps_per_s"])]
        return statistics.median(per_round), f"{swept['sweep_values']} values x {swept['num_seeds']} seeds"
    if target.kind == "cli":
        rows = report.get("cli") or []
        a, b = _find(rows, **target.numerator), _find(rows, **target.denominator)
        if not a or not b:
            return None
        return a["median_s"] / b["median_s"], f"{b['median_s']:.0f} s vs {a['median_s']:.0f} s whole process"
    raise ValueError(f"unknown target kind {target.kind!r}")


def targets(report: dict) -> dict[str, Any]:
    """Every target the report has the measurements for: value, threshold, detail and whether met."""
    out: dict[str, Any] = {}
    for target in TARGETS:
        for scenario in (ENVS if target.per_environment else ("",)):
            measured = _ratio(target, report, scenario)
            if measured is None:
                continue
            value, detail = measured
            row = {"value": value, "target": target.threshold, "at_least": True,
                   "met": bool(value >= target.threshold)}
            if detail:
                row["detail"] = detail
            out[target.name.replace("{s}", scenario)] = row
    return out


def paper_projection(report: dict) -> list[dict]:
    """The paper preset's training time (6 methods x 4 seeds per environment) projected from the
    training section's rates: an extrapolation, leaving out compilation, the identity phase's VAE
    and the evaluation episodes (measured in their own section)."""
    out = []
    for scenario in ENVS:
        rows = [r for r in report.get("training") or [] if r.get("group") == scenario and r["method"] in METHODS]
        if not rows:
            continue
        steps = PRESETS["paper"][env_family(scenario)]["total_steps"]
        seconds = sum(steps * r.get("num_seeds", 4) / r["env_steps_per_s"] for r in rows)
        out.append({"scenario": scenario, "methods": len(rows), "env_steps_per_seed": steps, "hours": seconds / 3600})
    return out




def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _machine_line(machine: dict) -> str:
    load = machine.get("load_average_1_5_15min")
    start = machine.get("load_average_at_start")
    loads = ""
    if start:
        loads += f" · load average at start {start[0]:.1f}"
    if load:
        loads += f", at end {load[0]:.1f} (1 min)"
    return (f"{machine['date']} · {machine['cpu_model']} · {machine['cpus_usable']} usable of {machine['cpu_count']} "
            f"cores · jax {machine['jax']} ({machine['jax_backend']}, {len(machine['jax_devices'])} device"
            f"{'s' if len(machine['jax_devices']) > 1 else ''}) · "
            f"XLA_FLAGS `{machine.get('xla_flags') or ''}`{loads}")


def _table(title: str, header: list[str], rows: list[list[Any]], align: str, intro: str = "") -> list[str]:
    """One Markdown section: `## title`, an optional paragraph, then the table; `align` has one letter
    per column: l (left), r (right) or c (centre)."""
    lines = [f"## {title}", ""] + ([intro, ""] if intro else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "".join({"l": "---|", "r": "---:|", "c": ":---:|"}[a] for a in align)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def to_markdown(report: dict) -> str:
    m = report["machine"]
    s = report["settings"]
    lines = ["# Training speed and scale", "", _machine_line(m), "",
             f"Code: git {str(report['code'].get('git_head'))[:10]}; uncommitted adaps_jax/ or envs/ files when "
             f"measured: {', '.join(report['code'].get('uncommitted', [])) or 'none'}. Wall time of this run: "
             f"{_fmt(s.get('wall_s'))} s{' (quick settings: smoke test only)' if s.get('quick') else ''}"
             f" ({', '.join(f'{k} {v:.0f} s' for k, v in s.get('section_s', {}).items())}).", ""]
    for name, error in report.get("failed_sections", {}).items():
        lines += [f"**Section {name} failed**: {error}", ""]
    if report.get("targets"):
        lines += _table("Targets", ["target", "measured", "met"], [
            [name, _fmt(r["value"]) + (f" ({r['detail']})" if r.get("detail") else ""), "yes" if r["met"] else "**no**"]
            for name, r in report["targets"].items()], "lrc")
    training = report.get("training")
    if training:
        bounds = python_bounds(report.get("envs"))
        rows = []
        for r in training:
            fups = _find(training, method="fups", group=r["group"])
            bound = bounds.get(r["group"], {}).get("env_steps_per_s")
            vs_python = f"{r['env_steps_per_s'] / bound:,.0f}x" if bound and r["method"] in METHODS else "-"
            rows.append([r["scenario"], r["method"], _fmt(r["env_steps_per_s"]), _fmt(r["agent_steps_per_s"]),
                         _fmt(paired_ratio(r, fups) if fups else None), vs_python, _fmt(r.get("params")),
                         _fmt(r["init_s"]), _fmt(r["first_chunk_s"])])
        lines += _table(
            "Training throughput (8 environments per seed, n-step 5, 4 seeds vmapped)",
            ["environment", "method", "env-steps/s", "agent-steps/s", "vs FuPS", "vs Python env alone", "params",
             "init s", "first chunk s"], rows, "llrrrrrrr",
            "Env-steps per second of whole A2C updates (`train_chunk`: rollout, returns, loss, gradient, Adam), all "
            f"seeds together; median of {s['rounds']} chunks of about {s['chunk_env_steps']:,} env-steps, the methods "
            "of one environment timed in turn; \"vs FuPS\" is the median of the per-round ratios. AdaPS and SePS ran a "
            f"shortened identity phase ({s['pretrain_steps']} env-steps of pretraining, {s['vae_epochs']} VAE epochs, "
            f"{s['kmeans_restarts']} k-means restarts) before timing; it is not in the rates.")
        if bounds:
            lines[-1:] = ["", "Python bound (the original environment stepped alone under random actions, fastest "
                          "batch of the environment benchmark below): " + "; ".join(
                              f"{k}: {v['reference']} {_fmt(v['env_steps_per_s'])} env-steps/s"
                              for k, v in bounds.items()), ""]
    if report.get("evaluation"):
        evaluation = report["evaluation"]
        lines += _table(
            "Evaluation episodes (FuPS, 4 seeds, one quick-preset logging interval per chunk)",
            ["environment", "eval episodes", "env-steps/s", "share of the rate without"],
            [[r["scenario"], r["eval_episodes"], _fmt(r["env_steps_per_s"]),
              _fmt(paired_ratio(r, base) if (base := _find(evaluation, group=r["group"], eval_episodes=0)) else None)]
             for r in evaluation], "lrrr",
            f"Each chunk is one logging interval of the quick preset, then {s.get('eval_episodes', 32)} greedy and as "
            "many sampled evaluation episodes per seed; \"share\" is the median per-round ratio of the rate with "
            "evaluation to the rate without (1 = free).")

    def with_training_rows(rows: list[dict], key: str) -> list[dict]:
        scenarios = {r["scenario"] for r in rows}
        extra = [r for r in training or [] if r["method"] == "fups" and r.get("group") == r["scenario"]
                 and r["scenario"] in scenarios]
        return sorted(rows + extra, key=lambda r: (r["scenario"], r[key]))

    if report.get("batch"):
        lines += _table("Larger batches (FuPS, 4 seeds)", ["environment", "envs per seed", "env-steps/s", "agent-steps/s"],
                        [[r["scenario"], r["num_envs"], _fmt(r["env_steps_per_s"]), _fmt(r["agent_steps_per_s"])]
                         for r in with_training_rows(report["batch"], "num_envs")], "lrrr")
    if report.get("seeds"):
        lines += _table("Vmapped seeds (FuPS, 8 environments per seed)",
                        ["environment", "seeds", "env-steps/s (all seeds)", "per seed"],
                        [[r["scenario"], r["num_seeds"], _fmt(r["env_steps_per_s"]),
                          _fmt(r["env_steps_per_s"] / r["num_seeds"])]
                         for r in with_training_rows(report["seeds"], "num_seeds")], "lrrr")
    if report.get("agents"):
        rows = []
        for r in report["agents"][1:]:
            if r["status"] == "ok":
                xla = r.get("compiled_mb") or {}
                rows.append([r["scenario"], r["num_agents"], r["method"], _fmt(r["agent_steps_per_s"]),
                             f"{r['us_per_agent_step']:.3f}", _fmt(r["maxrss_mb"]),
                             _fmt(xla.get("argument", 0) + xla.get("temp", 0) if xla else None), _fmt(r["params"]),
                             f"{r['env_steps_per_chunk']:,}", "ok"])
            else:
                rows.append([r["scenario"], num_agents_of(r["scenario"]), r["method"], *["-"] * 6, r["status"]])
        lines += _table(
            "Scaling in agents (8 environments per seed, 4 seeds, one process per case)",
            ["environment", "agents", "method", "agent-steps/s", "us per agent-step", "peak MB", "XLA MB", "params",
             "chunk env-steps", "status"], rows, "lrlrrrrrrl",
            "Peak memory is the process's maximum resident set (a process that only started JAX: "
            f"{_fmt(report['agents'][0].get('maxrss_mb'))} MB); XLA's figure is the compiled chunk's arguments + "
            "temporaries on one device.")
    if report.get("devices"):
        lines += _table("Seeds sharded over CPU devices (FuPS, 4 seeds, 8 environments each)",
                        ["environment", "devices", "state on devices", "env-steps/s"],
                        [[r["scenario"], r["devices"], r["state_devices"], _fmt(r["env_steps_per_s"])]
                         for r in report["devices"] if r["status"] == "ok"], "lrrr")
    if report.get("sweep"):
        lines += _table("Sweeps in one program (FuPS, 4 seeds per value)",
                        ["environment", "values side by side", "env-steps/s in all", "per (value, seed)"],
                        [[r["scenario"], r["sweep_values"], _fmt(r["env_steps_per_s"]),
                          _fmt(r["per_value_seed_env_steps_per_s"])] for r in report["sweep"]], "lrrr")
    if report.get("cli"):
        lines += _table("The command line against the bare compiled training (whole processes)",
                        ["case", "seconds (median)", "each round"],
                        [[r["case"], f"{r['median_s']:.1f}", ", ".join(f"{x:.1f}" for x in r["seconds"])]
                         for r in report["cli"]], "lrl")
    if report.get("paper"):
        paper = report["paper"]
        lines += _table(
            "The paper preset against the benchmark's chunk (FuPS, 4 seeds)",
            ["environment", "case", "env-steps per chunk", "env-steps/s", "share of the benchmark chunk's rate"],
            [[r["scenario"], r["case"], f"{r['env_steps_per_chunk']:,}", _fmt(r["env_steps_per_s"]),
              _fmt(paired_ratio(r, base) if (base := _find(paper, group=r["group"], case="make bench chunk")) else None)]
             for r in paper], "llrrr",
            "A logging interval of `--preset paper` (with its evaluation episodes) and the training section's chunk, "
            "timed in turn; the share is the median per-round ratio.")
    projection = paper_projection(report)
    if projection:
        lines += _table("The paper sweep, projected from the training rates (not measured)",
                        ["environment", "methods x 4 seeds", "env-steps per seed", "hours"],
                        [[r["scenario"], r["methods"], f"{r['env_steps_per_seed']:,}", f"{r['hours']:.2f}"]
                         for r in projection] + [["all", "", "", f"{sum(r['hours'] for r in projection):.2f}"]],
                        "lrrr")
    if report.get("profile"):
        names = list(report["profile"][0]["ms_per_update"])
        lines += _table("Where the time goes (ms per A2C update of 4 seeds x 8 environments x 5 steps, one device)",
                        ["environment", "method", *names],
                        [[r["scenario"], r["method"], *(f"{r['ms_per_update'][n]:.2f}" for n in names)]
                         for r in report["profile"]], "ll" + "r" * len(names))
    if report.get("envs"):
        env_md = bench_envs.to_markdown(report["envs"]).split("\n", 2)[2]  # without its title line
        lines += ["## Environment stepping alone (experiments.bench_envs, same run)", "", env_md.strip(), ""]
    return "\n".join(lines)


def code_info() -> dict[str, Any]:
    return {"git_head": bench_envs.git("rev-parse", "HEAD"),
            "uncommitted": bench_envs.uncommitted("adaps_jax", "envs", "experiments/bench")}


BEGIN, END = "<!-- bench:begin (generated by python -m experiments.bench) -->", "<!-- bench:end -->"


def update_docs(markdown: str, path: Path) -> None:
    """Replaces the generated block of docs/BENCHMARKS.md (between the markers) with `markdown`."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = markdown.split("\n", 1)[1].replace("\n## ", "\n### ")  # below the doc's own title
    path.write_text(f"{head}{BEGIN}\n{body.strip()}\n{END}{tail}")


def write_outputs(report: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    md_path.write_text(to_markdown(report) + "\n")
    return json_path, md_path
