"""A model's architecture for people: the layer table of Lightning's ModelSummary, and a
picture of the graph drawn from the real module with torchview and graphviz."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary

from .errors import UserError
from .gan import GAN
from .nets import DCGANDiscriminator, DCGANGenerator, Discriminator, Generator

GRAPH_FORMATS = ("png", "svg", "pdf")


class GeneratorThenDiscriminator(L.LightningModule):
    """The GAN's two halves in a chain, noise -> image -> logit, so that one forward pass reaches
    (and gives shapes to) every layer of both; the GAN's own forward runs only the generator."""

    def __init__(self, gan: GAN):
        super().__init__()
        self.generator: Generator | DCGANGenerator = gan.generator
        self.discriminator: Discriminator | DCGANDiscriminator = gan.discriminator
        self.example_input_array = gan.example_input_array

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(self.generator(noise, labels), labels)


def traceable(model: L.LightningModule) -> L.LightningModule:
    """The module whose forward on `example_input_array` passes through every layer of `model`."""
    if getattr(model, "example_input_array", None) is None:
        raise ValueError(f"{type(model).__name__} sets no example_input_array")
    return GeneratorThenDiscriminator(model) if isinstance(model, GAN) else model


def summarize(model: L.LightningModule, max_depth: int = -1) -> str:
    """Lightning's layer table (parameters, input and output shapes) for `model`, the shapes from
    a forward pass (in eval mode) on its example_input_array. `max_depth` -1 lists every layer."""
    return str(ModelSummary(traceable(model), max_depth=max_depth))


def draw_graph(model: L.LightningModule, out: str | Path, depth: int = 3) -> Path:
    """Draw the graph of `model` (layers, with their input and output shapes) to `out`; the
    format (png, svg or pdf) comes from its extension. Needs torchview and graphviz's `dot`."""
    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in GRAPH_FORMATS:
        raise UserError(f"--out {out}: cannot tell the picture format; end the name in "
                        f"{', '.join('.' + f for f in GRAPH_FORMATS)}.")
    try:
        import graphviz
        import torchview
    except ImportError as err:
        raise UserError(f"drawing graphs needs the Python package {err.name}: "
                        "pip install torchview (it brings graphviz's Python bindings).") from None
    module = traceable(model)
    was_training = module.training
    module.eval()
    try:
        graph = torchview.draw_graph(module, input_data=module.example_input_array, depth=depth,
                                     expand_nested=True, graph_name=type(model).__name__, roll=False)
        graph.visual_graph.graph_attr["dpi"] = "144"  # graphviz's 72 dpi makes unreadably small PNGs
        picture = graph.visual_graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UserError("graphviz's `dot` program was not found on PATH, and it draws the graph. "
                        "Install graphviz: sudo apt-get install graphviz (Debian, Ubuntu), "
                        "brew install graphviz (macOS) or conda install graphviz.") from None
    finally:
        module.train(was_training)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(picture)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror}. Choose another --out path.") from None
    return out
