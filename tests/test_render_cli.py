"""experiments.render on a real tiny run: a GIF of one whole BPS episode, and its input errors;
and the annotated frames (title, step, team return, colour legend) of envs.render."""
import shutil
import signal

import jax
import numpy as np
import pytest

import envs
from envs import render as draw
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
        width, height = image.size
        assert width == 400 and height > 400  # the 400 x 400 board with a header and a legend
        frames = []
        for i in (0, 50):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
    header = 2 * draw.LINE + 2 * draw.PAD
    assert not np.array_equal(frames[0][:header], frames[1][:header])  # step and return change
    np.testing.assert_array_equal(frames[0][header + 400:], frames[1][header + 400:])  # the legend stays


def test_render_greedy_default_path(run_dir, capsys):
    assert render.main([str(run_dir), "--method", "fups", "--seed", "0", "--greedy"]) == 0
    path = capsys.readouterr().out.splitlines()[0]
    assert path == str(run_dir / "plots" / "episode_fups_seed0_greedy.gif")
    # Pillow merges identical frames into one longer frame (the step counter makes every frame
    # differ, but count the episode by its duration, 10 fps, all the same).
    size, durations = _durations(path)
    assert size[0] == 400 and size[1] > 400 and sum(durations) == 51 * 100


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


def _state(name, seed=0):
    env = envs.make(name)
    state, _ = jax.jit(env.reset)(jax.random.PRNGKey(seed))
    return env, jax.device_get(state)


def test_legends_name_every_colour_group():
    bps, _ = _state("bps-15a-3c")
    assert [label for _, label in draw.legend(bps)] == [
        "agents 0-4 -> landmark 0", "agents 5-9 -> landmark 1", "agents 10-14 -> landmark 2",
        "discs: agents; squares: landmarks; agents do not see colours",
    ]
    np.testing.assert_array_equal(draw.legend(bps)[1][0], draw.PALETTE[1])
    crware, _ = _state("crware-2c-tiny-4ag")
    assert [label for _, label in draw.legend(crware)][:3] == [
        "robots 0-1 and shelves of colour 0", "robots 2-3 and shelves of colour 1", "goal"
    ]
    lbf, _ = _state("lbf-10x10-6p-3f")
    assert [label for _, label in draw.legend(lbf)] == [
        "level 1: players 0, 3", "level 2: players 1, 4", "level 3: players 2, 5", "food",
        "numbers: levels of players and food",
    ]


def test_annotated_frame_keeps_the_board_and_writes_step_and_return():
    env, state = _state("bps-15a-3c")
    board = env.render(state)
    a = draw.annotate(env, board, state, title="bps-15a-3c · fups", step=3, team_return=-12.5)
    b = draw.annotate(env, board, state, title="bps-15a-3c · fups", step=4, team_return=-12.5)
    c = draw.annotate(env, board, state, title="bps-15a-3c · fups", step=3, team_return=-20.0)
    header = 2 * draw.LINE + 2 * draw.PAD
    np.testing.assert_array_equal(a[header:header + 400], board)  # the board, unchanged
    assert a.shape == b.shape == c.shape and a.shape[1] == 400
    line2 = slice(draw.PAD + draw.LINE, header)
    assert np.any(a[: draw.PAD + draw.LINE] < 128)  # a title is written
    assert not np.array_equal(a[line2], b[line2]) and not np.array_equal(a[line2], c[line2])
    np.testing.assert_array_equal(a[:header - draw.LINE - draw.PAD], b[:header - draw.LINE - draw.PAD])
    legend = a[header + 400:].reshape(-1, 3)
    for colour in draw.PALETTE[:3]:  # one swatch per colour group
        assert np.any(np.all(legend == colour, axis=1))
    # Frames of an episode carry the team return accumulated up to their step.
    frames = draw.episode_frames(env, [state, state, state], [-2.0, -10.5], "bps-15a-3c · fups")
    np.testing.assert_array_equal(frames[2], draw.annotate(env, board, state, title="bps-15a-3c · fups", step=2,
                                                           team_return=-12.5))
    with pytest.raises(ValueError, match="3 states need 2 team rewards, got 1"):
        draw.episode_frames(env, [state] * 3, [0.0], "x")


def test_narrow_boards_are_centred_on_a_frame_wide_enough_for_the_text():
    env, state = _state("crware-2c-tiny-4ag")
    board = env.render(state)
    frame = draw.annotate(env, board, state, title="crware", step=0, team_return=0.0)
    header, left = 2 * draw.LINE + 2 * draw.PAD, (draw.MIN_WIDTH - board.shape[1]) // 2
    assert frame.shape[1] == draw.MIN_WIDTH > board.shape[1]
    np.testing.assert_array_equal(frame[header:header + board.shape[0], left:left + board.shape[1]], board)


def test_lbf_levels_are_written_on_players_and_food_only():
    env, state = _state("lbf-8x8-3p-2f", seed=3)
    board = env.render(state)
    frame = draw.annotate(env, board, state, title="lbf", step=0, team_return=0.0)
    header, left = 2 * draw.LINE + 2 * draw.PAD, (draw.MIN_WIDTH - board.shape[1]) // 2
    labelled = frame[header:header + board.shape[0], left:left + board.shape[1]]
    cell = 32
    changed = np.any(labelled != board, axis=-1)
    marked = np.zeros_like(changed)
    for row, col in np.concatenate([np.asarray(state.player_pos), np.asarray(state.food_pos)]):
        cells = changed[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell]
        assert cells.any(), (row, col)  # a number on every player and food
        marked[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] = True
    assert not np.any(changed & ~marked)  # and nowhere else
