"""Optimisers and learning-rate schedules by name, as the configs choose them."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Literal, get_args

import torch

# the names a config or constructor may choose (checked where the model is built, see rules.py)
OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop", "adadelta"]
SchedulerName = Literal["none", "step", "cosine", "onecycle"]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
}
SCHEDULERS: tuple[str, ...] = get_args(SchedulerName)


def build_optimizer(name: OptimizerName, params: Iterable[torch.nn.Parameter], lr: float,
                    weight_decay: float = 0.0, momentum: float = 0.9,
                    betas: tuple[float, float] = (0.9, 0.999), fused: bool = True) -> torch.optim.Optimizer:
    """One of OPTIMIZERS; `momentum` applies to sgd and rmsprop, `betas` to adam and adamw.

    Adam and AdamW run fused kernels where the parameters are on a CPU or CUDA device, unless
    `fused` is False (see `can_fuse`).
    """
    params = list(params)
    extra: dict[str, Any] = {}
    if name in ("sgd", "rmsprop"):
        extra["momentum"] = momentum
    if name in ("adam", "adamw"):
        extra["betas"] = tuple(betas)
        # one fused kernel per tensor instead of a dozen small ops each: several times faster
        extra["fused"] = fused and all(p.device.type in ("cpu", "cuda") for p in params)
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, **extra)


def can_fuse(trainer: Any) -> bool:
    """Whether `trainer` allows a fused optimiser: Lightning refuses to clip gradients under mixed
    precision when the optimiser unscales them itself, as fused Adam does."""
    return not (trainer.gradient_clip_val and "mixed" in str(trainer.precision))


def build_scheduler(name: SchedulerName, optimizer: torch.optim.Optimizer, total_steps: int,
                    step_size: int = 5, gamma: float = 0.1) -> dict | None:
    """A Lightning lr_scheduler dict, or None for "none".

    "step" multiplies the rate by `gamma` every `step_size` epochs; "cosine" anneals to zero and
    "onecycle" warms up then anneals, both over `total_steps` optimiser steps.
    """
    if name == "none":
        return None
    if name == "step":
        return {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma),
                "interval": "epoch"}
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if name == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    else:
        # cycling momentum needs a momentum (sgd, rmsprop) or beta1 (adam, adamw); adadelta has neither
        cycle_momentum = "momentum" in optimizer.defaults or "betas" in optimizer.defaults
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(2, total_steps),
            cycle_momentum=cycle_momentum)
    return {"scheduler": scheduler, "interval": "step"}
