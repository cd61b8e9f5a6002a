"""Make the pictures of docs/workshop.md and docs/GAN.md with mnist-pl itself.

    OMP_NUM_THREADS=1 python docs/make_pictures.py --data-dir ../shared/data/mnist-subset

It runs, from the repository root (and prints each command as it goes):

    python -m mnist_pl show --data-dir DATA --num 16 --out docs/images/workshop_show.png
    python -m mnist_pl show --data-dir DATA --split test --num 40 --random --out docs/images/gan_real.png
    python train.py --model gan --data-dir DATA --max-epochs EPOCHS --logdir LOGDIR   (skipped with --gan-run)
    python -m mnist_pl generate --checkpoint RUN/checkpoints/last.ckpt --num 100 --out docs/images/gan_generated.png

then reads the fixed-noise grid that the GAN run logged to TensorBoard after every epoch
("samples") and writes them as a GIF (gan_epochs.gif) and as one PNG strip (gan_epochs.png),
and trains that GAN's generator one more epoch against its frozen discriminator, which makes
it collapse on purpose (see collapsed_gan), for gan_collapse.png. The GAN run takes a few
minutes on a CPU (about 20 s per epoch here); pass --gan-run to reuse one.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def run(*args: str) -> None:
    """Run `python ARGS` from the repository root, showing the command first."""
    print("$ python", shlex.join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def tensorboard_grids(run_dir: Path) -> list[tuple[int, "Image.Image"]]:
    """The (epoch, picture) pairs the GAN logged as "samples", in epoch order."""
    import io

    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})  # 0: keep every image
    events.Reload()
    return [(e.step, Image.open(io.BytesIO(e.encoded_image_string)).convert("L"))
            for e in events.Images("samples")]


def grids_strip(grids: list[tuple[int, "Image.Image"]], titles: list[str], out: Path, columns: int) -> None:
    """Grids side by side, each titled, as one PNG (made without pyplot)."""
    from matplotlib.figure import Figure

    rows = -(-len(grids) // columns)
    figure = Figure(figsize=(2.4 * columns, 3.1 * rows), dpi=80, layout="constrained")
    for i, ((_, image), title) in enumerate(zip(grids, titles)):
        ax = figure.add_subplot(rows, columns, i + 1)
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    figure.savefig(out, bbox_inches="tight", pad_inches=0.05)
    _to_greyscale(out)
    print(f"wrote {out.relative_to(ROOT)}")


def _to_greyscale(path: Path) -> None:
    """Rewrite a picture as 8-bit greyscale: a third of the size of matplotlib's RGBA, same look."""
    from PIL import Image

    Image.open(path).convert("L").save(path, optimize=True)


def collapsed_gan(checkpoint: Path, data_dir: str, logdir: str) -> tuple["Image.Image", "Image.Image", float, float]:
    """Train a trained GAN's generator for one more epoch against a frozen discriminator.

    Against a discriminator that no longer learns (no updates, batch norm in eval mode), the
    generator's best move is to draw the one image per class that this discriminator likes
    most, whatever the noise: mode collapse, provoked on purpose. Returns the fixed-noise grids
    before and after, and the spread of each: the pixel standard deviation across the samples
    of one class, averaged over pixels and classes (near 0 when they are all the same image).
    """
    import lightning as L
    import torch

    from mnist_pl import GAN, MNISTDataModule

    class FrozenDiscriminatorGAN(GAN):
        """A GAN whose discriminator stays as it is."""

        def training_step(self, batch, batch_idx):
            self.discriminator.eval()  # Lightning puts it back in train mode each epoch
            self.optimizers()[1].param_groups[0]["lr"] = 0.0
            return super().training_step(batch, batch_idx)

    def grid(model: GAN) -> "Image.Image":
        from PIL import Image

        array = model.sample_grid().mul(255).round().byte().permute(1, 2, 0).numpy()
        return Image.fromarray(array).convert("L")

    def spread(model: GAN) -> float:
        images = model.generate(model.fixed_noise, model.fixed_labels)
        labels = model.fixed_labels if model.fixed_labels is not None else torch.zeros(len(images))
        return float(torch.stack([images[labels == c].std(0).mean() for c in labels.unique()]).mean())

    L.seed_everything(0, verbose=False)
    model = FrozenDiscriminatorGAN.load_from_checkpoint(checkpoint, map_location="cpu")
    model.hparams.ema_decay = 0.0  # show the generator as it is after each step, not an average
    before, before_spread = grid(model), spread(model)
    print(f"training {checkpoint}'s generator for 1 more epoch against its frozen discriminator", flush=True)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_model_summary=False, default_root_dir=logdir)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=data_dir, batch_size=64, normalize="symmetric"))
    return before, grid(model), before_spread, spread(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/mnist-subset", help="folder with the IDX files")
    parser.add_argument("--logdir", default="runs/docs", help="where the GAN run goes")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the GAN run (20: the shipped config)")
    parser.add_argument("--gan-run", help="reuse this GAN run directory instead of training one")
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)

    run("-m", "mnist_pl", "show", "--data-dir", args.data_dir, "--num", "16",
        "--out", "docs/images/workshop_show.png")
    run("-m", "mnist_pl", "show", "--data-dir", args.data_dir, "--split", "test", "--num", "40", "--random",
        "--out", "docs/images/gan_real.png")

    if args.gan_run:
        gan_run = Path(args.gan_run)
    else:
        logdir = Path(args.logdir) / "gan"
        before = set(logdir.glob("version_*"))
        run("train.py", "--model", "gan", "--data-dir", args.data_dir, "--max-epochs", str(args.epochs),
            "--logdir", args.logdir)
        gan_run = max(set(logdir.glob("version_*")) - before, key=lambda p: int(p.name.split("_")[1]))
    run("-m", "mnist_pl", "generate", "--checkpoint", str(gan_run / "checkpoints" / "last.ckpt"),
        "--num", "100", "--seed", "1", "--out", "docs/images/gan_generated.png")

    grids = tensorboard_grids(ROOT / gan_run)
    gif = IMAGES / "gan_epochs.gif"
    # 16 grey levels: the frames compress far better, and look the same at this size
    first, *rest = [image.quantize(16) for _, image in grids]
    first.save(gif, save_all=True, append_images=rest, duration=700, loop=0, optimize=True)
    print(f"wrote {gif.relative_to(ROOT)} ({len(grids)} epochs)")
    picked = [grids[i] for i in sorted({0, 1, 2, len(grids) // 2, len(grids) - 1}) if i < len(grids)]
    grids_strip(picked, [f"after epoch {epoch + 1}" for epoch, _ in picked], IMAGES / "gan_epochs.png",
                columns=len(picked))

    before, after, before_spread, after_spread = collapsed_gan(gan_run / "checkpoints" / "last.ckpt",
                                                               args.data_dir, args.logdir)
    grids_strip([(0, before), (0, after)],
                [f"trained: spread {before_spread:.2f}", f"+1 epoch, D frozen: spread {after_spread:.2f}"],
                IMAGES / "gan_collapse.png", columns=2)
    print(f"spread of the fixed-noise samples: {before_spread:.3f} before, {after_spread:.3f} after freezing D")


if __name__ == "__main__":
    main()
