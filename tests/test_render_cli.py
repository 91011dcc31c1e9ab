"""experiments.render on a real tiny run: a GIF of one whole BPS episode, and its input errors."""
import shutil
import signal

import pytest

from experiments import render, run

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One FuPS seed on BPS: 1 logging point of 20 updates x 2 copies x 5 steps (200 steps)."""
    out = tmp_path_factory.mktemp("render") / "run"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = run.main(["--env", "bps", "--method", "fups", "--steps", "200", "--seeds", "1", "--num-envs", "2",
                         "--set", "hidden_sizes=16", "--set", "num_logs=1", "--out", str(out)])
    finally:
        for s, h in handlers.items():  # run.main turns Ctrl-C into a flag; give it back to pytest
            signal.signal(s, h)
    assert code == 0
    return out


def _durations(path):
    with PIL.open(path) as image:
        durations = []
        for i in range(image.n_frames):
            image.seek(i)
            durations.append(image.info["duration"])
        return image.size, durations


def test_render_writes_whole_episode_gif(run_dir, tmp_path, capsys):
    gif = tmp_path / "episode.gif"
    assert render.main([str(run_dir), "--out", str(gif)]) == 0  # default method: fups, sampled actions
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(gif)
    assert out[1].startswith("team return -") and "fups, seed 0, 50 steps" in out[1]
    with PIL.open(gif) as image:
        assert image.n_frames == 51  # the reset state and the 50 steps of BPS
        assert image.size == (400, 400)


def test_render_greedy_default_path(run_dir, capsys):
    assert render.main([str(run_dir), "--method", "fups", "--seed", "0", "--greedy"]) == 0
    path = capsys.readouterr().out.splitlines()[0]
    assert path == str(run_dir / "plots" / "episode_fups_seed0_greedy.gif")
    # A greedy untrained policy may drive every agent off the picture; Pillow then merges the
    # identical frames into one longer frame, so count the episode by its duration (10 fps).
    size, durations = _durations(path)
    assert size == (400, 400) and sum(durations) == 51 * 100


def test_render_input_errors(run_dir, tmp_path, capsys):
    def error(argv):
        assert render.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: ")
        return err[-1]

    assert "nowhere" in error([str(tmp_path / "nowhere")])
    assert "'adaps' is not in the run" in error([str(run_dir), "--method", "adaps"])
    assert "out of range" in error([str(run_dir), "--seed", "3"])

    no_ckpt = tmp_path / "no_ckpt"
    shutil.copytree(run_dir, no_ckpt, ignore=shutil.ignore_patterns("checkpoints"))
    assert "no checkpoint of fups" in error([str(no_ckpt)])

    corrupt = tmp_path / "corrupt"
    shutil.copytree(run_dir, corrupt)
    for f in (corrupt / "checkpoints" / "fups" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    assert "missing or corrupt" in error([str(corrupt)])
