"""What starting a program costs: importing the library changes no global setting, and a command
line answers a bad argument before it imports JAX (so at once; speed itself is a benchmark)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_importing_the_library_leaves_xla_flags_alone():
    code = ("import os, adaps_jax, adaps_jax.masks, adaps_jax.trainer, envs; envs.make('bps-15a-3c'); "
            "print(repr(os.environ.get('XLA_FLAGS')))")
    assert _python(code) == "None"
    configured = _python("import os; from adaps_jax.runtime import configure_cpu; configure_cpu(); "
                         "print(os.environ['XLA_FLAGS'])")
    assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in configured
    assert "--xla_force_host_platform_device_count=" in configured
    mine = _python("import os; from adaps_jax.runtime import configure_cpu; configure_cpu(); "
                   "print(os.environ['XLA_FLAGS'])", XLA_FLAGS="--xla_force_host_platform_device_count=3")
    assert "device_count=3" in mine and mine.count("device_count") == 1  # the user's choice wins


@pytest.mark.parametrize("command, argv", [
    ("experiments.run", ["--env", "nope"]),
    ("experiments.run", ["--scenario", "lbf-100000x100000-2p-1f"]),
    ("experiments.run", ["--env", "lbf", "--set", "seed=1e30"]),
    ("experiments.run", ["--env", "lbf", "--sweep", "gamma=0.5,2"]),
    ("experiments.run", ["--help"]),
    ("experiments.identity_report", ["bps-nope"]),
    ("experiments.bench.main", ["--sections", "warp"]),
    ("experiments.render", ["/nonexistent-folder"]),
    ("experiments.multihost", ["--out", "x.json"]),
])
def test_command_lines_answer_before_importing_jax(command, argv):
    code = (f"import sys; from {command} import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('jax' in sys.modules, 'jumanji' in sys.modules)")
    if command == "experiments.multihost":  # it joins a job through JAX, so it imports JAX (not the rest)
        assert _python(code).splitlines()[-1].endswith("False")
    else:
        assert _python(code).splitlines()[-1] == "False False"
