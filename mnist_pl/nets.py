"""Plain nn.Modules, free of Lightning: the dense classifier, the CNN, and the GAN's two halves.

Each takes 1x28x28 images; the LightningModules in classifier.py and gan.py train them. The
generators and discriminators come fully connected (the workshop's GAN) and convolutional
(DCGAN), each optionally class-conditional: `num_classes > 0` makes the generator take a digit
class with its noise and the discriminator judge an image together with its class.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ActivationName = Literal["relu", "gelu", "silu", "tanh", "leaky_relu", "elu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh,
               "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}
IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


def activation(name: ActivationName) -> nn.Module:
    """A fresh activation layer by name (see ACTIVATIONS)."""
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """Flatten, then Linear (-> batch norm) -> activation -> dropout for each hidden size, then
    the class logits."""

    def __init__(self, hidden_sizes: Sequence[int] = (512, 256), num_classes: int = 10,
                 dropout: float = 0.2, activation_name: ActivationName = "relu", batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = IMAGE_PIXELS
        for size in hidden_sizes:
            # the linear layer's bias is redundant when batch norm follows it
            layers.append(nn.Linear(width, size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers += [activation(activation_name), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvNet(nn.Module):
    """VGG-style blocks of 3x3 convolutions (+ batch norm) and a 2x2 max-pool, then a head.

    `channels` gives one block per entry: (32, 64) maps 28x28 -> 14x14 -> 7x7.
    `convs_per_block`: how many convolutions each block has, one number for all blocks or one
    per block.
    """

    def __init__(self, channels: Sequence[int] = (32, 64), hidden_size: int = 128,
                 num_classes: int = 10, dropout: float = 0.3, batch_norm: bool = True,
                 activation_name: ActivationName = "relu", convs_per_block: int | Sequence[int] = 2):
        super().__init__()
        convs = [convs_per_block] * len(channels) if isinstance(convs_per_block, int) else list(convs_per_block)
        layers: list[nn.Module] = []
        in_ch, side = IMAGE_SHAPE[0], IMAGE_SHAPE[1]
        for out_ch, n_convs in zip(channels, convs, strict=True):
            for conv_in in [in_ch] + [out_ch] * (n_convs - 1):
                # the conv bias is redundant when batch norm follows it
                layers.append(nn.Conv2d(conv_in, out_ch, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out_ch))
                layers.append(activation(activation_name))
            layers.append(nn.MaxPool2d(2))
            in_ch, side = out_ch, side // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_ch * side * side, hidden_size),
            activation(activation_name),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _ClassConditioning(nn.Module):
    """A generator's optional class input: a one-hot vector appended to the noise.

    With `code_from_noise`, a class that is not given is read from the noise itself (code_of),
    so that the generator draws from noise alone, every class in its share.
    """

    num_classes: int
    code_edges: torch.Tensor | None

    def _read_code_from_noise(self, code_from_noise: bool) -> None:
        # until set_class_shares: equal shares
        edges = torch.special.ndtri(torch.arange(1, self.num_classes) / self.num_classes) if code_from_noise else None
        self.register_buffer("code_edges", edges)

    def code_of(self, noise: torch.Tensor) -> torch.Tensor:
        """The class that each noise vector [N, latent_dim] stands for: where its first entry falls
        among `code_edges`, quantiles of the standard normal, so class c comes up with its share."""
        return (noise[:, :1] > self._edges().to(noise.dtype)).sum(1)

    @torch.no_grad()
    def set_class_shares(self, shares: torch.Tensor) -> None:
        """How often code_of gives each class: `shares` [num_classes], summing to 1."""
        cumulative = shares.double().cumsum(0)[:-1].clamp(1e-9, 1 - 1e-9)
        edges = self._edges()
        edges.copy_(torch.special.ndtri(cumulative).to(edges))

    def _edges(self) -> torch.Tensor:
        if self.code_edges is None:
            raise ValueError("this generator reads no class from its noise (built with code_from_noise=False)")
        return self.code_edges

    def _one_hot(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """One-hot labels to append to the noise, None for an unconditional model."""
        if self.num_classes == 0:
            return None
        if labels is None:
            raise ValueError("this conditional model needs the class labels of its inputs")
        return F.one_hot(labels.long(), self.num_classes).float().expand(batch, -1)

    def _with_labels(self, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None and self.code_edges is not None:
            labels = self.code_of(noise)
        one_hot = self._one_hot(labels, noise.shape[0])
        return noise if one_hot is None else torch.cat([noise, one_hot], 1)


class _ProjectionHead(nn.Module):
    """A discriminator's last layer: logit = w . h (+ embed(y) . h for a conditional model).

    The projection discriminator (Miyato & Koyama, 2018) checks that an image fits its class
    more reliably than feeding the class in as an extra input.
    """

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.embedding = nn.Embedding(num_classes, features) if num_classes else None
        if self.embedding is not None:  # small, as DCGAN's weights: N(0, 1) swamps the logit at the start
            nn.init.normal_(self.embedding.weight, 0.0, 0.02)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        logits = self.linear(h).squeeze(1)
        if self.embedding is not None:
            if labels is None:
                raise ValueError("this conditional discriminator needs the class labels of its inputs")
            logits = logits + (self.embedding(labels.long()) * h).sum(1)
        return logits


class Generator(_ClassConditioning):
    """Latent vector (+ class) -> 1x28x28 image in [-1, 1] (Tanh), fully connected as in the workshop."""

    def __init__(self, latent_dim: int = 64, hidden_sizes: Sequence[int] = (256, 512, 1024),
                 num_classes: int = 0, code_from_noise: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim + num_classes
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.LeakyReLU(0.2)]
            width = size
        layers += [nn.Linear(width, IMAGE_PIXELS), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self._read_code_from_noise(code_from_noise)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.layers(self._with_labels(z, labels)).view(-1, *IMAGE_SHAPE)


class Discriminator(nn.Module):
    """1x28x28 image (+ class) -> one logit (real > 0), fully connected with LeakyReLU and dropout.

    `spectral_norm` divides each weight by its largest singular value (see spectral_normalized).
    """

    def __init__(self, hidden_sizes: Sequence[int] = (512, 256), dropout: float = 0.3,
                 num_classes: int = 0, spectral_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = IMAGE_PIXELS
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        self.layers = nn.Sequential(*layers)
        self.head = _ProjectionHead(width, num_classes)
        if spectral_norm:
            spectral_normalized(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.layers(x), labels)


class DCGANGenerator(_ClassConditioning):
    """Latent vector (+ class) -> 1x28x28 image in [-1, 1], by transposed convolutions (DCGAN).

    A linear layer makes a 7x7 map of `channels[0]` channels; a stride-2 transposed convolution
    (+ batch norm, ReLU) doubles it to 14x14 with `channels[1]`, and a last one draws the 28x28
    image.
    """

    def __init__(self, latent_dim: int = 64, channels: Sequence[int] = (128, 64), num_classes: int = 0,
                 code_from_noise: bool = False):
        super().__init__()
        c0, c1 = channels
        self.project = nn.Sequential(nn.Linear(latent_dim + num_classes, c0 * 7 * 7, bias=False),
                                     nn.BatchNorm1d(c0 * 7 * 7), nn.ReLU())
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(c0, c1, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.ConvTranspose2d(c1, IMAGE_SHAPE[0], 4, stride=2, padding=1), nn.Tanh())
        self.latent_dim, self.num_classes, self.c0 = latent_dim, num_classes, c0
        self._read_code_from_noise(code_from_noise)
        init_dcgan(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(self._with_labels(z, labels)).view(-1, self.c0, 7, 7)
        return self.upsample(h)


class MinibatchStd(nn.Module):
    """Appends one feature map: the standard deviation of each feature across the batch, averaged.

    A discriminator that sees how varied a batch is can tell a generator that draws few kinds of
    digit from real data (Karras et al., 2018), which pushes the generator to draw them all.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = x.std(0, unbiased=False).mean().expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([x, spread], 1)


class DCGANDiscriminator(nn.Module):
    """1x28x28 image (+ class) -> one logit: stride-2 convolutions with LeakyReLU (DCGAN).

    28x28 -> 14x14 -> 7x7 with `channels` = (c0, c1); batch norm on the second convolution
    only, as in DCGAN (never on the layer that sees the raw images). `spectral_norm` replaces
    that batch norm by spectral normalisation of every layer (SN-GAN); `minibatch_std` adds a
    MinibatchStd map to the 7x7 features.
    """

    def __init__(self, channels: Sequence[int] = (64, 128), num_classes: int = 0,
                 spectral_norm: bool = False, minibatch_std: bool = False):
        super().__init__()
        c0, c1 = channels
        layers: list[nn.Module] = [
            nn.Conv2d(IMAGE_SHAPE[0], c0, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(c0, c1, 4, stride=2, padding=1, bias=spectral_norm)]
        if not spectral_norm:
            layers.append(nn.BatchNorm2d(c1))
        layers.append(nn.LeakyReLU(0.2))
        if minibatch_std:
            layers.append(MinibatchStd())
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = _ProjectionHead((c1 + minibatch_std) * 7 * 7, num_classes)
        init_dcgan(self)
        if spectral_norm:
            spectral_normalized(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), labels)


def spectral_normalized(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al., 2018) of every linear and convolutional layer of
    `module`, in place: each weight divided by its largest singular value (one power iteration
    a step), which keeps a discriminator's gradients tame without batch norm."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(layer)
    return module


def init_dcgan(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
