"""The exponential moving average (EMA) of a network's weights, as the classifiers' `net_ema` and
the GAN's `generator_ema` keep it.

The averaged copy is a module of its own beside the live one, so checkpoints save and restore it
with the rest; its step count is a 0-d tensor buffer (`ema_steps`) for the same reason. A step
moves every weight and batch-norm statistic in one fused `torch._foreach_lerp_` (a few kernel
launches on a GPU instead of one per tensor), with a weight computed on the host from a copy of
the step count that the host keeps, so that no step reads the device.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

# the host's copy of a step-count tensor: (count, the tensor's version counter then, its id). A
# tensor changed by anything else since (a checkpoint loaded into it, a copy made of it) has
# another version or id, and its count is read again
_HOST_COUNT = "_mnist_pl_host_count"


def _count_of(steps: torch.Tensor) -> int:
    """`steps` as a Python int, read from the device only when the host's copy is out of date."""
    known = getattr(steps, _HOST_COUNT, None)
    if known is not None and known[1:] == (steps._version, id(steps)):
        return known[0]
    return int(steps)


def _remember_count(steps: torch.Tensor, count: int) -> None:
    setattr(steps, _HOST_COUNT, (count, steps._version, id(steps)))


def new_value_weight(step: int, decay: float, dtype: torch.dtype = torch.float32) -> float:
    """How far the average moves towards the live weights at step `step` (0 first): 1 - the weight
    of the old average, which is `decay`, but less, (1 + step) / (10 + step), over the first steps
    so that the random initial weights fade quickly.

    Computed in float32 and rounded to `dtype` as a 0-d tensor on the device would be, so that a
    step gives the same bits wherever it runs.
    """
    count = torch.tensor(step).float()
    weight = 1 - ((1 + count) / (10 + count)).clamp(max=decay)
    return weight.to(dtype).item()  # a CPU tensor: no device to wait for


@torch.no_grad()
def update_moving_average(average: nn.Module, live: nn.Module, steps: torch.Tensor, decay: float) -> None:
    """Move `average`'s weights and batch-norm statistics towards `live`'s; count the step.

    `steps` (a 0-d integer tensor, updated in place) counts the updates: the weight of the old
    average is `decay`, but less over the first steps (see new_value_weight). Floating-point
    tensors move by one `torch._foreach_lerp_` per dtype; integer ones (batch-norm step counters)
    are copied.
    """
    step = _count_of(steps)
    moving: dict[torch.dtype, tuple[list[torch.Tensor], list[torch.Tensor]]] = defaultdict(lambda: ([], []))
    copied: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    # parameters and buffers directly: building two state dicts a step would walk both module
    # trees and make a view of every tensor, on the hot path of every optimiser step
    pairs = zip([*average.parameters(), *average.buffers()], [*live.parameters(), *live.buffers()], strict=True)
    for averaged, value in pairs:
        lists = moving[value.dtype] if value.is_floating_point() else copied
        lists[0].append(averaged)
        lists[1].append(value)
    for dtype, (averages, values) in moving.items():
        torch._foreach_lerp_(averages, values, new_value_weight(step, decay, dtype))
    if copied[0]:
        torch._foreach_copy_(*copied)
    steps += 1
    _remember_count(steps, step + 1)
