"""A markdown report across results folders: methods as rows, scenarios as columns.

    python -m experiments.report results/bps-15a-3c results/lbf-10x10-6p-3f            # to stdout
    python -m experiments.report results/* --out docs/RESULTS.md

Tables: first "at a glance" (return, relative size and diversity in one cell per method and
scenario, the README's results table), then the final greedy test return as "IQM [95% CI low,
high]" over seeds (experiments.stats), trainable parameters, relative model size, policy
diversity, the identity phase's clusters and their adjusted Rand index per seed (AdaPS, SePS),
and the probability that AdaPS beats each baseline, P(AdaPS > X) [95% CI], per scenario. The
test-return statistics come from summary.json when the run wrote them there, else they are
computed from metrics.csv; folders written before evaluation was logged show "–" and are named
under the tables.

With --ablation, the report is instead AdaPS's ablation: every AdaPS run in the folders (a sweep's
points, or separate runs) becomes an arm named by its lambda (`mask_threshold`) and K
(`num_clusters`), with the scenarios as columns: the final greedy test return, the area under the
curve, the identity phase's K (ARI) per seed, and P(arm > default arm) [95% CI], where the default
arm is the config's default (lambda 0.2, K chosen automatically). Folders of one scenario join one
column, so they must differ in nothing else (an error names the fields otherwise); where two
folders hold the same arm, the first one given is shown.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from adaps_jax.config import Config
from adaps_jax.methods import PROPOSED
from experiments import results, stats
from experiments.plot import SIZE_KEYS, PlotInputError, Run, _method_order, method_label, read_run, size_text
from experiments.cli import OneLineArgumentParser

EXIT_BAD_INPUT = 2
DASH = "–"


class ReportInputError(ValueError):
    """A folder or option the report cannot use; reported in one line with exit code 2."""


def _decimals(values: list[float]) -> int:
    """Decimals that give the largest magnitude of a column three significant digits (at least one):
    -350.4 and 0.590 side by side in one column would hide the scale of the other."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return 2
    return max(1, 2 - math.floor(math.log10(max(finite))))


def _interval_text(point: float | None, interval: list | None, decimals: int) -> str:
    if point is None or interval is None:
        return DASH
    low, high = interval
    return f"{point:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"


def _test_return(run: Run, method: str, backend: str) -> tuple[float | None, list | None]:
    """IQM and interval of the final greedy test return: summary.json's when it has them, else from metrics.csv."""
    entry = run.summary.get(method)
    if isinstance(entry, dict) and "final_return_iqm" in entry:
        point, interval = entry.get("final_return_iqm"), entry.get("final_return_ci95")
        ok_point = point is None or isinstance(point, (int, float))
        ok_interval = interval is None or (isinstance(interval, list) and len(interval) == 2
                                           and all(isinstance(v, (int, float)) for v in interval))
        if not (ok_point and ok_interval):
            raise ReportInputError(f"{run.folder}: summary.json: {method}: final_return_iqm must be a number and "
                                   f"final_return_ci95 [low, high]")
        return point, interval
    s = stats.method_statistics(run.rows, method, 0, backend=backend)
    return s["final_return_iqm"], s["final_return_ci95"]


def _column_names(runs: list[Run]) -> list[str]:
    """The scenario, with the folder where two folders share a scenario (its name, or its path when
    the names match too)."""
    scenarios = [run.scenario for run in runs]
    names = [run.folder.name for run in runs]
    out = []
    for run in runs:
        if scenarios.count(run.scenario) == 1:
            out.append(run.scenario)
        else:
            out.append(f"{run.scenario} ({run.folder.name if names.count(run.folder.name) == 1 else run.folder})")
    return out


def _table(title: str, note: str, columns: list[str], rows: list[tuple[str, list[str]]], head: str = "method") -> list[str]:
    lines = [f"## {title}", ""]
    if note:
        lines += [note, ""]
    lines.append(f"| {head} | " + " | ".join(columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return lines + [""]


UNFINISHED = " †"
UNFINISHED_NOTE = f" {UNFINISHED.strip()} marks a figure of a method still training (its last logging point so far)."


def _marked(text: str, run: Run, *methods: str) -> str:
    """`text`, marked when it is a figure of a method without a summary.json entry (still training)."""
    return text + UNFINISHED if text != DASH and any(m not in run.summary for m in methods) else text


def _summary_number(run: Run, method: str, key: str, fmt: str, suffix: str = "") -> str:
    """The method's summary.json `key` formatted, with its unit, or DASH."""
    entry = run.summary.get(method)
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return DASH
    return (size_text(entry, key, fmt) if key in SIZE_KEYS else format(value, fmt)) + suffix


def _summary_interval(run: Run, method: str, key: str, part: str | None = None) -> tuple[float | None, list | None]:
    """`key`_iqm and `key`_ci95 of the method's summary.json entry (of its `part` sub-entry, such as
    "sampled"), or (None, None)."""
    entry = run.summary.get(method)
    entry = entry.get(part) if part and isinstance(entry, dict) else entry
    if not isinstance(entry, dict) or not isinstance(entry.get(f"{key}_iqm"), (int, float)):
        return None, None
    interval = entry.get(f"{key}_ci95")
    if not (isinstance(interval, list) and len(interval) == 2 and all(isinstance(v, (int, float)) for v in interval)):
        return None, None
    return entry[f"{key}_iqm"], interval


def _identity_text(entry) -> str:
    """"K (ARI)" per seed of a method with an identity phase, else DASH."""
    if not isinstance(entry, dict):
        return DASH
    clusters, ari = entry.get("num_clusters"), entry.get("cluster_ari")
    if not isinstance(clusters, list) or not isinstance(ari, list) or len(clusters) != len(ari):
        return DASH
    return ", ".join(f"{k} ({a:.2f})" if isinstance(a, (int, float)) else f"{k} (–)" for k, a in zip(clusters, ari))


# summary.json figures shown as numbers: key, format, unit. The relative size and the diversity
# also stand beside the test return in the "At a glance" table.
RELATIVE_SIZE = ("relative_size", ".2f", "×")
DIVERSITY = ("policy_diversity_mean", ".3f", "")
GLANCE_EXTRAS = (RELATIVE_SIZE, DIVERSITY)


def report_markdown(runs: list[Run], backend: str = "numpy") -> str:
    columns = _column_names(runs)
    methods = sorted({m for r in runs for m in r.methods}, key=_method_order)
    lines = ["# Results report", ""]

    tests = [{m: _test_return(run, m, backend) for m in run.methods} for run in runs]
    decimals = [_decimals([v for p, ci in t.values() if p is not None for v in (p, *ci)]) for t in tests]
    rows = [(method_label(m), [_marked(_interval_text(*t.get(m, (None, None)), d), run, m) if m in run.methods
                               else DASH for run, t, d in zip(runs, tests, decimals)]) for m in methods]
    def glance_cell(run: Run, method: str, test_cell: str) -> str:
        parts = [test_cell] + [_summary_number(run, method, *extra) for extra in GLANCE_EXTRAS]
        return DASH if all(part == DASH for part in parts) else " · ".join(parts)

    glance = [(label, [glance_cell(run, m, cell) for run, cell in zip(runs, cells)])
              for m, (label, cells) in zip(methods, rows)]
    lines += _table("At a glance", "Per scenario: the final greedy test return [95% interval] · the relative "
                    "model size · the policy diversity (each explained in its own table below)." + UNFINISHED_NOTE,
                    columns, glance)
    lines += _table("Final test return", "The greedy policy's team return (summed over agents) at each seed's last "
                    "logging point: interquartile mean over seeds [95% stratified bootstrap interval]."
                    + UNFINISHED_NOTE, columns, rows)

    for title, key, part, note in (
        ("Final test return, sampled actions", "final_return", "sampled",
         "The same episodes' starts with actions sampled from the policy instead of its most likely action."),
        ("Area under the test-return curve", "auc_return", None,
         "The greedy test return averaged over all logging points (learning speed as well as the end point): "
         "IQM over seeds [95% interval]."),
    ):
        figures = [{m: _summary_interval(run, m, key, part) for m in run.methods} for run in runs]
        if any(p is not None for t in figures for p, _ in t.values()):
            rows = [(method_label(m), [_interval_text(*t.get(m, (None, None)), d) if m in run.methods else DASH
                                       for run, t, d in zip(runs, figures, decimals)]) for m in methods]
            lines += _table(title, note, columns, rows)

    for title, key, fmt, suffix, note in (
        ("Parameters", "params", ",", "", "Trainable parameters of the run's policy networks (smallest–largest "
         "seed where the seeds' identity phases found different numbers of clusters)."),
        ("Relative size", *RELATIVE_SIZE, "Parameters / one FuPS network (smallest–largest seed where they differ)."),
        ("Policy diversity", *DIVERSITY, "Mean over seeds."),
        ("Wall time", "wall_seconds", ",.0f", " s", "The method's process time on the machine that ran it, summed "
         "over resumes (compilation included; `compile_seconds` in summary.json)."),
    ):
        rows = [(method_label(m), [_summary_number(run, m, key, fmt, suffix) for run in runs]) for m in methods]
        lines += _table(title, note, columns, rows)

    rows = []
    for m in methods:
        cells = [_identity_text(run.summary.get(m)) for run in runs]
        if any(c != DASH for c in cells):
            rows.append((method_label(m), cells))
    if rows:
        lines += _table("Identity phase", "Clusters K found and their adjusted Rand index against the true agent "
                        "types (1 = the types exactly), per seed.", columns, rows)

    baselines = [m for m in methods if m != PROPOSED]
    if any(PROPOSED in r.methods for r in runs) and baselines:
        rows = []
        for b in baselines:
            cells = []
            for run in runs:
                if PROPOSED in run.methods and b in run.methods and run.has_eval:
                    pair = stats.probability_of_improvement_table(run.rows, [PROPOSED, b], backend=backend)[PROPOSED][b]
                    cells.append(_marked(_interval_text(pair["p"], pair["ci95"], 2), run, PROPOSED, b))
                else:
                    cells.append(DASH)
            rows.append((method_label(b), cells))
        lines += _table(f"Probability of improvement of {method_label(PROPOSED)}",
                        f"P({method_label(PROPOSED)} > baseline) on the final greedy test return, per scenario: the "
                        "chance that a random seed of AdaPS beats a random seed of the baseline (ties count half) "
                        "[95% stratified bootstrap interval]." + UNFINISHED_NOTE, columns, rows, head="baseline")

    old = [str(r.folder) for r in runs if not r.has_eval]
    if old:
        lines += [f"No test return in {', '.join(old)}: written before evaluation was logged (rerun with this "
                  "version).", ""]
    return "\n".join(lines)


# The fields an AdaPS ablation varies (lambda and K), and their defaults: the default arm.
ABLATED = ("mask_threshold", "num_clusters")
DEFAULT_ARM = tuple({f.name: f.default for f in dataclasses.fields(Config)}[name] for name in ABLATED)


def _arm_label(arm: tuple) -> str:
    threshold, clusters = arm
    label = f"λ = {threshold:g}, K = {'automatic' if clusters is None else clusters}"
    return label + " (default)" if arm == DEFAULT_ARM else label


def _adaps_arms(run: Run) -> list[tuple[tuple, str, dict]]:
    """Each AdaPS run in a folder: (its arm (lambda, K), its name in the folder, every other config field)."""
    arms = []
    for variant in run.listing.variants:
        if variant.method == PROPOSED and variant.name in run.methods:
            rest = {**run.listing.config, **variant.values, "method": PROPOSED}
            arms.append((tuple(rest.pop(field, None) for field in ABLATED), variant.name, rest))
    return arms


def ablation_markdown(runs: list[Run], backend: str = "numpy") -> str:
    """AdaPS's arms as rows, scenarios as columns (see the module docstring)."""
    found: dict[str, dict[tuple, tuple[Run, str]]] = {}  # scenario -> arm -> (its folder, its name there)
    first: dict[str, tuple[Run, dict]] = {}  # scenario -> its first folder and config
    for run in runs:
        arms = _adaps_arms(run)
        if not arms:
            raise ReportInputError(f"{run.folder} holds no AdaPS run; an ablation report reads AdaPS runs only")
        for arm, name, rest in arms:
            other, other_rest = first.setdefault(run.scenario, (run, rest))
            differ = sorted(k for k in set(rest) | set(other_rest) if rest.get(k) != other_rest.get(k))
            if differ:
                raise ReportInputError(
                    f"{run.folder} and {other.folder} differ in {', '.join(differ[:5])}; the arms of an ablation "
                    f"may differ only in {' and '.join(ABLATED)}")
            found.setdefault(run.scenario, {}).setdefault(arm, (run, name))
    columns = list(found)
    arms = sorted({arm for by_arm in found.values() for arm in by_arm},
                  key=lambda arm: (arm[1] is not None, arm[1] or 0, arm[0]))

    def cells(figure) -> list[tuple[str, list[str]]]:
        """One row per arm: figure(scenario, arm) where the scenario has that arm, else DASH."""
        return [(_arm_label(arm), [figure(s, arm) if arm in found[s] else DASH for s in columns]) for arm in arms]

    tests = {s: {arm: _test_return(run, name, backend) for arm, (run, name) in by_arm.items()}
             for s, by_arm in found.items()}
    decimals = {s: _decimals([v for p, ci in t.values() if p is not None for v in (p, *ci)]) for s, t in tests.items()}

    def final(scenario: str, arm: tuple) -> str:
        return _marked(_interval_text(*tests[scenario][arm], decimals[scenario]), *found[scenario][arm])

    def area(scenario: str, arm: tuple) -> str:
        return _interval_text(*_summary_interval(*found[scenario][arm], "auc_return"), decimals[scenario])

    def identity(scenario: str, arm: tuple) -> str:
        run, name = found[scenario][arm]
        return _identity_text(run.summary.get(name))

    def improvement(scenario: str, arm: tuple) -> str:
        (run, name), default = found[scenario][arm], found[scenario].get(DEFAULT_ARM)
        if default is None or arm == DEFAULT_ARM or not (run.has_eval and default[0].has_eval):
            return DASH
        mine, theirs = stats.final_scores(run.rows, name), stats.final_scores(default[0].rows, default[1])
        p, interval = stats.probability_of_improvement_interval(mine, theirs, backend=backend)
        if not math.isfinite(p):
            return DASH
        training = name not in run.summary or default[1] not in default[0].summary
        return _interval_text(p, interval, 2) + (UNFINISHED if training else "")

    lines = ["# AdaPS ablation", ""]
    lines += _table("Final test return", "The greedy policy's team return at each seed's last logging point: IQM "
                    "over seeds [95% stratified bootstrap interval]." + UNFINISHED_NOTE, columns, cells(final), "arm")
    lines += _table("Area under the test-return curve", "The greedy test return averaged over all logging points: "
                    "IQM over seeds [95% interval].", columns, cells(area), "arm")
    lines += _table("Identity phase", "Clusters K found (or set) and their adjusted Rand index against the true "
                    "agent types, per seed.", columns, cells(identity), "arm")
    lines += _table("Probability of improvement over the default arm",
                    "P(arm > default arm) on the final greedy test return: the chance that a random seed of the arm "
                    "beats a random seed of the default arm (ties count half) [95% stratified bootstrap interval]."
                    + UNFINISHED_NOTE, columns, cells(improvement), "arm")
    return "\n".join(lines)


def build_report(folders: list[Path], backend: str = "numpy", ablation: bool = False) -> str:
    """The report of the folders (AdaPS's ablation with `ablation`); ReportInputError for a folder
    that is not a readable results folder."""
    if not folders:
        raise ReportInputError("give at least one results folder")
    if backend not in stats.BACKENDS:
        raise ReportInputError(f"unknown statistics backend {backend!r} (allowed: {', '.join(stats.BACKENDS)})")
    try:
        runs = [read_run(Path(f)) for f in folders]
    except PlotInputError as err:
        raise ReportInputError(str(err)) from None
    try:
        return (ablation_markdown if ablation else report_markdown)(runs, backend)
    except stats.StatsInputError as err:
        raise ReportInputError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    p = OneLineArgumentParser(prog="python -m experiments.report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("folders", nargs="+", metavar="DIR", help="results folders (written by experiments.run)")
    p.add_argument("--out", metavar="FILE.md", help="write the report here (default: standard output)")
    p.add_argument("--stats-backend", choices=stats.BACKENDS, default="numpy",
                   help="statistics computed here: rliable when it imports (auto), or numpy (much faster)")
    p.add_argument("--ablation", action="store_true",
                   help="AdaPS's ablation instead: its lambda and K arms as rows (see below)")
    args = p.parse_args(argv)
    try:
        text = build_report([Path(f) for f in args.folders], args.stats_backend, args.ablation)
    except ReportInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        results.write_atomic(Path(args.out), text)
    except OSError as err:
        print(f"error: cannot write {args.out}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
