"""Exponential moving average of the weights."""

import torch
from torch import nn

from transip.training import ExponentialMovingAverage
from transip.training._ema import ema_decay_at


def test_average_matches_the_recurrence_and_swap_restores():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    ema = ExponentialMovingAverage(net, decay=0.9)
    expected = [p.detach().clone() for p in net.parameters()]
    for step in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        ema.update(net)
        d = ema_decay_at(step, 0.9)
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, net.parameters(), strict=True)]
    live = [p.detach().clone() for p in net.parameters()]
    with ema.swapped(net):
        for p, e in zip(net.parameters(), expected, strict=True):
            torch.testing.assert_close(p.detach(), e)
    for p, v in zip(net.parameters(), live, strict=True):
        assert torch.equal(p.detach(), v)  # live weights back after the block


def test_decay_ramp_and_state_round_trip():
    assert ema_decay_at(0, 0.999) == 0.1
    assert ema_decay_at(10**6, 0.999) == 0.999
    net = nn.Linear(2, 2)
    ema = ExponentialMovingAverage(net, decay=0.5)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    other = ExponentialMovingAverage(nn.Linear(2, 2), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.5 and other.num_updates == 1
    assert all(torch.equal(a, b) for a, b in zip(other.shadow, ema.shadow, strict=True))
    target = nn.Linear(2, 2)
    other.copy_to(target)
    assert torch.equal(target.weight.detach(), ema.shadow[0])
