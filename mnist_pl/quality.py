"""How good are generated digits? Numbers from mnist-pl's own trained classifier, offline.

Inception-based metrics need a network trained on the images in question, so here the judge
(`Evaluator`) is a classifier checkpoint trained by mnist-pl, usually the CNN
(`python train.py --model cnn`):

- classifier score: the Inception Score with the classifier's softmax, exp(E KL(p(y|x) || p(y)))
  over all samples in one split. Near 10 for confident digits of all ten classes; 1 for a
  collapsed set (every image alike).
- Fréchet distance: torchmetrics' FrechetInceptionDistance on the classifier's penultimate layer
  (the input of its last linear layer, 128 features for the default CNN), generated against
  held-out real images. Lower is better; identical sets give 0.
- class fractions: the share of samples the classifier puts in each class, and its minimum, to
  catch mode collapse (a uniform generator gives 0.1 each).
- conditional accuracy: for a conditional GAN, the share of samples classified as the digit
  that was asked for.

Train the evaluator without label smoothing: smoothing caps the classifier's confidence, and
with it the score. Real held-out digits against real training digits (`noise_floor`) give what a
perfect generator would score, up to sampling noise; figures measured on MNIST are in
docs/gan-quality.md.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore

from .errors import UserError
from .normalization import SYMMETRIC, Normalization

if TYPE_CHECKING:
    from .data import InMemoryImages, MNISTDataModule


class Evaluator:
    """A trained mnist-pl classifier, frozen, that judges images in [-1, 1] (the GAN's range).

    It is not an nn.Module on purpose: a GAN holding one does not train or save it.
    """

    def __init__(self, classifier: nn.Module, normalization: Normalization):
        self.classifier = classifier.eval().requires_grad_(False)
        self.normalization = normalization  # what the classifier was trained with
        # an mnist-pl classifier predicts with its inference_net (the weights' moving average, if kept)
        linears = [m for m in getattr(classifier, "inference_net", classifier).modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise UserError("the evaluator must be a classifier ending in a linear layer.")
        self.last_linear = linears[-1]
        self.num_features = self.last_linear.in_features
        self.num_classes = self.last_linear.out_features

    def to(self, device: torch.device | str) -> "Evaluator":
        self.classifier.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features [N, F], logits [N, C]) for images in [-1, 1], [N, 1, 28, 28]."""
        device = next(self.classifier.parameters()).device
        captured: list[torch.Tensor] = []
        hook = self.last_linear.register_forward_hook(lambda m, inputs, out: captured.append(inputs[0]))
        try:
            logits = [self.classifier(self.normalization(SYMMETRIC.undo(chunk.to(device))))
                      for chunk in images.split(batch_size)]
        finally:
            hook.remove()
        return torch.cat(captured).float(), torch.cat(logits).float()


class _Given(nn.Module):
    """An identity "feature extractor": the evaluator has already run, torchmetrics gets its outputs."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features [N, F] (torchmetrics' FID)."""
    metric = FrechetInceptionDistance(feature=_Given(features_a.shape[1]))
    metric.update(features_a.double().cpu(), real=True)
    metric.update(features_b.double().cpu(), real=False)
    return float(metric.compute())


def classifier_score(logits: torch.Tensor) -> float:
    """Inception Score from class logits [N, C], all samples in one split (torchmetrics)."""
    with warnings.catch_warnings():
        # it warns that it keeps every feature (1,000 x 10 here), and that one split has no std
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        warnings.filterwarnings("ignore", message=".*degrees of freedom.*")
        metric = InceptionScore(feature=nn.Identity(), splits=1)
        metric.update(logits.double().cpu())
        return float(metric.compute()[0])


def sample_quality(evaluator: Evaluator, images: torch.Tensor, real: torch.Tensor | None = None,
                   labels: torch.Tensor | None = None) -> dict[str, Any]:
    """Score `images` in [-1, 1]: see the module docstring for each number.

    Args:
        evaluator: the judge.
        images: the samples, [N, 1, 28, 28] in [-1, 1].
        real: real images in [-1, 1] for the Fréchet distance (skipped when None).
        labels: the classes asked for, [N], for the conditional accuracy (skipped when None).

    Returns:
        {"classifier_score", "min_class_fraction", "class_fractions" (a list, one per class),
        and "frechet_distance" and "conditional_accuracy" when asked for}.
    """
    features, logits = evaluator(images)
    predicted = logits.argmax(1).cpu()
    fractions = torch.bincount(predicted, minlength=evaluator.num_classes).float() / len(predicted)
    result: dict[str, Any] = {"classifier_score": classifier_score(logits),
                              "min_class_fraction": float(fractions.min()),
                              "class_fractions": [round(float(f), 4) for f in fractions]}
    if real is not None:
        result["frechet_distance"] = frechet_distance(evaluator(real)[0], features)
    if labels is not None:
        result["conditional_accuracy"] = float((predicted == labels.cpu()).float().mean())
    return result


def real_digits(datamodule: MNISTDataModule) -> MNISTDataModule:
    """`datamodule`, set up (its splits loaded) if it was not yet: the real digits samples are
    compared with."""
    if datamodule.test_set is None:
        datamodule.setup()
    return datamodule


def pick_real(split: InMemoryImages, num: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [-1, 1] (the range of samples, whatever the data module's normalisation) and
    labels: `num` drawn at random with `seed` from a data module's split, or all of it in order."""
    index = torch.arange(len(split))
    if num is not None and num < len(split):
        index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:num]
    index = index.to(split.labels.device)
    return SYMMETRIC.from_bytes(split.images[index]), split.labels[index]


def noise_floor(evaluator: Evaluator, datamodule: MNISTDataModule, num: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The metrics of `num` real held-out (test) digits against `num` real training digits of
    `datamodule`'s data: what a perfect generator would score, up to sampling noise."""
    return _noise_floor(evaluator, real_digits(datamodule), num, seed)


def _noise_floor(evaluator: Evaluator, real: MNISTDataModule, num: int, seed: int) -> dict[str, Any]:
    test, test_labels = pick_real(real.split("test"), num, seed)
    train, _ = pick_real(real.split("train"), num, seed)
    return sample_quality(evaluator, test, real=train, labels=test_labels)


Draw = Callable[[int, int], tuple[torch.Tensor, "torch.Tensor | None"]]  # (num, seed) -> images, labels asked


def score_over_seeds(evaluator: Evaluator, datamodule: MNISTDataModule, seeds: Sequence[int], num: int = 1000,
                     draw: Draw | None = None, name: str = "generated") -> dict[str, dict[str, Any]]:
    """The noise floor and (given `draw`) the generated samples' metrics for each seed, summarised.

    For each seed, `num` real test digits of `datamodule`'s data are drawn against `num` of its
    real training digits (the noise floor) and, with `draw(num, seed)` giving samples in [-1, 1] and the classes asked for
    (None if unconditional), the samples are scored against the same real test digits.

    Returns:
        {"real test vs train": summary, name: summary}, each summary {metric: {"mean", "min",
        "max"}} over the seeds, with "class_fractions" the mean fraction of each class.
    """
    if not seeds:
        raise UserError("give at least one seed to score with.")
    real = real_digits(datamodule)  # read once: each seed draws its own digits from it
    rows: dict[str, list[dict[str, Any]]] = {"real test vs train": []}
    for seed in seeds:
        rows["real test vs train"].append(_noise_floor(evaluator, real, num, seed))
        if draw is not None:
            images, labels = draw(num, seed)
            test, _ = pick_real(real.split("test"), num, seed)
            rows.setdefault(name, []).append(sample_quality(evaluator, images, real=test, labels=labels))
    return {row: summarise(results) for row, results in rows.items()}


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, min and max of each number over several sample_quality results; the mean of each
    class fraction."""
    summary: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results]
        if key == "class_fractions":
            summary[key] = [round(sum(c) / len(c), 4) for c in zip(*values)]
        else:
            summary[key] = {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}
    return summary


def format_scores(scores: dict[str, dict[str, Any]], seeds: Sequence[int]) -> str:
    """score_over_seeds' result as a table: each number, or over several seeds its mean and
    (min-max), then the class fractions (their means)."""
    spread = len(seeds) > 1

    def cell(figure: dict[str, float] | None, width: int) -> str:
        if figure is None:
            return f"{'-':>{width}}"
        text = f"{figure['mean']:.3f}" + (f" ({figure['min']:.3f}-{figure['max']:.3f})" if spread else "")
        return f"{text:>{width}}"

    widths = (22, 24, 22, 22) if spread else (8, 9, 11, 10)
    lines = [f"{'':<20}" + "".join(f"{title:>{w}}" for title, w in zip(("score", "frechet", "min class", "accuracy"), widths))
             + "  class fractions 0-9"]
    for name, q in scores.items():
        figures = (q["classifier_score"], q["frechet_distance"], q["min_class_fraction"], q.get("conditional_accuracy"))
        lines.append(f"{name:<20}" + "".join(cell(f, w) for f, w in zip(figures, widths))
                     + "  " + " ".join(f"{f:.3f}" for f in q["class_fractions"]))
    if spread:
        lines.append(f"seeds {' '.join(map(str, seeds))}: mean (min-max) of each number, mean class fractions")
    return "\n".join(lines)
