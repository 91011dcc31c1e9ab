"""Plots and a markdown summary of one or more results folders (see experiments.results).

    python -m experiments.plot results/bps-15a-3c-quick                       # into <DIR>/plots
    python -m experiments.plot results/bps-* results/lbf-* --out figures/     # several scenarios

Writes into the output folder:
    learning_curves.png/.svg  one panel per scenario (as the paper's Fig. 3): the mean team return
                              (summed over agents) over seeds as a line, the min-max over seeds
                              as a band, one fixed colour per method
    model_size.png/.svg       relative model size per method (as the paper's Fig. 4), the
                              parameter count written on each bar; one group per scenario
    summary.md                a table per scenario: final return, size, diversity, clusters, time
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

from experiments import results

EXIT_BAD_INPUT = 2
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


@dataclass
class Run:
    folder: Path
    scenario: str
    num_seeds: int | None
    methods: list[str]  # in the run's order
    curves: dict[str, Curve]
    summary: dict = field(default_factory=dict)


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
    curves = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        logs = sorted({r["log"] for r in mine})
        seeds = sorted({r["seed"] for r in mine})
        steps = {r["log"]: r["env_steps"] for r in mine}
        returns = np.full((len(seeds), len(logs)), np.nan)
        for r in mine:
            returns[seeds.index(r["seed"]), logs.index(r["log"])] = r["return_mean"]
        curves[method] = Curve(method, np.array([steps[l] for l in logs], float), returns)
    num_seeds = run.get("config", {}).get("num_seeds") if isinstance(run.get("config"), dict) else None
    return Run(folder, scenario, num_seeds, methods, curves, summary)


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


def learning_curves(runs: list[Run], path: Path) -> list[Path]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    groups = _group_by_scenario(runs)
    ncols = min(len(groups), 3)
    nrows = math.ceil(len(groups) / ncols)
    fig = _figure(5.2 * ncols, 3.9 * nrows + 0.7)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    handles: dict[str, tuple[tuple, Line2D]] = {}  # label -> (sort key, line)
    banded = False
    max_steps = max((c.steps.max() for r in runs for c in r.curves.values() if c.steps.size), default=0.0)
    scale, xlabel = _step_unit(max_steps)
    for ax, (scenario, group) in zip(axes.flat, groups.items()):
        drawn = 0
        for run, method, label, style in _entries(group):
            curve = run.curves.get(method)
            if curve is None:
                continue
            steps, mean, low, high = curve.stats()
            if steps.size == 0:
                continue
            colour = method_colour(method)
            marker = "o" if steps.size <= 25 else None
            (line,) = ax.plot(steps, mean, color=colour, linestyle=style, linewidth=2, marker=marker, markersize=3.5,
                              label=label, zorder=3)
            if curve.returns.shape[0] > 1:
                ax.fill_between(steps, low, high, color=colour, alpha=0.2, linewidth=0, zorder=2)
                banded = True
            handles.setdefault(label, ((_method_order(method), style), line))
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "no finished episodes yet", transform=ax.transAxes, ha="center", va="center",
                    color="grey", fontsize=11)
            ax.set_xlim(0, max_steps or 1.0)
            ax.set_yticks([])
        seeds = sorted({r.num_seeds for r in group if r.num_seeds})
        seed_text = f" ({'/'.join(map(str, seeds))} seed{'' if seeds == [1] else 's'})" if seeds else ""
        ax.set_title(scenario + seed_text, fontsize=12)
        ax.set_xlabel(xlabel, fontsize=10)
        ax.set_ylabel("mean episode return\n(sum over agents)", fontsize=10)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x / scale:g}"))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=9)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    if handles:
        ordered = sorted(handles.items(), key=lambda item: item[1][0])
        legend = [line for _, (_, line) in ordered]
        labels = [label for label, _ in ordered]
        if banded:
            legend.append(Patch(facecolor="grey", alpha=0.25, label="min-max over seeds"))
            labels.append("min-max over seeds")
        fig.legend(legend, labels, loc="outside lower center", ncol=min(len(labels), 3 * ncols + 1), fontsize=10, frameon=False)
    return _save(fig, path)


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


# ---- entry points -------------------------------------------------------------------------------


def plot_folders(folders: list[Path], out: Path) -> list[Path]:
    """Reads the results folders and writes summary.md and the figures into `out`; the files written.

    Raises PlotInputError for a folder that is not a results folder, ImportError (with the install
    hint) when matplotlib is missing; summary.md is written before the figures are tried.
    """
    if not folders:
        raise PlotInputError("give at least one results folder")
    runs = [read_run(Path(f)) for f in folders]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results.write_atomic(out / "summary.md", summary_markdown(runs))
    written = [out / "summary.md"]
    _figure(1, 1)  # raises the install hint before any figure work when matplotlib is missing
    written += learning_curves(runs, out / "learning_curves.png")
    written += model_size(runs, out / "model_size.png")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.plot", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("folders", nargs="+", metavar="DIR", help="results folders (written by experiments.run)")
    p.add_argument("--out", metavar="PLOTDIR", help="output folder (default: <first DIR>/plots)")
    args = p.parse_args(argv)
    folders = [Path(f) for f in args.folders]
    out = Path(args.out) if args.out else folders[0] / "plots"
    try:
        written = plot_folders(folders, out)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
