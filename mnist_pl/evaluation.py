"""Evaluating a trained classifier on the test split: accuracy, per-class precision and recall,
the confusion matrix, and the mistakes it makes with most confidence."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torchmetrics.functional.classification import (multiclass_confusion_matrix, multiclass_precision,
                                                    multiclass_recall)

from .classifier import ImageClassifier
from .data import MNISTDataModule
from .plots import confusion_matrix_figure, misclassified_figure, save_figure


@dataclass
class Evaluation:
    """A classifier's results on one split. Index lists refer to that split's images."""

    classes: Sequence[str]
    labels: torch.Tensor         # [N] true classes
    probabilities: torch.Tensor  # [N, C] softmax outputs

    @property
    def predictions(self) -> torch.Tensor:
        return self.probabilities.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).float().mean())

    @property
    def confusion(self) -> torch.Tensor:
        """[C, C] counts; rows are true classes, columns predictions."""
        return multiclass_confusion_matrix(self.predictions, self.labels, len(self.classes))

    @property
    def precision(self) -> torch.Tensor:
        return multiclass_precision(self.predictions, self.labels, len(self.classes), average=None)

    @property
    def recall(self) -> torch.Tensor:
        return multiclass_recall(self.predictions, self.labels, len(self.classes), average=None)

    def worst_mistakes(self, num: int) -> torch.Tensor:
        """Indices of up to `num` misclassified images, the most confidently wrong first."""
        wrong = (self.predictions != self.labels).nonzero().flatten()
        confidence = self.probabilities[wrong].max(1).values
        return wrong[confidence.argsort(descending=True)[:num]]

    def as_dict(self) -> dict:
        return {"images": len(self.labels), "accuracy": round(self.accuracy, 6),
                "per_class": {name: {"precision": round(float(p), 6), "recall": round(float(r), 6),
                                     "support": int(n)}
                              for name, p, r, n in zip(self.classes, self.precision, self.recall,
                                                       self.confusion.sum(1))},
                "confusion_matrix": self.confusion.tolist()}

    def report(self) -> str:
        """A table for the terminal."""
        lines = [f"Test accuracy: {self.accuracy:.4f} ({int((self.predictions == self.labels).sum())} of "
                 f"{len(self.labels)} images)", "", f"{'class':<12}{'precision':>10}{'recall':>10}{'images':>8}"]
        for name, p, r, n in zip(self.classes, self.precision, self.recall, self.confusion.sum(1)):
            lines.append(f"{name:<12}{float(p):>10.4f}{float(r):>10.4f}{int(n):>8}")
        return "\n".join(lines)


@torch.no_grad()
def evaluate(model: ImageClassifier, datamodule: MNISTDataModule) -> Evaluation:
    """Run `model` (in eval mode) over the test split of `datamodule`, collecting probabilities."""
    datamodule.setup()
    model.eval()
    device = next(model.parameters()).device
    probabilities, labels = [], []
    for images, batch_labels in datamodule.test_dataloader():
        probabilities.append(model(images.to(device)).softmax(-1).cpu())
        labels.append(batch_labels)
    return Evaluation(datamodule.classes, torch.cat(labels), torch.cat(probabilities))


def write_evaluation(evaluation: Evaluation, images: torch.Tensor, out_dir: str | Path,
                     num_mistakes: int = 36, title: str = "test set") -> dict[str, Path]:
    """metrics.json, confusion_matrix.png and misclassified.png in `out_dir`.

    `images` are the split's uint8 images [N, 1, H, W], in the order of the evaluation.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out_dir / "metrics.json", "confusion_matrix": out_dir / "confusion_matrix.png",
             "misclassified": out_dir / "misclassified.png"}
    paths["metrics"].write_text(json.dumps(evaluation.as_dict(), indent=2) + "\n")
    save_figure(confusion_matrix_figure(evaluation.confusion, evaluation.classes,
                                        f"Confusion matrix, {title}"), paths["confusion_matrix"])
    worst = evaluation.worst_mistakes(num_mistakes)
    save_figure(misclassified_figure(images[worst], evaluation.labels[worst].tolist(),
                                     evaluation.predictions[worst].tolist(),
                                     evaluation.probabilities[worst].max(1).values.tolist(), evaluation.classes,
                                     f"Most confident mistakes, {title} ({len(worst)} of "
                                     f"{int((evaluation.predictions != evaluation.labels).sum())})"),
                paths["misclassified"])
    return paths
