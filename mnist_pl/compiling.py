"""torch.compile for mnist-pl's networks: which mode on which device, and tracing them uncompiled."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .errors import UserError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(setting: bool | str, device: torch.device) -> str | None:
    """The torch.compile mode that the config's `compile` asks for on `device` (None: do not compile).

    `true` picks "reduce-overhead" on CUDA: it replays each network's forward and backward kernels as
    CUDA graphs, one launch each instead of dozens: these networks are small enough that a GPU step
    is bound by launch and Python overhead, not arithmetic. Elsewhere "default". A mode name picks
    that mode on any device.
    """
    if setting is False or setting is None:
        return None
    if setting is True:
        return "reduce-overhead" if device.type == "cuda" else "default"
    if setting not in COMPILE_MODES:
        raise UserError(f"compile: {setting!r} is not a torch.compile mode; use true (the device's best), "
                        f"false, or one of {', '.join(COMPILE_MODES)}.")
    return str(setting)


def compile_model(model: nn.Module, mode: str = "default") -> list[str]:
    """torch.compile, in place, each network of `model` that trains; return their names.

    Module.compile keeps the module and its parameters as they are, so checkpoints keep their keys
    and load into a compiled or an uncompiled model alike. Networks without trainable weights (the
    moving averages, metrics) run a few times an epoch: compiling them would cost more than it
    saves. Training runs call this through callbacks.CompiledTraining, which picks when.
    """
    compiled = []
    for name, module in model.named_children():
        if any(p.requires_grad for p in module.parameters()):
            module.compile(mode=mode)
            compiled.append(name)
    return compiled


@contextlib.contextmanager
def eager_networks(model: nn.Module) -> Iterator[None]:
    """Run the compiled networks of `model` uncompiled inside the block.

    torch.jit's tracer (the TensorBoard graph) refuses compiled functions. Module.compile keeps the
    compiled call beside the module's own in `_compiled_call_impl`; clearing it for the block leaves
    the uncompiled module, the same parameters, and the compiled code ready for afterwards.
    """
    compiled = {m: m._compiled_call_impl for m in model.modules() if getattr(m, "_compiled_call_impl", None)}
    for module in compiled:
        module._compiled_call_impl = None
    try:
        yield
    finally:
        for module, call in compiled.items():
            module._compiled_call_impl = call


def compile_seconds_since(started: float) -> float:
    """Seconds torch.compile spent compiling the graphs whose compilation began after `started`
    (a time.time()): dynamo's, AOTAutograd's and the backend's work, forward and backward."""
    from torch._dynamo.utils import get_compilation_metrics

    return sum(m.entire_frame_compile_time_s or 0.0 for m in get_compilation_metrics()
               if m.start_time is not None and m.start_time >= started)
