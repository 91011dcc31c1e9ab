"""The benchmark's command line: runs the chosen sections and writes the report."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from experiments.cli import OneLineArgumentParser, start_jax

# The sections in the order they run (experiments.bench.sections.SECTIONS holds them), known here
# without importing JAX so that a bad --sections is refused at once.
SECTION_NAMES = ("envs", "training", "evaluation", "batch", "seeds", "sweep", "cli", "paper", "agents", "devices", "profile")


def accelerator() -> dict | None:
    """The GPU or TPU the measurements ran on (kind and count), or None on a CPU-only machine."""
    import jax

    devices = jax.devices()
    if devices[0].platform == "cpu":
        return None
    return {"platform": devices[0].platform, "kind": devices[0].device_kind, "count": len(devices)}


def run(settings, sections: tuple[str, ...], quick: bool, log=print) -> dict:
    """Every chosen section in order (a failing one is recorded, the others still run), the machine,
    the code and the targets."""
    from experiments import bench_envs
    from experiments.bench import sections as measured
    from experiments.bench.report import code_info, targets

    start = time.perf_counter()
    report: dict[str, Any] = {}
    load_at_start = list(os.getloadavg())
    section_s, failed = {}, {}
    for name, section in measured.SECTIONS.items():
        if name in sections:
            log(f"{name} ({time.perf_counter() - start:.0f} s so far)")
            begin = time.perf_counter()
            try:
                report[name] = section(settings, log, quick)
            except Exception as error:  # noqa: BLE001 - one broken section must not lose the others' minutes
                failed[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
                log(f"  {name} failed: {failed[name]}")
            section_s[name] = round(time.perf_counter() - begin, 1)
    machine = bench_envs.machine_info()
    machine["load_average_at_start"] = load_at_start
    machine["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    settings_dict = {k: v for k, v in settings.__dict__.items() if k != "envs_settings"}
    report = {"machine": machine, "code": code_info(),
              "settings": {**settings_dict, "quick": quick, "sections": list(sections),
                           "wall_s": round(time.perf_counter() - start, 1), "section_s": section_s},
              "accelerator": accelerator(), "failed_sections": failed, **report}
    report["targets"] = targets(report)
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = OneLineArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings: a smoke run of every section")
    parser.add_argument("--gpu", action="store_true", help="settings that fill one large GPU (bench/gpu.sh)")
    parser.add_argument("--out", default=None, help="output folder (default bench/, bench/quick or bench/gpu)")
    parser.add_argument("--sections", default=",".join(SECTION_NAMES),
                        help=f"comma-separated subset of {', '.join(SECTION_NAMES)}")
    parser.add_argument("--skip-envs", action="store_true", help="leave out the environment benchmark")
    parser.add_argument("--docs", default=None,
                        help="markdown file whose generated block to update (default docs/BENCHMARKS.md for a "
                             "full run to bench/, none otherwise)")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # one case in this process (internal)
    args = parser.parse_args(argv)
    sections = tuple(s for s in args.sections.split(",") if s and not (args.skip_envs and s == "envs"))
    unknown = set(sections) - set(SECTION_NAMES)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; allowed: {', '.join(SECTION_NAMES)}")
    if args.quick and args.gpu:
        parser.error("--quick and --gpu are two different settings; choose one")
    start_jax()
    from experiments.bench.harness import FULL, GPU, QUICK, ROOT, run_case_here
    from experiments.bench.report import to_markdown, update_docs, write_outputs

    if args.case:
        print(json.dumps(run_case_here(json.loads(args.case)), default=float))
        return {}
    name = "quick" if args.quick else "gpu" if args.gpu else "full"
    out = Path(args.out or {"quick": "bench/quick", "gpu": "bench/gpu", "full": "bench"}[name])
    report = run({"quick": QUICK, "gpu": GPU, "full": FULL}[name], sections, args.quick)
    json_path, md_path = write_outputs(report, out)
    markdown = to_markdown(report)
    print()
    print(markdown)
    docs = args.docs or (str(ROOT / "docs" / "BENCHMARKS.md") if name == "full" and args.out is None else None)
    failed = report["failed_sections"]
    if docs and not failed:  # a partial run does not replace the documented one
        update_docs(markdown, Path(docs))
    print(f"wrote {json_path} and {md_path}{' and ' + docs if docs and not failed else ''} in "
          f"{report['settings']['wall_s']} s")
    if failed:
        print(f"error: sections failed: {', '.join(failed)} (the others' results are written)", file=sys.stderr)
    return report
