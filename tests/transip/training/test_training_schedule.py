"""The learning-rate schedule: linear warm-up over 1% of the steps, cosine down to 1% of the peak."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.training import make_scheduler, warmup_cosine


@settings(max_examples=40, deadline=None)
@given(total=st.integers(1, 5_000))
def test_shape_of_the_schedule(total):
    m = [warmup_cosine(s, total) for s in range(total + 1)]
    warmup = max(1, round(0.01 * total))
    # linear warm-up: equal increments, peak 1 reached exactly at the end of the warm-up
    assert m[0] == pytest.approx(1 / warmup)
    assert m[warmup - 1] == pytest.approx(1.0)
    assert all(b - a == pytest.approx(1 / warmup) for a, b in zip(m[: warmup - 1], m[1:warmup], strict=True))
    # then non-increasing, never below the floor, and at the floor at the last step
    tail = m[warmup - 1 :]
    assert all(b <= a + 1e-12 for a, b in zip(tail, tail[1:], strict=False))
    assert min(tail) >= 0.01 - 1e-12  # (the warm-up itself starts from 1/W, below the floor)
    assert m[total] == pytest.approx(0.01)
    assert max(m) == pytest.approx(1.0)


def test_cosine_midpoint_and_floor_after_the_end():
    total = 10_100  # 101 warm-up steps, then 10_000 decay steps
    assert warmup_cosine(100, total) == pytest.approx(1.0)
    mid = warmup_cosine(100 + 5000, total)
    assert mid == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 5000 / 10_000)))
    assert warmup_cosine(total + 500, total) == pytest.approx(0.01)


def test_scheduler_drives_adamw_learning_rate():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = make_scheduler(opt, 200, warmup_fraction=0.01, final_fraction=0.01)
    lrs = []
    for _ in range(200):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(5e-4)  # warm-up of 2 steps
    assert lrs[1] == pytest.approx(1e-3)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5)  # 1% of the peak after the last step
