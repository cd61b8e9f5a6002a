"""`mnist-pl score`: its figures against the same figures computed here, on generated digits."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from torch import nn

from mnist_pl import GAN, MNISTDataModule, read_idx
from mnist_pl.cli import main

from conftest import fit_classifier, load_classifier_checkpoint, make_digits


def judged(model: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, logits) of a classifier trained with MNIST's normalisation, for
    uint8-range pixels [N, 28, 28]."""
    captured = []
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    hook = last.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    with torch.no_grad():
        logits = model((pixels.float().unsqueeze(1) / 255 - 0.1307) / 0.3081)
    hook.remove()
    return captured[0].double(), logits.double()


def inception_score(logits: torch.Tensor) -> float:
    """exp(mean KL(p(y|x) || p(y))), written out."""
    p = logits.softmax(1)
    return math.exp(float((p * (p.log() - p.mean(0).log())).sum(1).mean()))


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2), the trace of the root from eigenvalues."""
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ values.clamp(min=0).sqrt().diag() @ vectors.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def collapsed_gan(path, image: torch.Tensor):
    """A checkpoint of a fully connected GAN whose generators' last layer draws `image`
    (in [-1, 1]) whatever the noise."""
    gan = GAN(arch="fc", latent_dim=8, generator_hidden=[16], discriminator_hidden=[16])
    with torch.no_grad():
        for generator in (gan.generator, gan.generator_ema):
            last = [m for m in generator.modules() if isinstance(m, nn.Linear)][-1]
            last.weight.zero_()
            last.bias.copy_(torch.atanh(image.flatten().clamp(-0.999, 0.999)))
    torch.save({"state_dict": gan.state_dict(), "hyper_parameters": dict(gan.hparams)}, path)
    return path


def rows(printed: str) -> dict[str, list[str]]:
    """The table's rows by name: score, frechet, min class, accuracy, then the ten fractions."""
    return {line[:20].strip(): line[20:].split() for line in printed.splitlines()[1:]}


def test_score_table_matches_figures_computed_here(idx_dir, tmp_path, capsys):
    evaluator = fit_classifier(idx_dir, tmp_path / "judge.ckpt")
    digits, _ = make_digits(1, seed=11)  # one bar digit: every generated image is this one
    gan = collapsed_gan(tmp_path / "collapsed.ckpt", digits[0].float() / 127.5 - 1)
    # --num 320: all 64 test images and all 288 of the training split (320 less the 32 of validation)
    assert main(["score", "--evaluator", str(evaluator), "--data-dir", str(idx_dir), "--checkpoint", str(gan),
                 "--num", "320"]) == 0
    table = rows(capsys.readouterr().out)
    assert list(table) == ["real test vs train", "generated"]

    model = load_classifier_checkpoint(evaluator)
    test_features, test_logits = judged(model, read_idx(idx_dir / "t10k-images-idx3-ubyte.gz", 3))
    split = MNISTDataModule(data_dir=idx_dir)
    split.setup()
    assert len(split.train_set) == 288
    train_features, _ = judged(model, split.train_set.images[:, 0])
    labels = read_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", 1).long()
    counts = torch.bincount(test_logits.argmax(1), minlength=10)
    score, distance, smallest, accuracy, *fractions = map(float, table["real test vs train"])
    assert fractions == pytest.approx((counts / 64).tolist(), abs=6e-4) and sum(fractions) == pytest.approx(1, abs=6e-3)
    assert smallest == pytest.approx(float(counts.min()) / 64, abs=6e-4)
    assert accuracy == pytest.approx(float((test_logits.argmax(1) == labels).double().mean()), abs=6e-4)
    assert score == pytest.approx(inception_score(test_logits), abs=6e-4)
    assert distance == pytest.approx(frechet(train_features, test_features), rel=1e-3, abs=6e-4)

    # a collapsed generator: one class, score 1; its distance is the test set's spread plus the offset
    generated_features, generated_logits = judged(model, digits.float().clamp(0.127, 254.873))
    score, distance, smallest, accuracy, *fractions = table["generated"]
    assert (float(score), float(smallest), accuracy) == (1.0, 0.0, "-")
    assert [float(f) for f in fractions] == [float(c == int(generated_logits.argmax())) for c in range(10)]
    expected = (test_features.mean(0) - generated_features[0]).square().sum() + torch.cov(test_features.T).trace()
    assert float(distance) == pytest.approx(float(expected), rel=1e-3, abs=6e-4)


def test_score_reads_the_evaluators_data_unless_told_otherwise(idx_dir, tmp_path, capsys):
    """The real digits come through MNISTDataModule: by default the evaluator's data set and folder
    (from its checkpoint); --dataset and --data-dir choose others, never downloading."""
    evaluator = fit_classifier(idx_dir, tmp_path / "judge.ckpt")
    assert main(["score", "--evaluator", str(evaluator), "--num", "40"]) == 0
    assert "real test vs train" in capsys.readouterr().out
    torchvision_layout = tmp_path / "data" / "KMNIST" / "raw"
    shutil.copytree(idx_dir, torchvision_layout)
    assert main(["score", "--evaluator", str(evaluator), "--num", "40", "--dataset", "kmnist",
                 "--data-dir", str(tmp_path / "data")]) == 0
    assert "real test vs train" in capsys.readouterr().out
    assert main(["score", "--evaluator", str(evaluator), "--dataset", "fashion-mnist",
                 "--data-dir", str(tmp_path / "data")]) == 2
    error = capsys.readouterr().err
    assert "no fashion-mnist data" in error and not (tmp_path / "data" / "FashionMNIST").exists()
