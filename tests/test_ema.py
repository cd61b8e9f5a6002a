"""The moving average of weights (mnist_pl.ema): its arithmetic, bit for bit that of the per-tensor
loop it replaced, and the host's copy of the step count kept honest."""

from __future__ import annotations

import copy

import torch
from torch import nn

from mnist_pl.ema import new_value_weight, update_moving_average
from mnist_pl.nets import ConvNet


@torch.no_grad()
def per_tensor_update(average: nn.Module, live: nn.Module, steps: torch.Tensor, decay: float) -> None:
    """The moving average as it was computed before the fused form: one lerp_ per tensor, the
    weight a 0-d tensor computed from `steps` on its device."""
    new_weight = 1 - ((1 + steps.float()) / (10 + steps.float())).clamp(max=decay)
    pairs = zip([*average.parameters(), *average.buffers()], [*live.parameters(), *live.buffers()], strict=True)
    for averaged, value in pairs:
        if value.is_floating_point():
            averaged.lerp_(value, new_weight.to(value.dtype))
        else:
            averaged.copy_(value)
    steps += 1


def test_average_follows_the_warm_up_then_the_decay():
    live, average = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    steps = torch.zeros((), dtype=torch.long)
    live.weight.data.fill_(1.0)
    live.running_mean.fill_(2.0)
    live.num_batches_tracked.fill_(7)
    update_moving_average(average, live, steps, decay=0.9)
    # first step: the old average keeps (1 + 0) / (10 + 0) = 0.1 of its weight
    assert torch.allclose(average.weight, torch.full((3,), 0.9 * 1.0 + 0.1 * 1.0))
    assert torch.allclose(average.running_mean, torch.full((3,), 0.9 * 2.0))
    assert average.num_batches_tracked == 7 and steps == 1
    for _ in range(200):  # the warm-up weight (1 + s) / (10 + s) passes 0.9 at s = 80
        update_moving_average(average, live, steps, decay=0.9)
    live.running_mean.fill_(12.0)
    before = average.running_mean.clone()
    update_moving_average(average, live, steps, decay=0.9)
    assert torch.allclose(average.running_mean, 0.9 * before + 0.1 * 12.0) and steps == 202


def test_fused_average_is_bit_identical_to_the_per_tensor_loop():
    # a CNN with batch norm: weights, running statistics (float) and step counters (int). 1000
    # steps cover the warm-up (new-value weight 0.9 down to 0.001, across lerp's two formulas at
    # 0.5) and the full decay, with live weights that move every step
    torch.manual_seed(0)
    live = ConvNet(channels=(4, 8), hidden_size=16)
    fused, looped = copy.deepcopy(live), copy.deepcopy(live)
    fused_steps, looped_steps = torch.zeros((), dtype=torch.long), torch.zeros((), dtype=torch.long)
    for step in range(1000):
        with torch.no_grad():
            for tensor in [*live.parameters(), *live.buffers()]:
                tensor.add_(torch.randn_like(tensor.float()).to(tensor.dtype) * (0.1 if tensor.is_floating_point() else 0))
            live.features[1].num_batches_tracked += 1
        update_moving_average(fused, live, fused_steps, decay=0.999)
        per_tensor_update(looped, live, looped_steps, decay=0.999)
        if step in (0, 9, 10, 500, 999):
            for (name, a), b in zip(fused.state_dict().items(), looped.state_dict().values()):
                assert torch.equal(a, b), (step, name)
    assert fused_steps == looped_steps == 1000
    assert fused.features[1].num_batches_tracked == live.features[1].num_batches_tracked == 1000


def test_the_weight_is_the_float32_arithmetic_of_a_device_tensor():
    for step in (0, 1, 9, 80, 1000, 2**24 + 3):
        steps = torch.tensor(step)
        expected = 1 - ((1 + steps.float()) / (10 + steps.float())).clamp(max=0.999)
        assert new_value_weight(step, 0.999) == expected.item()
        assert new_value_weight(step, 0.999, torch.bfloat16) == expected.to(torch.bfloat16).item()


def test_a_step_count_changed_from_outside_is_read_again():
    live, average = nn.Linear(2, 2), nn.Linear(2, 2)
    steps = torch.zeros((), dtype=torch.long)
    update_moving_average(average, live, steps, decay=0.5)
    steps.fill_(100)  # as a checkpoint loaded into the buffer would: past the warm-up
    with torch.no_grad():
        average.weight.zero_(), live.weight.fill_(1.0)
    update_moving_average(average, live, steps, decay=0.5)
    assert torch.equal(average.weight, torch.full((2, 2), 0.5)) and steps == 101  # the full decay, not step 1's
    moved = steps.clone()  # a new tensor (as .to(device) makes): its own count, read from it
    moved.fill_(0)
    update_moving_average(average, live, moved, decay=0.5)
    assert torch.equal(average.weight, torch.full((2, 2), 0.95)) and moved == 1  # step 0's weight 0.9
