"""Plots and a markdown summary of one or more results folders (see experiments.results).

    python -m experiments.plot results/bps-15a-3c-quick                       # into <DIR>/plots
    python -m experiments.plot results/bps-* results/lbf-* --out figures/     # several scenarios
    python -m experiments.plot results/bps-15a-3c-quick --band minmax --per-type

Writes into the output folder:
    learning_curves.png/.svg  one panel per scenario (as the paper's Fig. 3): the greedy test return
                              (summed over agents); by default the IQM over seeds as the line and its
                              95% stratified bootstrap interval as the band, with --band minmax the
                              mean and the min-max over seeds; one fixed colour per method
    per_type_curves.png/.svg  (--per-type) the same per agent type, one panel per type and scenario
    model_size.png/.svg       relative model size per method (as the paper's Fig. 4), the
                              parameter count written on each bar; one group per scenario
    aggregate_iqm.png/.svg    IQM over scenarios and seeds of the final test return, min-max
                              normalised per scenario, with its 95% interval (experiments.stats)
    probability_of_improvement.png/.svg
                              P(AdaPS > each other method) on the final test return, with its interval
    summary.md                a table per scenario: final return, size, diversity, clusters, time
Folders written before evaluation was logged have no test return: their curves show the training
return instead, they are left out of the aggregate figures, and one line says so.
`summary.md` needs nothing beyond the standard library; the figures need matplotlib (the `plots`
extra). Run folders may be unfinished: methods without a summary.json entry still get their
learning curve, and appear in summary.md as unfinished.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments import results, stats

EXIT_BAD_INPUT = 2
BANDS = ("ci", "minmax")
TEST_COLUMN = stats.GREEDY
INSTALL_HINT = "plots need matplotlib: pip install 'adaps-jax[plots]'"

# One fixed colour and label per method, the same in every panel and figure.
METHOD_STYLE = {
    "adaps": ("AdaPS", "#d62728"),  # red: the paper's method stands out
    "nops": ("NoPS", "#1f77b4"),
    "fups": ("FuPS", "#2ca02c"),
    "fups_id": ("FuPS+id", "#ff7f0e"),
    "seps": ("SePS", "#9467bd"),
    "snp_ps": ("SNP-PS", "#8c564b"),
}
_EXTRA_COLOURS = ["#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_LINESTYLES = ["-", "--", ":", "-."]
DPI = 150


class PlotInputError(ValueError):
    """A folder that is not a readable results folder; reported in one line with exit code 2."""


def method_label(method: str) -> str:
    return METHOD_STYLE.get(method, (method, None))[0]


def method_colour(method: str) -> str:
    if method in METHOD_STYLE:
        return METHOD_STYLE[method][1]
    return _EXTRA_COLOURS[sum(map(ord, method)) % len(_EXTRA_COLOURS)]


def _method_order(method: str) -> tuple[int, str]:
    order = list(METHOD_STYLE)
    return (order.index(method) if method in order else len(order), method)


# ---- reading ------------------------------------------------------------------------------------


@dataclass
class Curve:
    """One method of one folder: returns per seed (rows) and logging point (columns)."""

    method: str
    steps: np.ndarray  # (L,) environment steps per seed at each logging point
    returns: np.ndarray  # (S, L), NaN where a logging point closed no episode (or is missing)
    label: str = ""
    linestyle: str = "-"

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Steps, mean, min and max over seeds at the logging points where some seed has a number."""
        has_value = ~np.all(np.isnan(self.returns), axis=0)
        r = self.returns[:, has_value]
        return self.steps[has_value], np.nanmean(r, axis=0), np.nanmin(r, axis=0), np.nanmax(r, axis=0)

    def band(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Steps, line and band: "minmax" as `stats`; "ci" the IQM over seeds and its 95% stratified
        bootstrap interval at each logging point. The curve bands always use the numpy bootstrap:
        one interval per point and method is hundreds of intervals, seconds each through rliable."""
        if kind == "minmax":
            return self.stats()
        if kind != "ci":
            raise PlotInputError(f"unknown band {kind!r} (allowed: {', '.join(BANDS)})")
        has_value = ~np.all(np.isnan(self.returns), axis=0)
        centre, low, high = [], [], []
        for column in self.returns[:, has_value].T:
            point, (lo, hi) = stats.iqm_interval(column[~np.isnan(column)], backend="numpy")
            centre.append(point), low.append(lo), high.append(hi)
        return self.steps[has_value], np.array(centre), np.array(low), np.array(high)


@dataclass
class Run:
    folder: Path
    scenario: str
    num_seeds: int | None
    methods: list[str]  # in the run's order
    curves: dict[str, Curve]  # training return (return_mean)
    summary: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)  # metrics.csv as results.read_metrics gives it
    test_curves: dict[str, Curve] = field(default_factory=dict)  # greedy test return; {} in old folders
    num_types: int = 0

    @property
    def has_eval(self) -> bool:
        """Whether the folder logged a test return: written by a version that evaluates, and (the
        column may be there but empty) it has finished an evaluation."""
        return any(math.isfinite(r.get(TEST_COLUMN, math.nan)) for r in self.rows)

    def type_curves(self, t: int) -> tuple[dict[str, Curve], bool]:
        """Curves of agent type t: the greedy test return when logged, else the training return;
        and whether they are test returns."""
        column = f"{TEST_COLUMN}_type_{t}" if self.has_eval else f"return_type_{t}"
        return _curves(self.rows, self.methods, column), self.has_eval


def read_run(folder: Path) -> Run:
    """A results folder's config, metrics and (if any) summary; PlotInputError when unreadable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PlotInputError(f"{folder}: no such results folder")
    for name in ("config.json", "metrics.csv"):
        if not (folder / name).is_file():
            raise PlotInputError(f"{folder}: not a results folder (no {name})")
    try:
        run = results.read_json(folder / "config.json")
        scenario = str(run["scenario"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PlotInputError(f"{folder}: config.json is unreadable ({type(err).__name__}: {err})".splitlines()[0]) from None
    try:
        rows = results.read_metrics(folder / "metrics.csv")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PlotInputError(f"{folder}: metrics.csv is unreadable ({type(err).__name__}: {err})".splitlines()[0]) from None
    try:
        summary = results.read_summary(folder)
    except ValueError as err:
        raise PlotInputError(f"{folder}: summary.json is unreadable ({err})".splitlines()[0]) from None
    listed = [m for m in run.get("methods", []) if isinstance(m, str)]
    seen = sorted({r["method"] for r in rows} | set(summary), key=_method_order)
    methods = [m for m in listed if m in seen] + [m for m in seen if m not in listed]
    curves = _curves(rows, methods, "return_mean")
    test_curves = _curves(rows, methods, TEST_COLUMN)
    columns = set().union(*(r.keys() for r in rows)) if rows else set()
    num_types = sum(1 for c in columns if c.startswith("return_type_"))
    num_seeds = run.get("config", {}).get("num_seeds") if isinstance(run.get("config"), dict) else None
    return Run(folder, scenario, num_seeds, methods, curves, summary, rows, test_curves, num_types)


def _curves(rows: list[dict], methods: list[str], column: str) -> dict[str, Curve]:
    """Per method with rows holding `column`: its values per seed and logging point."""
    curves = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method and column in r]
        if not mine:
            continue
        logs = sorted({r["log"] for r in mine})
        seeds = sorted({r["seed"] for r in mine})
        steps = {r["log"]: r["env_steps"] for r in mine}
        returns = np.full((len(seeds), len(logs)), np.nan)
        for r in mine:
            returns[seeds.index(r["seed"]), logs.index(r["log"])] = r[column]
        curves[method] = Curve(method, np.array([steps[l] for l in logs], float), returns)
    return curves


def _group_by_scenario(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.scenario, []).append(run)
    return groups


def _entries(runs: list[Run]) -> list[tuple[Run, str, str, str]]:
    """(run, method, label, linestyle) of one scenario; a method found in several folders gets the
    folder name in its label and a different line style."""
    count: dict[str, int] = {}
    for run in runs:
        for m in run.methods:
            count[m] = count.get(m, 0) + 1
    used: dict[str, int] = {}
    out = []
    for run in runs:
        for m in run.methods:
            k = used.get(m, 0)
            used[m] = k + 1
            label = method_label(m) if count[m] == 1 else f"{method_label(m)} ({run.folder.name})"
            out.append((run, m, label, _LINESTYLES[k % len(_LINESTYLES)]))
    return sorted(out, key=lambda e: _method_order(e[1]))


# ---- summary.md ---------------------------------------------------------------------------------


def _num(x, fmt: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, fmt)


def _per_seed(values, fmt: str) -> str:
    if not values:
        return "–"
    return ", ".join(_num(v, fmt) for v in values)


def summary_markdown(runs: list[Run]) -> str:
    lines = ["# Results summary", ""]
    lines.append("Final return: the team return (summed over agents) at each seed's last logging point "
                 "that closed an episode; mean over seeds [min, max]. Relative size: parameters / one FuPS network.")
    for scenario, group in _group_by_scenario(runs).items():
        lines += ["", f"## {scenario}", ""]
        folders = ", ".join(f"`{r.folder}`" for r in group)
        lines.append(f"Folder{'s' if len(group) > 1 else ''}: {folders}")
        lines.append("")
        lines.append("| method | final return mean [min, max] | seeds | env steps | params | relative size "
                     "| policy diversity | clusters (per seed) | ARI (per seed) | wall seconds |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for run, method, label, _ in _entries(group):
            entry = run.summary.get(method)
            if isinstance(entry, dict):
                ret = (f"{_num(entry.get('final_return_mean'), '.2f')} "
                       f"[{_num(entry.get('final_return_min'), '.2f')}, {_num(entry.get('final_return_max'), '.2f')}]")
                seeds = len(entry.get("per_seed") or []) or "–"
                lines.append(
                    f"| {label} | {ret} | {seeds} | {_num(entry.get('env_steps'), ',')} | {_num(entry.get('params'), ',')} "
                    f"| {_num(entry.get('relative_size'), '.2f')}× | {_num(entry.get('policy_diversity_mean'), '.3f')} "
                    f"| {_per_seed(entry.get('num_clusters'), 'd')} | {_per_seed(entry.get('cluster_ari'), '.2f')} "
                    f"| {_num(entry.get('wall_seconds'), '.1f')} |"
                )
            else:
                curve = run.curves.get(method)
                finals = [results.last_finite(list(r)) for r in curve.returns] if curve is not None else []
                finite = [f for f in finals if not math.isnan(f)]
                ret = (f"{np.mean(finite):.2f} [{np.min(finite):.2f}, {np.max(finite):.2f}]" if finite else "–")
                steps = int(curve.steps[-1]) if curve is not None and len(curve.steps) else None
                lines.append(f"| {label} (unfinished) | {ret} | {len(finals) or '–'} | {_num(steps, ',')} "
                             f"| – | – | – | – | – | – |")
    return "\n".join(lines) + "\n"


# ---- figures ------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: Path) -> list[Path]:
    """PNG and SVG of the figure, each written to a temporary name and renamed."""
    written = []
    for ext, kwargs in (("png", {"dpi": DPI}), ("svg", {})):
        target = path.with_suffix("." + ext)
        tmp = target.with_name(f".{target.name}.tmp")
        fig.savefig(tmp, format=ext, facecolor="white", bbox_inches="tight", **kwargs)
        os.replace(tmp, target)
        written.append(target)
    return written


def _step_unit(max_steps: float) -> tuple[float, str]:
    """Scale and axis label of environment steps: millions, or thousands / steps for tiny runs."""
    if max_steps >= 1e6:
        return 1e6, "environment steps (millions)"
    if max_steps >= 1e3:
        return 1e3, "environment steps (thousands)"
    return 1.0, "environment steps"


@dataclass
class Panel:
    """One axes of curves: (method, label, linestyle, curve) entries under a title."""

    title: str
    entries: list[tuple[str, str, str, Curve]]
    ylabel: str


def _centre_name(band: str) -> str:
    return "IQM" if band == "ci" else "mean"


def _band_name(band: str) -> str:
    return "95% bootstrap CI of the IQM" if band == "ci" else "min-max over seeds"


def _seed_text(group: list[Run]) -> str:
    seeds = sorted({r.num_seeds for r in group if r.num_seeds})
    return f" ({'/'.join(map(str, seeds))} seed{'' if seeds == [1] else 's'})" if seeds else ""


def _curve_figure(panels: list[Panel | None], path: Path, band: str, panel_size: tuple[float, float],
                  font: float, ncols: int = 3) -> list[Path]:
    """Panels of curves, three to a row (None leaves a place empty), one legend below: the line is the
    IQM (or mean) over seeds, the band the bootstrap interval (or min-max), drawn only where there
    are several seeds."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ncols = min(len(panels), ncols)
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(panel_size[0] * ncols, panel_size[1] * nrows + 0.7)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    handles: dict[str, tuple[tuple, Line2D]] = {}  # label -> (sort key, line)
    banded = False
    max_steps = max((c.steps.max() for p in panels if p for *_, c in p.entries if c.steps.size), default=0.0)
    scale, xlabel = _step_unit(max_steps)
    for ax, panel in zip(axes.flat, panels):
        if panel is None:
            ax.set_visible(False)
            continue
        drawn = 0
        for method, label, style, curve in panel.entries:
            steps, centre, low, high = curve.band(band)
            if steps.size == 0:
                continue
            colour = method_colour(method)
            marker = "o" if steps.size <= 25 else None
            (line,) = ax.plot(steps, centre, color=colour, linestyle=style, linewidth=2, marker=marker,
                              markersize=3.5, label=label, zorder=3)
            if curve.returns.shape[0] > 1:
                ax.fill_between(steps, low, high, color=colour, alpha=0.2, linewidth=0, zorder=2)
                banded = True
            handles.setdefault(label, ((_method_order(method), style), line))
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "no finished episodes yet", transform=ax.transAxes, ha="center", va="center",
                    color="grey", fontsize=font + 1)
            ax.set_xlim(0, max_steps or 1.0)
            ax.set_yticks([])
        ax.set_title(panel.title, fontsize=font + 2)
        ax.set_xlabel(xlabel, fontsize=font)
        if panel.ylabel:
            ax.set_ylabel(panel.ylabel, fontsize=font)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x / scale:g}"))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5 if panel_size[0] < 4 else 6, steps=[1, 2, 2.5, 5, 10]))
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=font - 1)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if handles:
        ordered = sorted(handles.items(), key=lambda item: item[1][0])
        legend = [line for _, (_, line) in ordered]
        labels = [label for label, _ in ordered]
        per_panel = 3 if max(map(len, labels)) <= 20 else 2  # labels with folder names take two places
        if banded:
            legend.append(Patch(facecolor="grey", alpha=0.25))
            labels.append(_band_name(band))
        fig.legend(legend, labels, loc="outside lower center", ncol=min(len(labels), per_panel * ncols + 1),
                   fontsize=font, frameon=False)
    return _save(fig, path)


def learning_curves(runs: list[Run], path: Path, band: str = "ci") -> list[Path]:
    """One panel per scenario: the greedy test return, or the training return for a folder written
    before evaluation was logged (its axis says which)."""
    panels = []
    for scenario, group in _group_by_scenario(runs).items():
        entries = []
        for run, method, label, style in _entries(group):
            curve = (run.test_curves if run.has_eval else run.curves).get(method)
            if curve is not None:
                entries.append((method, label, style, curve))
        kind = "test return, greedy" if all(r.has_eval for r in group) else (
            "training return" if not any(r.has_eval for r in group) else "test or training return")
        panels.append(Panel(scenario + _seed_text(group), entries,
                            f"{kind}\n({_centre_name(band)} over seeds, sum over agents)"))
    return _curve_figure(panels, path, band, (5.2, 3.9), 10)


def per_type_curves(runs: list[Run], path: Path, band: str = "ci") -> list[Path]:
    """One panel per agent type and scenario: the return summed over that type's agents (greedy test
    return, or training return for old folders). Writes nothing (returns []) without type columns."""
    per_scenario: list[list[Panel]] = []
    for scenario, group in _group_by_scenario(runs).items():
        panels = []
        for t in range(max(r.num_types for r in group)):
            entries, tested = [], []
            for run, method, label, style in _entries(group):
                curves, is_test = run.type_curves(t)
                tested.append(is_test)
                if method in curves:
                    entries.append((method, label, style, curves[method]))
            kind = "test return" if all(tested) else "training return" if not any(tested) else "return"
            ylabel = f"{kind} of the type's agents\n({_centre_name(band)} over seeds)"
            panels.append(Panel(f"{scenario}: type {t}", entries, ylabel))
        if panels:
            per_scenario.append(panels)
    if not per_scenario:
        return []
    ncols = min(max(len(p) for p in per_scenario), 3)
    panels: list[Panel | None] = []
    for scenario_panels in per_scenario:  # each scenario starts a row; the axis label on its first column
        for i, panel in enumerate(scenario_panels):
            panel.ylabel = panel.ylabel if i % ncols == 0 else ""
        panels += scenario_panels + [None] * (-len(scenario_panels) % ncols)
    return _curve_figure(panels, path, band, (3.6, 3.2), 12, ncols)  # larger type: three panels shown 700 px wide


def _size_text(size: float) -> str:
    text = f"{size:.2f}"
    return (text[:-1] if text.endswith("0") else text) + "×"


def model_size(runs: list[Run], path: Path) -> list[Path]:
    """Relative model size bars, one panel per scenario; writes nothing (returns []) when no method
    of any folder has finished."""
    groups = {}
    for scenario, group in _group_by_scenario(runs).items():
        bars = []
        for run, method, label, _ in _entries(group):
            entry = run.summary.get(method)
            if isinstance(entry, dict) and entry.get("relative_size") is not None:
                bars.append((method, label, float(entry["relative_size"]), entry.get("params")))
        if bars:
            groups[scenario] = bars
    if not groups:
        return []
    ncols = min(len(groups), 3)
    nrows = math.ceil(len(groups) / ncols)
    widest = max(len(b) for b in groups.values())
    fig = _figure(ncols * max(4.2, 0.85 * widest + 1.3), 4.0 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, (ax, (scenario, bars)) in enumerate(zip(axes.flat, groups.items())):
        x = np.arange(len(bars))
        sizes = [size for _, _, size, _ in bars]
        ax.bar(x, sizes, width=0.75, color=[method_colour(m) for m, *_ in bars], edgecolor="black", linewidth=0.6)
        for xi, (_, _, size, params) in zip(x, bars):
            text = _size_text(size) + (f"\n{params:,}" if isinstance(params, int) else "")
            ax.annotate(text, (xi, size), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                        fontsize=8.5)
        rotate = len(bars) > 4 or any(len(label) > 8 for _, label, _, _ in bars)
        ax.set_xticks(x, [label for _, label, _, _ in bars], rotation=30 if rotate else 0,
                      ha="right" if rotate else "center", rotation_mode="anchor", fontsize=10)
        pad = (widest - len(bars)) / 2  # the same bar width in every panel
        ax.set_xlim(-0.6 - pad, len(bars) - 0.4 + pad)
        ax.set_ylim(0, max(sizes) * 1.3)
        ax.set_title(scenario, fontsize=12)
        if i % ncols == 0:
            ax.set_ylabel("relative model size\n(× one FuPS network)", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", labelsize=9)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    note = "on each bar: relative size and trainable parameters"
    fig.suptitle(f"Model size ({note})" if ncols > 1 else f"Model size\n({note})", fontsize=11)
    return _save(fig, path)


def final_test_scores(runs: list[Run]) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    """The scenarios with test returns, per method a (seeds, scenarios) matrix of each seed's final
    greedy test return (NaN where a scenario has fewer seeds), and notes on what was left out: a
    method must have a value in every scenario to be aggregated over them."""
    notes = []
    groups = _group_by_scenario([r for r in runs if r.has_eval])
    per_scenario: dict[str, dict[str, np.ndarray]] = {}
    for scenario, group in groups.items():
        finals: dict[str, np.ndarray] = {}
        for run in group:
            for method in run.methods:
                values = stats.final_scores(run.rows, method)
                values = values[np.isfinite(values)]
                if method in finals:  # two runs of one scenario: which seeds to pool is not ours to guess
                    return [], {}, [f"no aggregate figures: {scenario} has {method_label(method)} in several "
                                    f"folders (give one folder per scenario)"]
                if values.size:
                    finals[method] = values
        per_scenario[scenario] = finals
    scenarios = list(per_scenario)
    everywhere = [m for m in sorted({m for f in per_scenario.values() for m in f}, key=_method_order)
                  if all(m in f for f in per_scenario.values())]
    partial = sorted({m for f in per_scenario.values() for m in f} - set(everywhere), key=_method_order)
    if partial:
        notes.append(f"left out of the aggregate figures (no final test return in every scenario): "
                     f"{', '.join(method_label(m) for m in partial)}")
    matrices = {}
    for m in everywhere:
        n = max(per_scenario[s][m].size for s in scenarios)
        x = np.full((n, len(scenarios)), np.nan)
        for j, s in enumerate(scenarios):
            x[:per_scenario[s][m].size, j] = per_scenario[s][m]
        matrices[m] = x
    return scenarios, matrices, notes


def _interval_figure(items: list[tuple[str, str, float, list[float]]], path: Path, xlabel: str, title: str,
                     reference: float | None = None, xlim: tuple[float, float] | None = None) -> list[Path]:
    """Horizontal intervals, one row per (method, label, point, [low, high]) as rliable draws them:
    a bar over the interval, a tick at the point estimate, and the numbers written beside."""
    fig = _figure(7.0, 0.5 * len(items) + 1.5)
    ax = fig.subplots()
    for y, (method, label, point, (low, high)) in enumerate(items):
        colour = method_colour(method)
        ax.barh(y, max(high - low, 1e-9), left=low, height=0.6, color=colour, alpha=0.75, zorder=2)
        ax.vlines(point, y - 0.3, y + 0.3, color="black", linewidth=2, zorder=3)
    if reference is not None:
        ax.axvline(reference, color="grey", linestyle="--", linewidth=1, zorder=1)
    ax.set_yticks(range(len(items)), [label for _, label, _, _ in items], fontsize=11)
    for tick, (method, *_) in zip(ax.get_yticklabels(), items):
        tick.set_color(method_colour(method))
    ax.set_ylim(len(items) - 0.5, -0.5)  # the first item on top
    if xlim is not None:
        ax.set_xlim(*xlim)
    for y, (_, _, point, (low, high)) in enumerate(items):
        ax.annotate(f"{point:.2f} [{low:.2f}, {high:.2f}]", (1.02, y), xycoords=("axes fraction", "data"),
                    va="center", ha="left", fontsize=10)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_title(title, fontsize=12)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.tick_params(axis="x", labelsize=10)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return _save(fig, path)


def _scenario_text(scenarios: list[str]) -> str:
    return scenarios[0] if len(scenarios) == 1 else f"{len(scenarios)} scenarios"


def aggregate_iqm(scenarios: list[str], matrices: dict[str, np.ndarray], path: Path, backend: str = "auto") -> list[Path]:
    """IQM over scenarios and seeds of the final test return, normalised per scenario (min-max over
    every method's seeds, see stats.normalise), with its 95% stratified bootstrap interval."""
    if not matrices:
        return []
    normalised = stats.normalise(matrices)
    items = []
    for method, x in normalised.items():
        point, interval = stats.iqm_interval(x, backend=backend)
        items.append((method, method_label(method), point, interval))
    return _interval_figure(items, path, "normalised final test return (IQM; 0 = worst seed, 1 = best seed)",
                            f"Aggregate over {_scenario_text(scenarios)}, 95% bootstrap CI", xlim=(-0.02, 1.02))


def probability_of_improvement_figure(scenarios: list[str], matrices: dict[str, np.ndarray], path: Path,
                                      backend: str = "auto") -> list[Path]:
    """P(AdaPS > X) on the final test return for every other method X, averaged over scenarios, with
    its 95% stratified bootstrap interval. Writes nothing without AdaPS and another method."""
    if "adaps" not in matrices or len(matrices) < 2:
        return []
    items = []
    for method, x in matrices.items():
        if method == "adaps":
            continue
        point, interval = stats.probability_of_improvement_interval(matrices["adaps"], x, backend=backend)
        items.append((method, method_label(method), point, interval))
    return _interval_figure(items, path, f"P({method_label('adaps')} > method) on the final test return",
                            f"Probability of improvement over {_scenario_text(scenarios)}, 95% bootstrap CI",
                            reference=0.5, xlim=(0.0, 1.0))


# ---- entry points -------------------------------------------------------------------------------


def plot_folders(folders: list[Path], out: Path, band: str = "ci", per_type: bool = False, backend: str = "auto",
                 notes: list[str] | None = None) -> list[Path]:
    """Reads the results folders and writes summary.md and the figures into `out`; the files written.

    `notes` (if given) collects one-line remarks on figures left out, such as the ones that need
    evaluation data. Raises PlotInputError for a folder that is not a results folder or a bad option,
    ImportError (with the install hint) when matplotlib is missing; summary.md is written before the
    figures are tried.
    """
    if not folders:
        raise PlotInputError("give at least one results folder")
    if band not in BANDS:
        raise PlotInputError(f"unknown band {band!r} (allowed: {', '.join(BANDS)})")
    if backend not in stats.BACKENDS:
        raise PlotInputError(f"unknown statistics backend {backend!r} (allowed: {', '.join(stats.BACKENDS)})")
    notes = [] if notes is None else notes
    runs = [read_run(Path(f)) for f in folders]
    scenarios, matrices, score_notes = final_test_scores(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results.write_atomic(out / "summary.md", summary_markdown(runs))
    written = [out / "summary.md"]
    _figure(1, 1)  # raises the install hint before any figure work when matplotlib is missing
    written += learning_curves(runs, out / "learning_curves.png", band)
    if per_type:
        written += per_type_curves(runs, out / "per_type_curves.png", band)
    written += model_size(runs, out / "model_size.png")
    try:
        written += aggregate_iqm(scenarios, matrices, out / "aggregate_iqm.png", backend)
        written += probability_of_improvement_figure(scenarios, matrices, out / "probability_of_improvement.png",
                                                     backend)
    except stats.StatsInputError as err:
        raise PlotInputError(str(err)) from None
    old = [str(r.folder) for r in runs if not r.has_eval]
    if old:
        what = "curves" if not per_type else "curves, per-type curves included,"
        notes.append(f"no evaluation columns in {', '.join(old)}: their {what} show the training return, and "
                     f"aggregate_iqm and probability_of_improvement leave them out (they need evaluation data: "
                     f"rerun with this version)")
    notes += score_notes
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.plot", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("folders", nargs="+", metavar="DIR", help="results folders (written by experiments.run)")
    p.add_argument("--out", metavar="PLOTDIR", help="output folder (default: <first DIR>/plots)")
    p.add_argument("--band", choices=BANDS, default="ci",
                   help="ci: IQM over seeds and its 95%% bootstrap interval (default); minmax: mean and min-max")
    p.add_argument("--per-type", action="store_true", help="also per_type_curves: one panel per agent type")
    p.add_argument("--stats-backend", choices=stats.BACKENDS, default="auto",
                   help="intervals of the aggregate figures: rliable when it imports (auto), or numpy (seconds faster)")
    args = p.parse_args(argv)
    folders = [Path(f) for f in args.folders]
    out = Path(args.out) if args.out else folders[0] / "plots"
    notes: list[str] = []
    try:
        written = plot_folders(folders, out, args.band, args.per_type, args.stats_backend, notes)
    except PlotInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: cannot write to {out}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in written:
        print(path)
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
