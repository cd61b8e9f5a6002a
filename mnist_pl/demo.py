"""A local web page to try trained models: draw a digit for a classifier, ask a GAN for digits.

Built with Gradio and made to work with no internet at all: no analytics, no share link, the
browser's own fonts instead of web fonts. The drawing goes through the same MNIST-style
preprocessing as `mnist-pl predict` (mnist_pl.predict), and the page shows the 28x28 image the
network receives.

    app = build_app(DemoClassifier.from_checkpoint("cnn.ckpt"), load_gan("gan.ckpt"))
    serve(app, "127.0.0.1", 7860)
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from PIL import Image

from .errors import UserError
from .generate import grid_picture, interpolation, sample_layout
from .normalization import Normalization
from .predict import classify, greyscale, to_mnist_style

if TYPE_CHECKING:
    import gradio as gr

    from .classifier import ImageClassifier
    from .gan import GAN

DRAW_A_DIGIT = "Draw a digit"
SEEN_ZOOM = 8  # the 28x28 input shown as 224x224, pixel by pixel
CANVAS = (400, 400)
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue",
                "Arial", "sans-serif")
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")
ANY_DIGIT = "any: 0-9 in turn"


@dataclass
class DemoClassifier:
    """A classifier with what it needs to read a drawing: its data's normalisation and class names."""

    model: ImageClassifier
    normalization: Normalization
    classes: Sequence[str]

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "DemoClassifier":
        """The dense or CNN classifier of a checkpoint of train.py (anything else is a UserError)."""
        from .checkpoints import datamodule_for, load_classifier

        model, checkpoint = load_classifier(path, purpose="demo --classifier")
        datamodule = datamodule_for(checkpoint)
        return cls(model, datamodule.normalization, datamodule.classes)


def check_port(host: str, port: int) -> None:
    """Refuse, with a UserError, a host or port that the server could not listen on."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port} is not a TCP port; give one in 1-65535 (the default is 7860).")
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise UserError(f"--host {host}: no such address ({err.strerror}); use 127.0.0.1 for this "
                        "machine only, or 0.0.0.0 for every network interface.") from None
    with socket.socket(family, kind) as probe:
        # as the web server will: a port whose old connections are closing is free, a listening one is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise UserError(f"cannot listen on {host}:{port} ({err.strerror}): another program (an earlier "
                            f"demo?) uses that port, or the address is not this machine's; pick another "
                            f"with --port, such as --port {port + 1 if port < 65535 else 7860}.") from None


def read_drawing(drawing: dict[str, Any] | Image.Image | None) -> torch.Tensor | None:
    """A drawing from the canvas (Gradio's editor value, or a PIL image) as an MNIST-style [28, 28]
    digit in [0, 1] by predict's preprocessing, or None when nothing is drawn."""
    image = drawing.get("composite") if isinstance(drawing, dict) else drawing
    if image is None:
        return None
    try:
        return to_mnist_style(greyscale(image), "drawing")
    except UserError:  # a blank canvas: there is no digit to read yet
        return None


def read_digit(classifier: DemoClassifier, drawing: dict[str, Any] | Image.Image | None
               ) -> tuple[str, dict[str, float] | None, Image.Image | None]:
    """What the page shows for a drawing: the verdict, each class's probability, and the image the
    network sees (enlarged); "Draw a digit" and nothing else for an empty canvas."""
    pixels = read_drawing(drawing)
    if pixels is None:
        return DRAW_A_DIGIT, None, None
    probabilities = classify(classifier.model, pixels[None], classifier.normalization)[0]
    best = int(probabilities.argmax())
    seen = Image.fromarray(pixels.mul(255).add(0.5).clamp(0, 255).byte().numpy())
    return (f"Prediction: {classifier.classes[best]} ({probabilities[best]:.1%})",
            dict(zip(classifier.classes, probabilities.tolist())),
            seen.resize((28 * SEEN_ZOOM, 28 * SEEN_ZOOM), Image.Resampling.NEAREST))


def parse_digit(choice: str | int | None) -> int | None:
    """The digit picked in the page's menu, or None for every class in turn."""
    return None if choice in (None, "", ANY_DIGIT) else int(choice)


def digits_grid(gan: GAN, digit: int | None, count: int, seed: int) -> Image.Image:
    """`count` digits from the EMA generator (all `digit`, or each class in turn) as a picture."""
    images = gan.sample(int(count), digit, torch.Generator().manual_seed(int(seed)))
    return grid_picture(*sample_layout(gan, images, digit))


def latent_walk(gan: GAN, digit: int | None, walks: int, steps: int, seed: int) -> Image.Image:
    """`walks` rows of `steps` digits, each row a walk between two random noise vectors."""
    images = interpolation(gan, int(walks), int(steps), digit, torch.Generator().manual_seed(int(seed)))
    return grid_picture(images, int(steps))


def build_app(classifier: DemoClassifier | None, gan: GAN | None) -> "gr.Blocks":
    """The page: a Draw tab with a classifier, a Generate tab with a GAN (at least one of them)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when Gradio is imported
    import gradio as gr

    with gr.Blocks(title="mnist-pl demo", analytics_enabled=False) as app:
        gr.Markdown("# mnist-pl demo")
        if classifier is not None:
            with gr.Tab("Draw"):
                with gr.Row():
                    canvas = gr.Sketchpad(label="Pick the brush, then draw a digit", type="pil",
                                          canvas_size=CANVAS, fixed_canvas=True, layers=False, height=480,
                                          brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                                          elem_id="canvas")
                    with gr.Column():
                        verdict = gr.Markdown(DRAW_A_DIGIT, elem_id="prediction")
                        seen = gr.Image(label="What the network sees (28x28)", type="pil", height=240,
                                        interactive=False, buttons=["download"], elem_id="seen")
                probabilities = gr.Label(label="Probabilities", num_top_classes=len(classifier.classes),
                                         elem_id="probabilities")
                canvas.change(lambda drawing: read_digit(classifier, drawing), canvas,
                              [verdict, probabilities, seen], trigger_mode="always_last", show_progress="hidden")
        if gan is not None:
            with gr.Tab("Generate"):
                with gr.Row():
                    conditional = bool(gan.hparams.conditional)
                    digit = gr.Dropdown([ANY_DIGIT, *map(str, range(gan.hparams.num_classes))], value=ANY_DIGIT,
                                        label="Digit", visible=conditional, elem_id="digit")
                    count = gr.Slider(1, 100, value=20, step=1, label="How many", elem_id="count")
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="seed")
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
                grid = gr.Image(label="Digits from the EMA generator", type="pil", interactive=False,
                                buttons=["download"], elem_id="grid")
                with gr.Row():
                    walks = gr.Slider(1, 10, value=3, step=1, label="Latent walks")
                    steps = gr.Slider(2, 16, value=10, step=1, label="Steps per walk")
                walk = gr.Button("Walk", elem_id="walk")
                walk_picture = gr.Image(label="Latent walks: each row between two random noise vectors",
                                        type="pil", interactive=False, buttons=["download"], elem_id="walk-picture")
                generate.click(lambda d, n, s: digits_grid(gan, parse_digit(d), n, s), [digit, count, seed], grid)
                walk.click(lambda d, w, n, s: latent_walk(gan, parse_digit(d), w, n, s),
                           [digit, walks, steps, seed], walk_picture)
    return app


def serve(app: "gr.Blocks", host: str, port: int) -> None:
    """Serve `app` at http://host:port until Ctrl+C: no share link, no web fonts, no analytics."""
    import gradio as gr

    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=True,
               prevent_thread_lock=True, theme=theme, ssr_mode=False, pwa=False, mcp_server=False,
               footer_links=["settings"], show_error=True)
    print(f"mnist-pl demo: http://{f'[{host}]' if ':' in host else host}:{port}  (Ctrl+C stops it)", flush=True)
    try:
        app.block_thread()
    finally:
        app.close()
