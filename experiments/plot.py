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
    identity.png/.svg         AdaPS's and SePS's agent identity vectors on their first two principal
                              components, one panel per seed: colour = true agent type, marker =
                              cluster, the adjusted Rand index in the title
    masks.png/.svg            AdaPS's neuron masks, cluster x hidden neuron for actor and critic, and
                              the clusters' pairwise Jaccard overlap (first three seeds)
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
from adaps_jax.methods import METHOD_TABLE, METHODS, PROPOSED
from experiments.cli import OneLineArgumentParser
from experiments.description import Listing, base_method, read_listing

EXIT_BAD_INPUT = 2
BANDS = ("ci", "minmax")
TEST_COLUMN = stats.GREEDY
INSTALL_HINT = "plots need matplotlib: pip install 'adaps-jax[plots]'"

# One fixed colour per method, the same in every panel and figure (labels: adaps_jax.methods).
METHOD_COLOURS = {
    "adaps": "#d62728",  # red: the paper's method stands out
    "nops": "#1f77b4",
    "fups": "#2ca02c",
    "fups_id": "#ff7f0e",
    "seps": "#9467bd",
    "snp_ps": "#8c564b",
}
# For the values of a sweep and anything else: colours none of the methods uses.
_EXTRA_COLOURS = ["#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39"]
_LINESTYLES = ["-", "--", ":", "-."]
DPI = 150


class PlotInputError(ValueError):
    """A folder that is not a readable results folder; reported in one line with exit code 2."""


def method_label(name: str) -> str:
    """The printed label of a method or sweep variant: "AdaPS", "AdaPS[mask_threshold=0.1]"."""
    base = base_method(name)
    return (METHOD_TABLE[base].label if base in METHOD_TABLE else base) + name[len(base):]


def method_colour(name: str) -> str:
    if name in METHOD_COLOURS:
        return METHOD_COLOURS[name]
    return _EXTRA_COLOURS[sum(map(ord, name)) % len(_EXTRA_COLOURS)]


def _method_order(name: str) -> tuple[int, str]:
    base = base_method(name)
    return (METHODS.index(base) if base in METHODS else len(METHODS), name)


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
    listing: Listing | None = None  # what config.json says the run is (variants, config)

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
        listing = read_listing(folder)
    except ValueError as err:
        raise PlotInputError(f"{folder}: {err}".splitlines()[0]) from None
    try:
        rows, summary = results.read_rows_and_summary(folder)
    except results.UnreadableResults as err:
        raise PlotInputError(f"{folder}: {err.name} is unreadable ({err})".splitlines()[0]) from None
    try:
        results.check_summary(summary)
    except ValueError as err:
        raise PlotInputError(f"{folder}: summary.json: {err}".splitlines()[0]) from None
    listed = listing.methods
    seen = sorted({r["method"] for r in rows} | set(summary), key=_method_order)
    methods = [m for m in listed if m in seen] + [m for m in seen if m not in listed]
    curves = _curves(rows, methods, "return_mean")
    test_curves = _curves(rows, methods, TEST_COLUMN)
    columns = set().union(*(r.keys() for r in rows)) if rows else set()
    num_types = sum(1 for c in columns if c.startswith("return_type_"))
    return Run(folder, listing.scenario, listing.num_seeds, methods, curves, summary, rows, test_curves, num_types,
               listing)


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


# Model-size figures: summary.json keeps the largest seed's, and every seed's parameter count.
SIZE_KEYS = ("params", "relative_size")


def smallest_seed_size(entry: dict, largest: int | float) -> int | float:
    """A size figure (`largest`, the largest seed's) for the smallest seed. The seeds differ where
    their identity phases found different numbers of clusters (SePS trains one network per cluster);
    a table showing only the largest would hide the other seeds' sizes."""
    seeds = entry.get("params_per_seed")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(p, int) and p > 0 for p in seeds):
        return largest
    low = largest * min(seeds) / max(seeds)
    return round(low) if isinstance(largest, int) else low


def size_text(entry: dict, key: str, fmt: str) -> str:
    """The size figure `key` over the seeds: "smallest–largest", one number where they agree, "–" where
    the entry has none."""
    value = entry.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    low = smallest_seed_size(entry, value)
    return format(value, fmt) if low == value else f"{format(low, fmt)}–{format(value, fmt)}"


def _per_seed(values, fmt: str) -> str:
    if not values:
        return "–"
    return ", ".join(_num(v, fmt) for v in values)


def summary_markdown(runs: list[Run]) -> str:
    lines = ["# Results summary", ""]
    lines.append("Final return: the test return (team return summed over agents, greedy evaluation episodes) at "
                 "each seed's last logging point; mean over seeds [min, max] (results without evaluation: the "
                 "training episodes' return). Relative size: parameters / one FuPS network; a range where the seeds "
                 "differ (SePS trains one network per cluster its identity phase found).")
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
                prefix = "final_return" if entry.get("final_return_mean") is not None else "train_return"
                if "per_seed" in entry:  # written before evaluation existed
                    prefix = "final_return"
                ret = (f"{_num(entry.get(prefix + '_mean'), '.2f')} "
                       f"[{_num(entry.get(prefix + '_min'), '.2f')}, {_num(entry.get(prefix + '_max'), '.2f')}]")
                seeds = len(entry.get("train_return_per_seed") or entry.get("per_seed") or []) or "–"
                lines.append(
                    f"| {label} | {ret} | {seeds} | {_num(entry.get('env_steps'), ',')} | {size_text(entry, 'params', ',')} "
                    f"| {size_text(entry, 'relative_size', '.2f')}× | {_num(entry.get('policy_diversity_mean'), '.3f')} "
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


def bar_label(entry: dict) -> str:
    """The text on a method's model-size bar: its relative size and parameters, each as
    smallest–largest seed where the seeds differ (the bar itself is the largest seed's)."""
    largest = float(entry["relative_size"])
    smallest = smallest_seed_size(entry, largest)
    text = _size_text(largest) if smallest == largest else f"{_size_text(smallest)}–{_size_text(largest)}"
    params = size_text(entry, "params", ",")
    return text + (f"\n{params}" if params != "–" else "")


def model_size(runs: list[Run], path: Path) -> list[Path]:
    """Relative model size bars, one panel per scenario; writes nothing (returns []) when no method
    of any folder has finished."""
    groups = {}
    for scenario, group in _group_by_scenario(runs).items():
        bars = []
        for run, method, label, _ in _entries(group):
            entry = run.summary.get(method)
            if isinstance(entry, dict) and entry.get("relative_size") is not None:
                bars.append((method, label, float(entry["relative_size"]), bar_label(entry)))
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
        for xi, (_, _, size, text) in zip(x, bars):
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


def aggregate_iqm(scenarios: list[str], matrices: dict[str, np.ndarray], path: Path, backend: str = "numpy") -> list[Path]:
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
                                      backend: str = "numpy") -> list[Path]:
    """P(AdaPS > X) on the final test return for every other method X, averaged over scenarios, with
    its 95% stratified bootstrap interval. Writes nothing without AdaPS and another method."""
    if PROPOSED not in matrices or len(matrices) < 2:
        return []
    items = []
    for method, x in matrices.items():
        if method == PROPOSED:
            continue
        point, interval = stats.probability_of_improvement_interval(matrices[PROPOSED], x, backend=backend)
        items.append((method, method_label(method), point, interval))
    return _interval_figure(items, path, f"P({method_label('adaps')} > method) on the final test return",
                            f"Probability of improvement over {_scenario_text(scenarios)}, 95% bootstrap CI",
                            reference=0.5, xlim=(0.0, 1.0))


# ---- pictures of the method: identity vectors and cluster masks ---------------------------------

# True agent types are told apart by colour, clusters by marker shape, so a clustering that
# matches the types shows one colour per marker. Enough of each for max_clusters = 10.
TYPE_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"]
CLUSTER_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
MAX_MASK_SEEDS = 3  # rows of masks.png per folder: more seeds would not stay readable 700 px wide


def identity_projection(vectors) -> tuple[np.ndarray, np.ndarray]:
    """The (N, 2) principal-component coordinates of N identity vectors and the fraction of the
    variance each component explains. Centred, from numpy's SVD; each component's sign is fixed
    (its largest loading positive) so the same vectors always give the same picture. Fewer than
    two directions of variance leave the missing coordinates at 0."""
    x = np.asarray(vectors, float)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"identity vectors must be a non-empty (N, latent) array, got shape {x.shape}")
    centred = x - x.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((x.shape[0], 2))
    explained = np.zeros(2)
    total = float(np.sum(singular ** 2))
    for k in range(min(2, vt.shape[0])):
        if singular[k] <= 1e-12 * max(1.0, singular[0]):
            break  # no variance left: a direction here would be numerical noise
        direction = vt[k] * np.sign(vt[k][np.argmax(np.abs(vt[k]))])
        coords[:, k] = centred @ direction
        explained[k] = singular[k] ** 2 / total
    return coords, explained


def jaccard_overlap(masks: list[np.ndarray]) -> np.ndarray:
    """(K, K) Jaccard overlap |a and b| / |a or b| of K flattened 0/1 masks; two empty masks
    overlap 1, as adaps_jax.masks.mask_overlap counts them."""
    flat = np.array([np.asarray(m, float).ravel() for m in masks])
    both = flat @ flat.T
    either = flat.sum(1)[:, None] + flat.sum(1)[None, :] - both
    return np.where(either > 0, both / np.maximum(either, 1.0), 1.0)


def _per_seed_list(entry: dict, key: str, seeds: int) -> list | None:
    value = entry.get(key)
    return value if isinstance(value, list) and len(value) == seeds else None


def _identity_panels(runs: list[Run]) -> list[tuple[str, list[dict]]]:
    """Per AdaPS / SePS entry with identity vectors: (row title, one dict per seed). Entries written
    before the summary held the vectors have none and are left out."""
    rows = []
    for scenario, group in _group_by_scenario(runs).items():
        for run, method, label, _ in _entries(group):
            entry = run.summary.get(method)
            vectors = entry.get("identity_vectors") if isinstance(entry, dict) else None
            if not isinstance(vectors, list) or not vectors:
                continue
            # A per-seed list of another length than the vectors is not trusted: left out, not guessed.
            clusters, ari, k = (_per_seed_list(entry, key, len(vectors)) or [None] * len(vectors)
                                for key in ("clusters", "cluster_ari", "num_clusters"))
            seeds = [{"seed": seed, "vectors": v, "clusters": clusters[seed], "ari": ari[seed], "k": k[seed],
                      "scenario": scenario, "folder": run.folder, "method": method} for seed, v in enumerate(vectors)]
            rows.append((f"{scenario}: {label}", seeds))
    return rows


def _true_types(scenario: str, num_agents: int, cache: dict) -> np.ndarray | None:
    """The scenario's agent types from its environment, None when it cannot be built here or has
    another number of agents than the summary (then the points are drawn without type colours)."""
    if scenario not in cache:
        try:
            import envs  # lazily: it imports JAX, which nothing else in this module needs

            cache[scenario] = np.asarray(envs.make(scenario).agent_types, int)
        except (ImportError, ValueError):
            cache[scenario] = None
    types = cache[scenario]
    return types if types is not None and types.shape == (num_agents,) else None


def _bad_summary(folder: Path, method: str, key: str, seed: int, what: str) -> PlotInputError:
    return PlotInputError(f"{folder}: summary.json {method} {key} of seed {seed} {what}")


def identity_figure(runs: list[Run], path: Path) -> list[Path]:
    """The agents' identity vectors of every AdaPS and SePS entry, projected on their first two
    principal components: one panel per seed (one row per method and folder), colour = true agent
    type, marker = the cluster the method gave the agent, the adjusted Rand index in the title.
    Writes nothing (returns []) when no summary holds identity vectors."""
    from matplotlib.lines import Line2D

    rows = _identity_panels(runs)
    if not rows:
        return []
    ncols = min(max(len(seeds) for _, seeds in rows), 3)
    layout: list[dict | None] = []
    row_titles = []
    for title, seeds in rows:  # each method starts a row; more than three seeds wrap onto further rows
        for i in range(0, len(seeds), ncols):
            row_titles.append(title)
            layout += seeds[i:i + ncols] + [None] * (ncols - len(seeds[i:i + ncols]))
    nrows = len(layout) // ncols
    fig = _figure(3.1 * ncols, 3.2 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cache: dict = {}
    max_type = max_cluster = -1
    untyped = False
    for i, (ax, item) in enumerate(zip(axes.flat, layout)):
        if item is None:
            ax.set_visible(False)
            continue
        folder, method, seed = item["folder"], item["method"], item["seed"]
        try:
            vectors = np.asarray(item["vectors"], float)
        except (TypeError, ValueError):
            raise _bad_summary(folder, method, "identity_vectors", seed, "are not numbers") from None
        if vectors.ndim != 2 or vectors.shape[0] == 0:
            raise _bad_summary(folder, method, "identity_vectors", seed,
                               f"are not N vectors of one length (shape {vectors.shape})")
        n = vectors.shape[0]
        clusters = item["clusters"]
        if clusters is not None and (not isinstance(clusters, list) or len(clusters) != n
                                     or not all(isinstance(c, int) and c >= 0 for c in clusters)):
            raise _bad_summary(folder, method, "clusters", seed, f"are not {n} non-negative cluster indices")
        clusters = np.zeros(n, int) if clusters is None else np.asarray(clusters, int)
        types = _true_types(item["scenario"], n, cache)
        untyped |= types is None
        ari, k = item["ari"], item["k"]
        head = row_titles[i // ncols] + "\n" if i % ncols == 0 else "\n"
        facts = [f"seed {seed}"] + ([f"ARI {ari:.2f}"] if isinstance(ari, (int, float)) else []) + (
            [f"K = {k}"] if isinstance(k, int) else [])
        ax.set_title(head + ", ".join(facts), fontsize=11)
        if not np.all(np.isfinite(vectors)):
            ax.text(0.5, 0.5, "non-finite identity vectors", transform=ax.transAxes, ha="center", va="center",
                    color="grey", fontsize=10)
            ax.set_xticks([]), ax.set_yticks([])
            continue
        coords, explained = identity_projection(vectors)
        for c in np.unique(clusters):
            chosen = clusters == c
            colours = ["#555555"] * int(chosen.sum()) if types is None else [
                TYPE_COLOURS[t % len(TYPE_COLOURS)] for t in types[chosen]]
            ax.scatter(coords[chosen, 0], coords[chosen, 1], c=colours, marker=CLUSTER_MARKERS[c % len(CLUSTER_MARKERS)],
                       s=55, alpha=0.8, edgecolors="black", linewidths=0.6, zorder=3)
        max_cluster = max(max_cluster, int(clusters.max()))
        if types is not None:
            max_type = max(max_type, int(types.max()))
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)", fontsize=10)
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}%)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(True, alpha=0.3)
        ax.set_axisbelow(True)
        _pad_limits(ax, coords)
    # Types on the legend's first row, clusters on its second: the legend fills column by column,
    # so the two lists are interleaved, the shorter padded with blank entries.
    blank = Line2D([], [], linestyle="", marker="")
    types_row = [(Line2D([], [], linestyle="", marker="o", markersize=8, markerfacecolor=TYPE_COLOURS[t % 10],
                         markeredgecolor="black"), f"type {t}") for t in range(max_type + 1)]
    clusters_row = [(Line2D([], [], linestyle="", marker=CLUSTER_MARKERS[c % len(CLUSTER_MARKERS)], markersize=8,
                            markerfacecolor="white", markeredgecolor="black"), f"cluster {c}")
                    for c in range(max_cluster + 1)]
    width = max(len(types_row), len(clusters_row))
    if types_row:
        types_row += [(blank, "")] * (width - len(types_row))
        clusters_row += [(blank, "")] * (width - len(clusters_row))
        pairs = [entry for column in zip(types_row, clusters_row) for entry in column]
    else:
        pairs = clusters_row
    if pairs:
        fig.legend([h for h, _ in pairs], [label for _, label in pairs], loc="outside lower center",
                   ncol=width, fontsize=10, frameon=False, columnspacing=1.0, handletextpad=0.3)
    note = "colour: true agent type, marker: cluster" if not untyped else (
        "colour: true agent type (grey: unknown here), marker: cluster")
    fig.suptitle(f"Agent identity vectors, first two principal components\n({note})", fontsize=12)
    return _save(fig, path)


def _pad_limits(ax, coords: np.ndarray) -> None:
    """Square-ish limits with a margin, so points on the edge keep their whole marker and points
    that all coincide still get a visible axis."""
    for axis, set_lim in ((0, ax.set_xlim), (1, ax.set_ylim)):
        low, high = float(coords[:, axis].min()), float(coords[:, axis].max())
        pad = max(0.08 * (high - low), 1e-3 * max(1.0, abs(low), abs(high)))
        set_lim(low - pad, high + pad)


def _mask_rows(runs: list[Run]) -> list[dict]:
    """One dict per AdaPS seed drawn in masks.png (at most MAX_MASK_SEEDS per folder): its actor and
    critic masks per cluster as (K, neurons) arrays, the layer widths and the cluster sizes."""
    out = []
    for scenario, group in _group_by_scenario(runs).items():
        for run, method, label, _ in _entries(group):
            entry = run.summary.get(method)
            table = entry.get("cluster_masks") if isinstance(entry, dict) else None
            if not isinstance(table, list) or not table:
                continue
            clusters = _per_seed_list(entry, "clusters", len(table))
            for seed, masks in enumerate(table[:MAX_MASK_SEEDS]):
                parts = {}
                for part in ("actor", "critic"):
                    layers = masks.get(part) if isinstance(masks, dict) else None
                    parts[part] = _mask_matrix(layers, run.folder, seed, part)
                k = parts["actor"][0].shape[0]
                if parts["critic"][0].shape[0] != k:
                    raise _bad_summary(run.folder, method, "cluster_masks", seed,
                                       "has different cluster counts for actor and critic")
                sizes = None
                if clusters is not None and isinstance(clusters[seed], list):
                    sizes = [sum(1 for c in clusters[seed] if c == j) for j in range(k)]
                out.append({"title": f"{scenario}: {label}, seed {seed}", "parts": parts, "sizes": sizes,
                            "seeds": len(table)})
    return out


def _mask_matrix(layers, folder: Path, seed: int, part: str) -> tuple[np.ndarray, list[int]]:
    """The (K, neurons) 0/1 matrix of one network's masks (the layers side by side) and the widths."""
    what = f"cluster_masks {part}"
    if not isinstance(layers, list) or not layers or not all(isinstance(c, list) and c for c in layers):
        raise _bad_summary(folder, PROPOSED, what, seed, "is not a list of clusters, each a list of layers")
    widths = [len(layer) if isinstance(layer, list) else -1 for layer in layers[0]]
    for cluster in layers:
        if [len(layer) if isinstance(layer, list) else -1 for layer in cluster] != widths or min(widths) < 1:
            raise _bad_summary(folder, PROPOSED, what, seed, "has clusters with different layer widths")
    try:
        matrix = np.array([[v for layer in cluster for v in layer] for cluster in layers], float)
    except (TypeError, ValueError):
        raise _bad_summary(folder, PROPOSED, what, seed, "holds values other than 0/1") from None
    if not np.isin(matrix, (0.0, 1.0)).all():
        raise _bad_summary(folder, PROPOSED, what, seed, "holds values other than 0/1")
    return matrix, widths


def masks_figure(runs: list[Run], path: Path) -> list[Path]:
    """AdaPS's neuron masks: per seed (up to MAX_MASK_SEEDS per folder) a heat map of cluster x hidden
    neuron for the actor and for the critic (red = neuron kept), and the clusters' pairwise Jaccard
    overlap over all layers of actor and critic. Writes nothing (returns []) when no summary holds
    cluster masks."""
    from matplotlib.colors import ListedColormap

    rows = _mask_rows(runs)
    if not rows:
        return []
    kept = ListedColormap(["#eeeeee", "#d62728"])  # off light grey, kept in AdaPS's colour
    heights = [max(1.6, 0.3 * r["parts"]["actor"][0].shape[0] + 1.0) for r in rows]
    actor_width = rows[0]["parts"]["actor"][0].shape[1]
    critic_width = rows[0]["parts"]["critic"][0].shape[1]
    fig = _figure(8.5, sum(heights) + 0.8)
    # The heat maps share the width in proportion to their neurons; the overlap matrix gets about
    # a third of an inch per cluster (its numbers stay legible), out of the ~7.3 inches the panels have.
    most_clusters = max(r["parts"]["actor"][0].shape[0] for r in rows)
    overlap_inches = min(3.0, 0.35 * most_clusters + 0.5)
    grid = fig.add_gridspec(len(rows), 3, height_ratios=heights, width_ratios=[
        actor_width, critic_width, (actor_width + critic_width) * overlap_inches / (7.3 - overlap_inches)])
    for i, row in enumerate(rows):
        k = row["parts"]["actor"][0].shape[0]
        for col, part in enumerate(("actor", "critic")):
            matrix, layer_widths = row["parts"][part]
            ax = fig.add_subplot(grid[i, col])
            ax.imshow(matrix, cmap=kept, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            for x in np.cumsum(layer_widths)[:-1] - 0.5:
                ax.axvline(x, color="black", linewidth=1.5)
            centres = np.cumsum(layer_widths) - np.asarray(layer_widths) / 2 - 0.5
            ax.set_xticks(centres, [f"layer {l + 1} ({w})" for l, w in enumerate(layer_widths)], fontsize=9)
            ax.tick_params(axis="x", length=0)
            if col == 0:
                sizes = row["sizes"]
                ax.set_yticks(range(k), [f"cluster {j}" + (f" ({sizes[j]})" if sizes else "") for j in range(k)],
                              fontsize=9)
                ax.set_title(f"{row['title']}\nactor", fontsize=10)
            else:
                ax.set_yticks([])
                ax.set_title(part, fontsize=10)
        ax = fig.add_subplot(grid[i, 2])
        overlap = jaccard_overlap([np.concatenate([row["parts"]["actor"][0][j], row["parts"]["critic"][0][j]])
                                   for j in range(k)])
        ax.imshow(overlap, cmap="Greys", vmin=0, vmax=1.4, interpolation="nearest")  # 1.4: text stays legible
        for a in range(k):
            for b in range(k):
                ax.text(b, a, f"{overlap[a, b]:.2f}", ha="center", va="center", fontsize=8 if k <= 8 else 7,
                        color="white" if overlap[a, b] > 0.75 else "black")
        ax.set_xticks(range(k), [str(j) for j in range(k)], fontsize=8)
        ax.set_yticks(range(k), [str(j) for j in range(k)], fontsize=8)
        ax.set_title("Jaccard overlap", fontsize=10)
    most = max(r["seeds"] for r in rows)
    more = f"; the first {MAX_MASK_SEEDS} of {most} seeds" if most > MAX_MASK_SEEDS else ""
    fig.suptitle(f"AdaPS neuron masks per cluster (red: kept; in brackets the cluster's agents{more})", fontsize=11)
    return _save(fig, path)


# ---- entry points -------------------------------------------------------------------------------


def plot_folders(folders: list[Path], out: Path, band: str = "ci", per_type: bool = False, backend: str = "numpy",
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
    written += identity_figure(runs, out / "identity.png")  # both write nothing for summaries without the data
    written += masks_figure(runs, out / "masks.png")
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
    p = OneLineArgumentParser(prog="python -m experiments.plot", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("folders", nargs="+", metavar="DIR", help="results folders (written by experiments.run)")
    p.add_argument("--out", metavar="PLOTDIR", help="output folder (default: <first DIR>/plots)")
    p.add_argument("--band", choices=BANDS, default="ci",
                   help="ci: IQM over seeds and its 95%% bootstrap interval (default); minmax: mean and min-max")
    p.add_argument("--per-type", action="store_true", help="also per_type_curves: one panel per agent type")
    p.add_argument("--stats-backend", choices=stats.BACKENDS, default="numpy",
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
