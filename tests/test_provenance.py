"""experiments.provenance: the environment record config.json keeps, with and without git."""
import json
import re
import shutil
import subprocess

import pytest

from experiments import provenance


def test_record_of_this_checkout_is_json_and_complete():
    record = provenance.environment_record()
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert set(record["libraries"]) == {"jax", "jaxlib", "flax", "optax", "numpy"}
    import jax
    import numpy

    assert record["libraries"]["jax"] == jax.__version__ and record["libraries"]["numpy"] == numpy.__version__
    devices = jax.devices()
    assert record["devices"] == {"platform": devices[0].platform, "device_kind": devices[0].device_kind,
                                 "device_count": len(devices)}
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", record["python"])


def test_missing_library_is_null():
    assert provenance.library_versions(("numpy", "no-such-distribution-adaps")) == {
        "numpy": provenance.metadata.version("numpy"), "no-such-distribution-adaps": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_and_dirty_flag(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert provenance.git_record(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert provenance.git_record(tmp_path) == {"commit": head, "dirty": True}
    git("checkout", "-q", "a.py")
    (tmp_path / "new.py").write_text("")  # untracked source changes what runs too
    assert provenance.git_record(tmp_path)["dirty"] is True


def test_no_repository_or_no_git_is_null(tmp_path, monkeypatch):
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git must not find a repository above
    assert provenance.git_record(outside) == {"commit": None, "dirty": None}

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert provenance.git_record(provenance.ROOT) == {"commit": None, "dirty": None}


def test_broken_backend_is_null(monkeypatch):
    import jax

    def broken():
        raise RuntimeError("no backend")

    monkeypatch.setattr(jax, "devices", broken)
    assert provenance.device_record() == {"platform": None, "device_kind": None, "device_count": None}
