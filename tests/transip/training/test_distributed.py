"""Data-parallel training with 2 CPU processes (torchrun, gloo), against single-process runs.

One torchrun launch runs this file as a script on 2 workers (:func:`_worker`); in one process
group (set up by :func:`transip.training.distributed_process_group` from torchrun's environment,
as ``transip train`` does) the workers run

- ``cli``: the ``transip train`` command (``transip.cli.main``; TransIP mode, dropout, EMA), 6 steps;
- ``resumed``: the same run stopped after 3 steps and resumed (``train(stop_at=3)``, then
  ``train(resume=True)``);
- ``pair``: plain mode on 9-atom ethanol frames, float64, 2 molecules per rank and step;
- a deliberately desynchronised module, which :meth:`Replicas.check_in_sync` must reject.

(One group for all: under torchrun a process cannot safely initialise the default group a second
time, since the agent's store keeps the first group's keys; and every launch costs each worker
the import of torch.) The tests then compare with single-process computations in the pytest
process. The launch runs under a timeout, so a hang fails instead of blocking.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import operator
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transip.checkpoint import load_checkpoint
from transip.training import (
    ConfigError,
    DistributedEnv,
    build_model,
    build_objective,
    load_config,
    load_datasets,
    load_trained,
    resolve_model_config,
    torchrun_env,
    train,
    validation_metrics,
    validation_sums,
)

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
LAUNCH_TIMEOUT_S = 240


def _quiet(run_dir: Path) -> list[str]:
    return [
        "--logging.progress=false",
        "--logging.tensorboard=false",
        "--logging.plots=false",
        f"--logging.run_dir={run_dir}",
    ]


def _g2_run(run_dir: Path) -> list[str]:
    """TransIP mode with dropout and EMA on 15 GFN2-xTB frames of 3-13 atoms, validated on 5."""
    return [
        f"--data.train={FIXTURES / 'g2_xtb_small.extxyz'}",
        "--data.val_fraction=0.25",
        "--data.max_atoms_per_batch=24",
        "--model.d_model=32",
        "--model.n_layers=1",
        "--model.n_heads=2",
        "--model.num_rbf=8",
        "--model.dropout=0.1",
        "--optim.ema_decay=0.9",
        "--train.steps=6",
        "--train.val_every=3",
        "--train.checkpoint_every=100",
        "--train.log_every=2",
        "--eval.max_atoms_per_batch=20",
        *_quiet(run_dir),
    ]


def _pair_run(run_dir: Path, max_atoms: int) -> list[str]:
    """Plain mode, float64, no dropout, on 8 ethanol frames (9 atoms each), validated on 2.

    With ``max_atoms=18`` each of 2 ranks takes 2 molecules per step; with 36 one process takes
    the same 4 (the sampler deals one permutation round-robin to the ranks).
    """
    return [
        f"--data.train={FIXTURES / 'ethanol_small.extxyz'}",
        "--data.val_fraction=0.2",
        f"--data.max_atoms_per_batch={max_atoms}",
        "--model.d_model=16",
        "--model.n_layers=1",
        "--model.n_heads=2",
        "--model.num_rbf=4",
        "--model.dropout=0",
        "--equivariance.mode=none",
        "--train.dtype=float64",
        "--train.steps=4",
        "--train.val_every=2",
        "--train.log_every=1",
        "--eval.equivariance=false",
        *_quiet(run_dir),
    ]


# ----------------------------------------------------------------------------------------------
# the worker: runs inside torchrun


def _worker(out: Path) -> None:
    import torch.distributed as dist
    from torch import nn

    from transip.cli import main
    from transip.training import distributed_process_group
    from transip.training._distributed import Replicas

    env = torchrun_env()
    report: dict = {"env": [env.rank, env.world_size, env.local_rank]}
    with distributed_process_group(env, "cpu"):
        report["cli_exit"] = main(["train", *_g2_run(out / "cli"), "--quiet"])
        config = load_config(None, _g2_run(out / "resumed"))
        first = train(config, stop_at=3, quiet=True)
        second = train(config, resume=True, quiet=True)
        report["resumed"] = [first.step, first.interrupted, second.step, second.interrupted]
        pair = train(load_config(None, _pair_run(out / "pair", 18)), quiet=True)
        report["pair_history"] = pair.history

        torch.manual_seed(0)
        module = nn.Linear(3, 2)
        replicas = Replicas(dist.get_rank(), dist.get_world_size())
        replicas.check_in_sync(module)  # identical: passes
        if env.rank == 1:
            with torch.no_grad():
                module.bias[0] += 1e-7
        try:
            replicas.check_in_sync(module)
            report["desync"] = None
        except RuntimeError as e:
            report["desync"] = str(e)
    (out / f"rank{env.rank}.json").write_text(json.dumps(report))


# ----------------------------------------------------------------------------------------------
# the tests


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (torchrun starts its workers in sessions of their own)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _torchrun(command: list[str], log: Path) -> str:
    """Run ``command`` on 2 local processes with torchrun (gloo); its output. Fails on error or hang."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.Popen(
        launcher + command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        text, _ = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        for pid in _children(proc.pid):  # the workers hold the output pipe open
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        text, _ = proc.communicate()
        pytest.fail(f"2-process run did not finish in {LAUNCH_TIMEOUT_S} s:\n{text[-4000:]}")
    log.write_text(text)
    assert proc.returncode == 0, text[-4000:]
    return text


_FAILED: list[str] = []  # a failed launch is not repeated for every test


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Path:
    """The output folder of the 2-process launch (see the module docstring)."""
    if _FAILED:
        pytest.fail(f"the 2-process launch failed (see the first error): {_FAILED[0]}")
    out = tmp_path_factory.mktemp("ddp")
    try:
        _torchrun([__file__, str(out)], out / "launch.log")
    except BaseException as e:
        _FAILED.append(str(e)[:200])
        raise
    return out


def _reports(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _rows(path: Path, drop=("time", "cpu_time")) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def _single_process_validation(checkpoint: Path) -> dict:
    """Validation metrics of a checkpoint's weights, computed in this (single) process."""
    model, tau, config = load_trained(checkpoint)
    objective = build_objective(config, model)
    objective.tau = tau
    max_atoms = resolve_model_config(config.model).max_atoms
    _, val_set, _ = load_datasets(config.data, seed=config.train.seed, max_atoms=max_atoms)
    acc, losses, sym = validation_sums(
        objective.eval(),
        val_set,
        max_atoms=config.eval.max_atoms_per_batch,
        dtype=torch.float32,
        device=torch.device("cpu"),
        equivariance=config.eval.equivariance,
        seed=config.train.seed + 2,
    )
    return validation_metrics(objective, acc, losses, sym)


def test_torchrun_environment_is_read_and_checked():
    assert torchrun_env({}) is None
    assert torchrun_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == DistributedEnv(3, 4, 1)
    with pytest.raises(ValueError, match="LOCAL_RANK is not"):
        torchrun_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        torchrun_env({"RANK": "0", "WORLD_SIZE": "two", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="inconsistent"):
        torchrun_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_validation_shards_add_up_to_the_whole_set(tmp_path):
    # the sums of ranks 0..2 of 3 equal one pass over all molecules (symmetry errors included: a
    # molecule's rotation depends on its index only); a rank without molecules contributes nothing
    config = load_config(None, _g2_run(tmp_path / "run"))
    _, val_set, _ = load_datasets(config.data, seed=0, max_atoms=64)
    torch.manual_seed(0)
    objective = build_objective(config, build_model(config)).eval()
    kwargs = dict(max_atoms=20, dtype=torch.float64, device=torch.device("cpu"), seed=5)
    objective = objective.double()
    acc, losses, sym = validation_sums(objective, val_set, **kwargs)
    shards = [validation_sums(objective, val_set, rank=r, world_size=3, **kwargs) for r in range(3)]
    torch.testing.assert_close(sum(a.state() for a, _, _ in shards), acc.state())
    torch.testing.assert_close(sum(l.values for _, l, _ in shards), losses.values)
    sym_sum = functools.reduce(operator.add, [s for _, _, s in shards])  # the max entry by max
    torch.testing.assert_close(sym_sum.values, sym.values)
    assert sym.to_dict()["energy_abs_max"] > 0
    empty_acc, empty_losses, empty_sym = validation_sums(objective, val_set, rank=7, world_size=8, **kwargs)
    assert len(val_set) < 8 and empty_sym is None
    assert not empty_losses.values.any() and not empty_acc.state().any()


def test_several_processes_need_a_process_group(tmp_path):
    config = load_config(None, _pair_run(tmp_path / "run", 18))
    with pytest.raises(RuntimeError, match="needs an initialised process group"):
        train(config, rank=0, world_size=2)


def test_cli_run_under_torchrun_finishes_and_rank_0_writes(launched):
    reports = _reports(launched)
    assert [r["env"] for r in reports] == [[0, 2, 0], [1, 2, 1]]
    assert [r["cli_exit"] for r in reports] == [0, 0]
    run = launched / "cli"
    for name in ("config.yaml", "last.pt", "best.pt", "train.csv", "val.csv", "metrics.json"):
        assert (run / name).is_file(), name
    assert [int(r["step"]) for r in _rows(run / "train.csv")] == [2, 4, 6]
    # every rank took part in each step: the loss column of train.csv averages both ranks' batches
    assert all(math.isfinite(float(r["loss"])) for r in _rows(run / "train.csv"))
    # the summary table is printed once (rank 0), not once per process
    assert (launched / "launch.log").read_text().count("metrics: ") == 1
    ckpt = load_checkpoint(run / "last.pt")
    assert len(ckpt["extra"]["trainer"]["ranks"]) == 2  # both ranks' random streams


def test_validation_metrics_agree_across_ranks_and_with_one_process(launched):
    reports = _reports(launched)
    histories = [r["pair_history"] for r in reports]
    assert histories[0] == histories[1]  # exactly: the all-reduced sums are the same on every rank
    assert [h["step"] for h in histories[0]] == [2, 4]
    # the CLI run's val.csv (rank 0) against this process's evaluation of the checkpoint it saved
    # at the last step: the ranks each evaluated half of the validation set
    run = launched / "cli"
    saved = load_checkpoint(run / "last.pt")["extra"]["metrics"]
    single = _single_process_validation(run / "last.pt")
    assert set(saved) == set(single)
    for key, value in single.items():
        assert value is not None, key
        assert saved[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key


def test_two_ranks_of_2_molecules_equal_one_process_of_4(launched, tmp_path):
    single = train(load_config(None, _pair_run(tmp_path / "one", 36)), quiet=True)
    multi = load_checkpoint(launched / "pair" / "last.pt")["state_dict"]
    alone = load_checkpoint(tmp_path / "one" / "last.pt")["state_dict"]
    assert multi.keys() == alone.keys()
    assert single.step == 4
    for k in alone:
        torch.testing.assert_close(multi[k], alone[k], rtol=1e-9, atol=1e-12, msg=k)
    # logged losses are means over both ranks, like the single process's means over 4 molecules
    for a, b in zip(
        _rows(launched / "pair" / "train.csv"), _rows(tmp_path / "one" / "train.csv"), strict=True
    ):
        for key in ("step", "lr", "loss", "loss_energy", "loss_force", "grad_norm"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-9), key
    for a, b in zip(_reports(launched)[0]["pair_history"], single.history, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key


def test_resumed_two_process_run_equals_an_uninterrupted_one(launched):
    for r in _reports(launched):
        assert r["resumed"] == [3, True, 6, False]
    a, b = load_checkpoint(launched / "cli" / "last.pt"), load_checkpoint(launched / "resumed" / "last.pt")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    live_a, live_b = a["extra"]["trainer"]["objective"], b["extra"]["trainer"]["objective"]
    assert all(torch.equal(live_a[k], live_b[k]) for k in live_a)  # live weights, tau included
    assert _rows(launched / "cli" / "val.csv") == _rows(launched / "resumed" / "val.csv")
    assert _rows(launched / "cli" / "train.csv") == _rows(launched / "resumed" / "train.csv")


def test_resuming_with_another_number_of_processes_is_refused(launched, tmp_path):
    (tmp_path / "run").mkdir()
    shutil.copy(launched / "cli" / "last.pt", tmp_path / "run" / "last.pt")
    config = load_config(None, _g2_run(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"written by a run of 2 process\(es\); resume it with 2"):
        train(config, resume=True, quiet=True)


def test_out_of_sync_replicas_are_detected(launched):
    messages = [r["desync"] for r in _reports(launched)]
    assert all(m is not None and "'bias'" in m and "rank(s) [1]" in m for m in messages), messages


if __name__ == "__main__":  # one torchrun worker (see the fixture ``launched``)
    _worker(Path(sys.argv[1]))
