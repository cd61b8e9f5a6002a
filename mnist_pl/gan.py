"""The GAN LightningModule: a generator and a discriminator trained in turn (manual optimisation)."""

from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
import torch.nn.functional as F
import torchvision

from .nets import Discriminator, Generator
from .optim import build_optimizer


class GAN(L.LightningModule):
    """A generative adversarial network that draws 28x28 digits in [-1, 1].

    Train it on data normalised to [-1, 1] (MNISTDataModule(normalize="symmetric")), the range
    of the generator's Tanh. Every epoch a grid drawn from a fixed latent batch, in eval mode,
    goes to TensorBoard as "samples".

    Args:
        latent_dim: size of the noise vector the generator starts from.
        generator_hidden: widths of the generator's hidden layers.
        discriminator_hidden: widths of the discriminator's hidden layers.
        dropout: dropout in the discriminator.
        lr: learning rate of both Adam optimisers.
        betas: Adam's betas; beta1 = 0.5 is the proven choice for GANs.
        real_label: target for real images in the discriminator loss; 0.9 is one-sided label
            smoothing, which keeps the discriminator from growing overconfident.
        num_samples: images in the fixed-noise grid.
        sample_seed: seed of the fixed noise, so that grids compare across epochs and runs.
    """

    def __init__(self, latent_dim: int = 64, generator_hidden: Sequence[int] = (256, 512, 1024),
                 discriminator_hidden: Sequence[int] = (512, 256), dropout: float = 0.3,
                 lr: float = 2e-4, betas: Sequence[float] = (0.5, 0.999), real_label: float = 0.9,
                 num_samples: int = 64, sample_seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(latent_dim, generator_hidden)
        self.discriminator = Discriminator(discriminator_hidden, dropout)
        fixed = torch.randn(num_samples, latent_dim, generator=torch.Generator().manual_seed(sample_seed))
        self.register_buffer("fixed_noise", fixed)
        self.example_input_array = torch.zeros(2, latent_dim)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], [N, 1, 28, 28], for latent vectors [N, latent_dim]."""
        return self.generator(noise)

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`num` new images in [-1, 1], drawn with the generator in eval mode."""
        noise = torch.randn(num, self.hparams.latent_dim, generator=generator).to(self.device)
        return self._eval_generate(noise)

    def _eval_generate(self, noise: torch.Tensor) -> torch.Tensor:
        was_training = self.generator.training
        self.generator.eval()
        with torch.no_grad():
            images = self.generator(noise)
        self.generator.train(was_training)
        return images

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        noise = torch.randn(real.shape[0], self.hparams.latent_dim, device=self.device)
        fake = self.generator(noise)

        # Discriminator: real images towards real_label, generated ones towards 0.
        with self.toggled_optimizer(opt_d):
            logits_real = self.discriminator(real)
            logits_fake = self.discriminator(fake.detach())
            loss_d = (F.binary_cross_entropy_with_logits(logits_real, torch.full_like(logits_real, self.hparams.real_label))
                      + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            opt_d.step()

        # Generator: make the discriminator call its images real (the non-saturating loss).
        with self.toggled_optimizer(opt_g):
            logits_gen = self.discriminator(fake)
            loss_g = F.binary_cross_entropy_with_logits(logits_gen, torch.ones_like(logits_gen))
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()

        self.log_dict({"train/loss_d": loss_d, "train/loss_g": loss_g}, on_step=True, on_epoch=True)
        self.log_dict({"train/d_real": logits_real.detach().sigmoid().mean(),
                       "train/d_fake": logits_fake.detach().sigmoid().mean()},
                      on_step=False, on_epoch=True)

    def sample_grid(self) -> torch.Tensor:
        """The fixed-noise images as one [3, H, W] grid in [0, 1]."""
        images = self._eval_generate(self.fixed_noise)
        return torchvision.utils.make_grid(images, nrow=8, normalize=True, value_range=(-1, 1))

    def on_train_epoch_end(self) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image("samples", self.sample_grid(), global_step=self.current_epoch)

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = build_optimizer("adam", self.generator.parameters(), hp.lr, betas=hp.betas)
        opt_d = build_optimizer("adam", self.discriminator.parameters(), hp.lr, betas=hp.betas)
        return [opt_g, opt_d]
