"""experiments.run's TensorBoard writer: which scalars a logging point gives, read back from the
event file tensorboardX writes (no training here: the rows are written as train_method makes them)."""
import math
import struct

import pytest

from experiments import console
from experiments.cli import UsageError


def _row(seed, steps, wall, ret, greedy, types=2):
    row = {"method": "adaps", "seed": seed, "log": 0, "env_steps": steps, "wall_seconds": wall, "episodes": 3,
           "return_mean": ret, "entropy": 1.25, "actor_loss": 0.5 + seed, "value_loss": 2.0 * (seed + 1),
           "eval_return_greedy": greedy, "eval_return_sampled": greedy - 1.0}
    for t in range(types):
        row[f"return_type_{t}"] = ret / types + t
        row[f"eval_return_greedy_type_{t}"] = greedy / types
        row[f"eval_return_sampled_type_{t}"] = (greedy - 1.0) / types
    return row


class FakeSummaryWriter:
    made = []

    def __init__(self, logdir):
        self.logdir, self.scalars, self.flushes = logdir, [], 0
        FakeSummaryWriter.made.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        self.flushes += 1

    def close(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    FakeSummaryWriter.made = []
    monkeypatch.setattr(console, "summary_writer_class", lambda: FakeSummaryWriter)
    return FakeSummaryWriter


def test_every_metric_per_seed_and_mean(tmp_path, fake):
    writer = console.tensorboard_writer(tmp_path)
    rows = [_row(0, 1000, 10.0, -50.0, -40.0), _row(1, 1000, 10.0, math.nan, -20.0)]
    writer.log("adaps", 1000, rows)
    (made,) = fake.made
    assert made.logdir == str(tmp_path / "tensorboard") and made.flushes == 1
    scalars = {tag: (value, step) for tag, value, step in made.scalars}
    assert all(step == 1000 for _, step in scalars.values())
    assert scalars["adaps/test/return_greedy/seed0"][0] == -40.0
    assert scalars["adaps/test/return_greedy/mean"][0] == -30.0
    assert scalars["adaps/test/return_sampled/mean"][0] == -31.0
    assert scalars["adaps/loss/actor/mean"][0] == 1.0 and scalars["adaps/loss/value/seed1"][0] == 4.0
    assert scalars["adaps/entropy/mean"][0] == 1.25
    assert scalars["adaps/test/return_greedy_type_1/seed1"][0] == -10.0
    assert scalars["adaps/test/return_sampled_type_0/mean"][0] == pytest.approx(-15.5)
    # Seed 1 closed no training episode: its NaN is not written and the mean is seed 0's alone.
    assert "adaps/train/return/seed1" not in scalars and "adaps/train/return_type_1/seed1" not in scalars
    assert scalars["adaps/train/return/mean"][0] == -50.0
    assert scalars["adaps/train/return_type_1/mean"][0] == -24.0
    # 1000 steps of each of 2 seeds in the first 10 seconds.
    assert scalars["adaps/env_steps_per_second"][0] == 200.0
    untagged = {"method", "seed", "log", "env_steps", "wall_seconds", "episodes"}
    assert not any(f"/{name}/" in tag for tag in scalars for name in untagged)
    # 12 metrics x (2 seeds + mean) and the rate, less seed 1's three NaN training returns (total, 2 types)
    assert len(scalars) == 12 * 3 + 1 - 3


def test_rate_between_logging_points_per_method(tmp_path, fake):
    writer = console.tensorboard_writer(tmp_path)
    writer.log("fups", 1000, [_row(0, 1000, 4.0, -1.0, -1.0)])
    writer.log("nops", 1000, [_row(0, 1000, 9.0, -1.0, -1.0)])
    writer.log("fups", 3000, [_row(0, 3000, 8.0, -1.0, -1.0)])
    rates = [(tag, value, step) for tag, value, step in fake.made[0].scalars if tag.endswith("env_steps_per_second")]
    assert rates == [("fups/env_steps_per_second", 250.0, 1000), ("nops/env_steps_per_second", 1000 / 9, 1000),
                     ("fups/env_steps_per_second", 500.0, 3000)]  # 2000 steps in the 4 seconds since the last


def _read_events(folder):
    """(tag, value, step) of every scalar in a folder's event files: TFRecord framing (length,
    its CRC, the Event proto, its CRC) read by hand, the proto by tensorboardX's own class."""
    from tensorboardX.proto import event_pb2

    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                found.append((value.tag, value.simple_value, event.step))
    return found


def test_real_event_file(tmp_path):
    pytest.importorskip("tensorboardX")
    writer = console.tensorboard_writer(tmp_path)
    writer.log("seps", 500, [_row(0, 500, 2.0, -7.0, -6.0, types=1), _row(1, 500, 2.0, -9.0, -8.0, types=1)])
    writer.close()
    scalars = {tag: (value, step) for tag, value, step in _read_events(tmp_path / "tensorboard")}
    assert scalars["seps/train/return/mean"] == (-8.0, 500)
    assert scalars["seps/test/return_greedy/seed1"] == (-8.0, 500)
    assert scalars["seps/env_steps_per_second"] == (500.0, 500)
    assert len(scalars) == 9 * 3 + 1


def test_missing_tensorboardx_is_a_usage_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "tensorboardX":
            raise ImportError("no tensorboardX")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(UsageError, match=r"pip install 'adaps-jax\[logging\]'"):
        console.summary_writer_class()
