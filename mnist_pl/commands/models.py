"""Commands that act on a model built from its config: summary, graph."""

from __future__ import annotations

import argparse

from ..outputs import output_file
from .flags import Subcommands, add_command, add_model_flags, build_model


def add_commands(sub: Subcommands) -> None:
    p = add_command(sub, "summary", _summary, help="print the model's layers with output shapes and parameter counts",
                    description="Lightning's model summary, with input and output shapes from a forward pass "
                                "on the model's example input. For the GAN, the pass runs the generator and "
                                "then the discriminator, so both show their shapes.")
    add_model_flags(p)
    p.add_argument("--depth", type=int, default=-1, help="how deep to list nested layers; -1: all")

    p = add_command(sub, "graph", _graph,
                    help="draw the model's graph with the shapes between layers (torchview, graphviz)",
                    description="Trace the real module on its example input with torchview and draw the "
                                "graph with graphviz's dot (install it: apt-get install graphviz). Training "
                                "also puts the graph in TensorBoard's Graphs tab.")
    add_model_flags(p)
    p.add_argument("--out", default=None, help="picture to write: .png, .svg or .pdf (default: MODEL.png)")
    p.add_argument("--depth", type=int, default=3, help="how deep to expand nested modules")


def _summary(args: argparse.Namespace) -> int:
    from ..architecture import summarize

    model = build_model(args)
    example = model.example_input_array
    shapes = [tuple(t.shape) for t in (example if isinstance(example, tuple) else (example,))]
    print(f"{args.model}: {type(model).__name__}, input {', '.join(map(str, shapes))}")
    print(summarize(model, args.depth))
    return 0


def _graph(args: argparse.Namespace) -> int:
    from ..architecture import draw_graph

    out = draw_graph(build_model(args), output_file(args.out or f"{args.model}.png", "--out"), args.depth)
    print(f"graph of {args.model} -> {out}")
    return 0
