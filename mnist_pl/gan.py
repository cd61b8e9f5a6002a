"""The GAN LightningModule: a generator and a discriminator trained in turn (manual optimisation).

Three variants, chosen by constructor arguments (so by config keys): the workshop's fully
connected GAN (`arch="fc"`), a DCGAN-style convolutional GAN (`arch="dcgan"`, the default), and
either of them class-conditional (`conditional=True`), which draws the digit it is asked for.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence, cast

import lightning as L
import torch
import torch.nn.functional as F
import torchvision
from lightning.pytorch.core.optimizer import LightningOptimizer

from .augment import random_affine
from .clusters import kmeans, nearest_centre
from .ema import update_moving_average
from .errors import ArgumentValueError, UserError
from .exportable import Exportable, NoiseToPixels
from .module import MNISTModule
from .nets import IMAGE_PIXELS, DCGANDiscriminator, DCGANGenerator, Discriminator, Generator
from .normalization import Normalization
from .optim import build_optimizer
from .rules import Length, Seed, at_least, between, check_arguments, positive


class GAN(MNISTModule):
    """A generative adversarial network that draws 28x28 digits in [-1, 1].

    Train it on data normalised to [-1, 1] (MNISTDataModule(normalize="symmetric")), the range
    of the generator's Tanh. An exponential moving average (EMA) of the generator's weights,
    `generator_ema`, draws every sample, grid and quality number: it is smoother than the
    generator of the last step. Every epoch a grid drawn from fixed noise goes to TensorBoard as
    "samples" (one row per class for a conditional GAN). Sample-quality numbers come from the
    SampleQuality callback (mnist_pl.callbacks), which train() adds when the config's `quality`
    section names an evaluator.

    Args:
        arch: "dcgan" (convolutional) or "fc" (fully connected, the workshop's GAN).
        conditional: draw a requested class: the generator takes a class with its noise and the
            discriminator judges image and class together.
        num_classes: classes of a conditional GAN.
        latent_dim: size of the noise vector the generator starts from.
        generator_channels: dcgan: channels of the generator's 7x7 and 14x14 feature maps.
        discriminator_channels: dcgan: channels of the discriminator's 14x14 and 7x7 maps.
        generator_hidden: fc: widths of the generator's hidden layers.
        discriminator_hidden: fc: widths of the discriminator's hidden layers.
        dropout: fc: dropout in the discriminator.
        loss: "bce" (the non-saturating GAN loss of the original paper and DCGAN) or "hinge"
            (SN-GAN's: the discriminator pushes real logits above 1 and generated ones below -1).
        spectral_norm: spectral normalisation of the discriminator's layers (instead of its
            batch norm in a DCGAN), which keeps its gradients tame.
        minibatch_std: dcgan: the discriminator also sees how varied each batch is, which
            pushes the generator to draw every kind of digit.
        augment: differentiable augmentation (DiffAugment): every image the discriminator sees,
            real or generated, is randomly shifted, turned and scaled first, so that a small
            training set does not let it memorise the real digits.
        clusters: unconditional: sort the training images into this many clusters of look-alikes
            (k-means on their pixels, at the start of training; no labels used) and train as a
            conditional GAN on them: the discriminator judges each image with its cluster, and
            the generator reads a cluster from its noise, each in its share of the training
            images. It still draws from noise alone, but learns as fast as a conditional GAN
            (cluster-conditioned GANs; 0: none).
        lr: learning rate of the generator's Adam optimiser (and the discriminator's, unless
            lr_d is set).
        lr_d: learning rate of the discriminator (two time-scale updates, TTUR); None: lr.
        betas: Adam's betas; beta1 = 0.5 is the proven choice for GANs.
        real_label: bce: target for real images in the discriminator loss; 0.9 is one-sided
            label smoothing, which keeps the discriminator from growing overconfident.
        ema_decay: weight of the old average at each generator step (0 = no averaging). The
            first steps use less, (1 + step) / (10 + step), so that the random initial weights
            fade quickly.
        num_samples: images in the fixed-noise grid; a conditional GAN draws num_samples //
            num_classes of each class, one row per class.
        sample_seed: seed of the fixed noise, so that grids compare across epochs and runs (None:
            0; train.py passes the run's seed).
    """

    data_normalize = "symmetric"  # the range of the generator's Tanh
    ddp_find_unused_parameters = True  # each of its two steps leaves the other network without gradients

    generator: Generator | DCGANGenerator
    generator_ema: Generator | DCGANGenerator
    discriminator: Discriminator | DCGANDiscriminator
    # buffers (register_buffer), declared here for type checkers
    cluster_centres: torch.Tensor | None
    ema_steps: torch.Tensor
    fixed_noise: torch.Tensor
    fixed_labels: torch.Tensor | None

    def __init__(self, arch: Literal["fc", "dcgan"] = "dcgan", conditional: bool = False,
                 num_classes: Annotated[int, at_least(2)] = 10, latent_dim: Annotated[int, at_least(1)] = 64,
                 generator_channels: Annotated[Sequence[int], at_least(1), Length(2, "7x7 and 14x14 feature maps")]
                 = (128, 64),
                 discriminator_channels: Annotated[Sequence[int], at_least(1),
                                                   Length(2, "14x14 and 7x7 feature maps")] = (64, 128),
                 generator_hidden: Annotated[Sequence[int], at_least(1)] = (256, 512, 1024),
                 discriminator_hidden: Annotated[Sequence[int], at_least(1)] = (512, 256),
                 dropout: Annotated[float, between(0, 1, high_open=True)] = 0.3,
                 loss: Literal["bce", "hinge"] = "bce", spectral_norm: bool = False, minibatch_std: bool = False,
                 augment: bool = False, clusters: Annotated[int, at_least(0)] = 0,
                 lr: Annotated[float, positive()] = 2e-4, lr_d: Annotated[float, positive()] | None = None,
                 betas: Annotated[Sequence[float], between(0, 1, high_open=True), Length(2, "Adam's beta1 and beta2")]
                 = (0.5, 0.999),
                 real_label: Annotated[float, between(0, 1, low_open=True)] = 0.9,
                 ema_decay: Annotated[float, between(0, 1, high_open=True)] = 0.999,
                 num_samples: Annotated[int, at_least(1)] = 80, sample_seed: Seed | None = 0):
        check_arguments(GAN, locals(), type(self).__name__)
        super().__init__()
        name = type(self).__name__
        if minibatch_std and arch != "dcgan":
            raise ArgumentValueError(name, {"minibatch_std": minibatch_std, "arch": arch},
                                     "minibatch_std needs arch dcgan (the fc discriminator has no feature maps).")
        if clusters and conditional:
            raise ArgumentValueError(name, {"clusters": clusters, "conditional": conditional},
                                     "clusters is for an unconditional GAN (a conditional one learns from the "
                                     "classes); set clusters to 0 or conditional to false.")
        self.save_hyperparameters()
        self.automatic_optimization = False
        classes = num_classes if conditional else clusters
        if arch == "dcgan":
            self.generator = DCGANGenerator(latent_dim, generator_channels, classes, bool(clusters))
            self.discriminator = DCGANDiscriminator(discriminator_channels, classes,
                                                               spectral_norm, minibatch_std)
        else:
            self.generator = Generator(latent_dim, generator_hidden, classes, bool(clusters))
            self.discriminator = Discriminator(discriminator_hidden, dropout, classes, spectral_norm)
        # the clusters' centres, flattened images; all zero until fit_clusters
        self.register_buffer("cluster_centres", torch.zeros(clusters, IMAGE_PIXELS) if clusters else None)
        # The average is a module of its own, so checkpoints save and restore it with the rest.
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

        seed = torch.Generator().manual_seed(sample_seed or 0)
        if conditional:
            per_class = max(1, num_samples // num_classes)
            fixed_labels = torch.arange(num_classes).repeat_interleave(per_class)
            self.grid_columns = per_class
        else:
            fixed_labels = None
            self.grid_columns = 8
        count = len(fixed_labels) if fixed_labels is not None else num_samples
        self.register_buffer("fixed_noise", torch.randn(count, latent_dim, generator=seed))
        self.register_buffer("fixed_labels", fixed_labels)
        self.example_input_array = ((torch.zeros(2, latent_dim), torch.zeros(2, dtype=torch.long))
                                    if conditional else torch.zeros(2, latent_dim))
        self._last_losses: torch.Tensor | None = None  # discriminator's and generator's, for the bar
        self._train_sums, self._train_images = torch.zeros(4), 0  # reset at each epoch's start

    # ------------------------------------------------------------------ drawing digits

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1], [N, 1, 28, 28], for latent vectors [N, latent_dim] (and classes [N])."""
        return self.generator(noise, labels)

    def make_labels(self, num: int, digit: int | None = None) -> torch.Tensor | None:
        """Class labels for `num` samples: all `digit`, or 0, 1, ..., 9, 0, ... when it is None.

        None for an unconditional GAN, which cannot be asked for a digit (a UserError).
        """
        if not self.hparams.conditional:
            if digit is not None:
                raise UserError(f"this GAN is unconditional, so it cannot draw the digit {digit} on "
                                "request; train one with model.conditional: true, or leave out the digit.")
            return None
        if digit is not None and not 0 <= digit < self.hparams.num_classes:
            raise UserError(f"digit {digit} is outside 0-{self.hparams.num_classes - 1}.")
        if digit is not None:
            return torch.full((num,), digit, dtype=torch.long)
        return torch.arange(num) % self.hparams.num_classes

    @torch.no_grad()
    def sample(self, num: int, digit: int | None = None, generator: torch.Generator | None = None,
               use_ema: bool = True) -> torch.Tensor:
        """`num` new images in [-1, 1], [num, 1, 28, 28], drawn in eval mode.

        `digit` asks a conditional GAN for one class (default: the classes in turn). The noise is
        drawn on the CPU from `generator`, so a seed gives the same digits on any device.
        """
        noise = torch.randn(num, self.hparams.latent_dim, generator=generator)
        return self.generate(noise, self.make_labels(num, digit), use_ema)

    @torch.no_grad()
    def generate(self, noise: torch.Tensor, labels: torch.Tensor | None = None,
                 use_ema: bool = True) -> torch.Tensor:
        """Images for given noise (and labels), by the EMA generator in eval mode by default."""
        net = self.generator_ema if use_ema else self.generator
        was_training = net.training
        net.eval()
        labels = labels.to(self.device) if labels is not None else None
        images = net(noise.to(self.device), labels)
        net.train(was_training)
        return images

    def exportable(self, normalization: Normalization, classes: Sequence[str]) -> Exportable:
        """The EMA generator for use outside mnist-pl: standard normal noise [N, latent_dim]
        (and, if conditional, the classes [N] as int64) in, images [N, 1, 28, 28] in [0, 1] (light
        digit on black) out; the training data's `normalization`, undone."""
        module = NoiseToPixels(copy.deepcopy(self.generator_ema).cpu().eval(), normalization)
        inputs = {"noise": torch.randn(2, self.hparams.latent_dim)}
        metadata = {"input.noise": f"float32 [batch, {self.hparams.latent_dim}]: standard normal noise",
                    "output.images": "float32 [batch, 1, 28, 28] in [0, 1]: light digit on black"}
        if self.hparams.conditional:
            inputs["digit"] = torch.arange(2) % self.hparams.num_classes
            metadata["input.digit"] = f"int64 [batch]: the class to draw, 0-{self.hparams.num_classes - 1}"
            metadata["classes"] = json.dumps(list(classes))
        return Exportable(module, inputs, "images", metadata)

    def sample_grid(self) -> torch.Tensor:
        """The fixed-noise images as one [3, H, W] grid in [0, 1] (a row per class if conditional)."""
        images = self.generate(self.fixed_noise, self.fixed_labels)
        return torchvision.utils.make_grid(images, nrow=self.grid_columns, normalize=True, value_range=(-1, 1))

    # ------------------------------------------------------------------ training

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.cluster_centres is not None and not self.cluster_centres.any():  # not restored from a checkpoint
            train_set = getattr(getattr(self.trainer, "datamodule", None), "train_set", None)
            if train_set is None:
                raise UserError("model.clusters needs the training images: train with an MNISTDataModule.")
            self.fit_clusters(train_set.normalised_images())

    @torch.no_grad()
    def fit_clusters(self, images: torch.Tensor) -> None:
        """Sort `images` (as the training batches come: normalised) into `clusters` clusters, and
        make the generators read each cluster from the noise in its share of them."""
        points = images.to(self.device).flatten(1).float()
        centres, assigned = kmeans(points, self.hparams.clusters, seed=self.hparams.sample_seed or 0)
        self._centres().copy_(centres)
        shares = torch.bincount(assigned, minlength=len(centres)).float() / len(points)
        for generator in (self.generator, self.generator_ema):
            generator.set_class_shares(shares)

    def cluster_of(self, images: torch.Tensor) -> torch.Tensor:
        """The cluster of each image [N, 1, 28, 28]: the index of its nearest centre."""
        return nearest_centre(images.flatten(1).float(), self._centres())

    def _centres(self) -> torch.Tensor:
        if self.cluster_centres is None:
            raise ValueError("this GAN has no clusters: build it with clusters > 0")
        return self.cluster_centres

    def on_train_epoch_start(self) -> None:
        self.start_epoch_sums(4)  # image-weighted sums of loss_d, loss_g, D(x) and D(G(z)) this epoch

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real = batch[0]
        real_labels: torch.Tensor | None = batch[1]
        fake_labels: torch.Tensor | None
        every = self.trainer.log_every_n_steps  # type: ignore[attr-defined]  # (read before this batch counts)
        log_step = every > 0 and (self.global_step + 1) % every == 0
        opt_g, opt_d = cast("list[LightningOptimizer]", self.optimizers())
        n = real.shape[0]
        noise = torch.randn(n, self.hparams.latent_dim, device=self.device)
        if self.hparams.conditional:
            fake_labels = torch.randint(0, self.hparams.num_classes, (n,), device=self.device)
        elif self.hparams.clusters:  # the clusters stand in for classes
            real_labels, fake_labels = self.cluster_of(real), self.generator.code_of(noise)
        else:
            real_labels = fake_labels = None
        fake = self.generator(noise, fake_labels)

        # Discriminator: tell real images from generated ones.
        with self.toggled_optimizer(opt_d):
            logits_real = self.judge(real, real_labels)
            logits_fake = self.judge(fake.detach(), fake_labels)
            loss_d = self.discriminator_loss(logits_real, logits_fake)
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            # through the strategy (precision, scaling) but not LightningOptimizer.step, which
            # would count a second training step per batch: max_steps and logging count batches
            self.trainer.strategy.optimizer_step(opt_d.optimizer, closure=lambda: None)

        # Generator: make the discriminator call its images real.
        with self.toggled_optimizer(opt_g):
            logits_gen = self.judge(fake, fake_labels)
            loss_g = self.generator_loss(logits_gen)
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()
        self.update_ema()

        # as in ImageClassifier: epoch sums on the device, and self.log (costly bookkeeping in
        # Lightning) only on the steps the logger records
        with torch.no_grad():
            stats = torch.stack([loss_d, loss_g, logits_real.sigmoid().mean(), logits_fake.sigmoid().mean()])
        self._train_sums += stats * n
        self._train_images += n
        self._last_losses = stats[:2]
        if log_step:
            self.log_dict({"train/loss_d_step": loss_d, "train/loss_g_step": loss_g})

    def judge(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The discriminator's logits (real > 0), on randomly moved images if `augment`."""
        return self.discriminator(random_affine(images) if self.hparams.augment else images, labels)

    def discriminator_loss(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "hinge":
            return F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean()
        # real images towards real_label, generated ones towards 0
        return (F.binary_cross_entropy_with_logits(logits_real, torch.full_like(logits_real, self.hparams.real_label))
                + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))

    def generator_loss(self, logits_gen: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "hinge":
            return -logits_gen.mean()
        return F.binary_cross_entropy_with_logits(logits_gen, torch.ones_like(logits_gen))  # non-saturating

    def update_ema(self) -> None:
        """Move generator_ema towards the generator (after each generator step)."""
        update_moving_average(self.generator_ema, self.generator, self.ema_steps, self.hparams.ema_decay)

    def running_metrics(self) -> dict[str, float]:
        """The latest step's losses, for the progress bar."""
        if self._last_losses is None:
            return {}
        loss_d, loss_g = self._last_losses.tolist()
        return {"loss_d": loss_d, "loss_g": loss_g}

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = build_optimizer("adam", self.generator.parameters(), hp.lr, betas=hp.betas)
        opt_d = build_optimizer("adam", self.discriminator.parameters(), hp.lr_d or hp.lr, betas=hp.betas)
        return [opt_g, opt_d]

    def on_train_epoch_end(self) -> None:
        means = (self._train_sums / max(self._train_images, 1)).unbind()
        self.log_dict(dict(zip(("train/loss_d_epoch", "train/loss_g_epoch", "train/d_real", "train/d_fake"), means)),
                      sync_dist=True)
        experiment = getattr(self.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image("samples", self.sample_grid(), global_step=self.current_epoch)

    def finish_run(self, trainer: L.Trainer, datamodule: L.LightningDataModule, best_checkpoint: str | None,
                   run_dir: Path | None) -> dict[str, Any]:
        """A GAN has no test metrics: a finished run saves samples.png, its fixed-noise grid."""
        if run_dir is None or not trainer.is_global_zero:
            return {}
        samples = run_dir / "samples.png"
        torchvision.utils.save_image(self.sample_grid(), samples)
        return {"samples": str(samples)}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Nothing to compute: the held-out real digits pass by for callbacks such as
        mnist_pl.callbacks.SampleQuality, which compares samples with them."""
