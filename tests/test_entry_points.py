"""The console commands named in pyproject.toml resolve to the modules' main(argv=None) functions."""
import importlib
import inspect
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
EXPECTED = {"adaps-run", "adaps-plot", "adaps-render", "adaps-report", "adaps-identity-report", "adaps-random-policy"}


def _scripts() -> dict[str, str]:
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def test_expected_commands_are_declared():
    assert EXPECTED <= set(_scripts())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entry_point_resolves_to_main(name):
    target = _scripts()[name]
    module_name, _, attribute = target.partition(":")
    assert module_name and attribute, f"{name} = {target!r} is not 'module:function'"
    function = getattr(importlib.import_module(module_name), attribute)
    assert callable(function)
    # The generated wrapper calls it with no arguments and exits with what it returns.
    parameters = inspect.signature(function).parameters
    assert list(parameters) == ["argv"] and parameters["argv"].default is None


@pytest.mark.parametrize("name", ["adaps-plot", "adaps-report"])
def test_help_exits_zero(name, capsys):
    module_name, _, attribute = _scripts()[name].partition(":")
    with pytest.raises(SystemExit) as stop:
        getattr(importlib.import_module(module_name), attribute)(["--help"])
    assert stop.value.code == 0 and "usage:" in capsys.readouterr().out
