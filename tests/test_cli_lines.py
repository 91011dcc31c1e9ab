"""Every command line answers a bad argument with one `error:` line and exit code 2."""
import importlib

import pytest

COMMANDS = ["experiments.plot", "experiments.render", "experiments.report", "experiments.identity_report",
            "experiments.multihost", "experiments.bench.main", "experiments.bench.time_left", "experiments.bench_envs"]


@pytest.mark.parametrize("module", COMMANDS)
def test_unknown_flag_is_one_line_and_exit_2(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(["--no-such-flag"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines


def test_identity_report_refuses_an_unwritable_json_path_before_computing(tmp_path, capsys):
    from experiments import identity_report

    code = identity_report.main(["bps-4a-2c", "--json", str(tmp_path / "missing" / "report.json")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: cannot write --json"), lines
