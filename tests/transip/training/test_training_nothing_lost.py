"""Nothing a run wrote is lost: finished runs are not replaced, a hard kill loses bounded work,
a failed start leaves no half-made directory."""

import itertools

import pytest
import torch

from transip.checkpoint import load_checkpoint
from transip.training import ConfigError, load_config, train
from transip.training import _trainer as trainer_module


def _weights(path):
    return load_checkpoint(path)["state_dict"]


def _equal_states(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Killed(Exception):
    """Stands for ``kill -9``: the loop stops at once, nothing is written on the way out."""


def test_a_directory_holding_a_run_is_refused_unless_overwrite(tmp_path, tiny):
    run_dir = tmp_path / "run"
    extra = ["--train.steps=2", "--train.val_every=2", "--eval.equivariance=false"]
    train(load_config(None, tiny(run_dir, *extra)), quiet=True)
    before = (run_dir / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run") as e:
        train(load_config(None, tiny(run_dir, *extra, "--train.seed=1")), quiet=True)
    assert "--resume" in str(e.value) and "--overwrite" in str(e.value) and str(run_dir) in str(e.value)
    assert (run_dir / "last.pt").read_bytes() == before
    train(load_config(None, tiny(run_dir, *extra, "--train.seed=1")), quiet=True, overwrite=True)
    assert (run_dir / "last.pt").read_bytes() != before
    assert (run_dir / "train.csv").read_text().count("\n2,") == 1  # the old rows went with the old run


def test_the_checkpoint_after_setup_resumes_bit_identically(tmp_path, tiny, monkeypatch):
    extra = ["--train.steps=4", "--train.val_every=2", "--train.checkpoint_every=100"]
    full = train(load_config(None, tiny(tmp_path / "a", *extra)), quiet=True)

    def kill(step):
        raise _Killed

    with pytest.raises(_Killed):
        train(load_config(None, tiny(tmp_path / "b", *extra)), quiet=True, on_step=kill)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["extra"]["step"] == 0
    resumed = train(
        load_config(tmp_path / "b" / "config.yaml"), run_dir=tmp_path / "b", resume=True, quiet=True
    )
    assert resumed.step == 4 and full.history == resumed.history
    assert _equal_states(_weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt"))


def test_a_hard_kill_loses_at_most_checkpoint_minutes_of_work(tmp_path, tiny, monkeypatch):
    # every reading of the clock is 40 s after the previous one: with checkpoint_minutes=1, last.pt
    # is written every second step although checkpoint_every is far away
    ticks = itertools.count(step=40.0)
    monkeypatch.setattr(trainer_module, "clock", lambda: next(ticks))
    extra = [
        "--train.steps=8",
        "--optim.ema_decay=0.9",
        "--train.val_every=4",
        "--train.checkpoint_every=100",
        "--train.checkpoint_minutes=1",
    ]
    full = train(load_config(None, tiny(tmp_path / "a", *extra)), quiet=True)
    saved = []

    def kill(step):
        saved.append(load_checkpoint(tmp_path / "b" / "last.pt")["extra"]["step"])
        if step == 5:
            raise _Killed

    with pytest.raises(_Killed):
        train(load_config(None, tiny(tmp_path / "b", *extra)), quiet=True, on_step=kill)
    assert saved == [0, 0, 2, 2, 4]  # what a kill after each step would have found
    resumed = train(
        load_config(tmp_path / "b" / "config.yaml"), run_dir=tmp_path / "b", resume=True, quiet=True
    )
    assert resumed.step == 8
    for name in ("last.pt", "best.pt"):
        assert _equal_states(_weights(tmp_path / "a" / name), _weights(tmp_path / "b" / name)), name
    assert full.history == resumed.history


def test_without_checkpoint_minutes_only_the_step_interval_counts(tmp_path, tiny, monkeypatch):
    ticks = itertools.count(step=1e6)
    monkeypatch.setattr(trainer_module, "clock", lambda: next(ticks))
    saved = []

    def look(step):
        saved.append(load_checkpoint(tmp_path / "r" / "last.pt")["extra"]["step"])

    extra = ["--train.steps=4", "--train.checkpoint_every=2", "--train.checkpoint_minutes=0"]
    train(load_config(None, tiny(tmp_path / "r", *extra)), quiet=True, on_step=look)
    assert saved == [0, 0, 2, 2]


def test_train_device_cuda_without_cuda_is_a_config_error(tmp_path, tiny):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=r"train.device=cuda: .*use --train.device=cpu"):
        train(load_config(None, tiny(tmp_path / "r", "--train.device=cuda")), quiet=True)
    assert not (tmp_path / "r").exists()


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, tiny, caplog):
    # pytest's captured stderr is not a terminal: no bar, a line at the first log step past every 1/20
    extra = ["--train.steps=40", "--train.log_every=3", "--train.val_every=40", "--logging.progress=true"]
    with caplog.at_level("INFO", logger="transip.training"):
        train(load_config(None, tiny(tmp_path / "r", *extra)))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split(" (")[0] for line in lines] == [f"step {k}/40" for k in range(3, 41, 3)] + [
        "step 40/40"
    ]
    assert all("loss " in line and "ETA" in line for line in lines)
    caplog.clear()
    with caplog.at_level("INFO", logger="transip.training"):
        train(load_config(None, tiny(tmp_path / "q", *extra)), quiet=True)
    assert not [r for r in caplog.records if r.getMessage().startswith("step ")]
