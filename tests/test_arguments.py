"""Constructor arguments: each declared once (type, choices, range), checked by the constructor
for every argument, with the same words in Python and on the command line."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import lightning as L
import numpy as np
import pytest

from mnist_pl import CNNClassifier, DenseClassifier, GAN, ImageClassifier, MNISTDataModule, SampleQuality, UserError
from mnist_pl.cli import main
from mnist_pl.data import DATASETS
from mnist_pl.errors import ArgumentTypeError, ArgumentValueError
from mnist_pl.nets import ACTIVATIONS
from mnist_pl.optim import OPTIMIZERS, SCHEDULERS
from mnist_pl.rules import argument_hints

PUBLIC = [MNISTDataModule, DenseClassifier, CNNClassifier, GAN, SampleQuality]
NAN = float("nan")

# (class, the bad argument, its value, the error's type, what the message says after the name)
BAD = [
    (CNNClassifier, "momentum", 5, ArgumentValueError, "momentum must be in [0, 1]."),
    (DenseClassifier, "hidden_sizes", [0], ArgumentValueError, "hidden_sizes must have every entry at least 1."),
    (DenseClassifier, "hidden_sizes", 256, ArgumentTypeError, "hidden_sizes must be a list of whole numbers."),
    (DenseClassifier, "hidden_sizes", [64.5], ArgumentTypeError, "hidden_sizes must be a list of whole numbers."),
    (CNNClassifier, "channels", 32, ArgumentTypeError, "channels must be a list of whole numbers."),
    (CNNClassifier, "channels", [32, -1], ArgumentValueError, "channels must have every entry at least 1."),
    (CNNClassifier, "convs_per_block", 0, ArgumentValueError, "convs_per_block must be at least 1."),
    (CNNClassifier, "hidden_size", 0, ArgumentValueError, "hidden_size must be at least 1."),
    (CNNClassifier, "lr", -1, ArgumentValueError, "lr must be above 0."),
    (CNNClassifier, "lr", 0, ArgumentValueError, "lr must be above 0."),
    (DenseClassifier, "lr", "1e-3", ArgumentTypeError, "lr must be a number."),
    (DenseClassifier, "lr", NAN, ArgumentValueError, "lr must be a finite number above 0."),
    (DenseClassifier, "lr", float("inf"), ArgumentValueError, "lr must be a finite number above 0."),
    (DenseClassifier, "lr", True, ArgumentTypeError, "lr must be a number."),
    (DenseClassifier, "num_classes", 1, ArgumentValueError, "num_classes must be at least 2."),
    (DenseClassifier, "num_classes", 10.0, ArgumentTypeError, "num_classes must be a whole number."),
    (CNNClassifier, "label_smoothing", 2, ArgumentValueError, "label_smoothing must be in [0, 1)."),
    (CNNClassifier, "optimizer", "adamm", ArgumentValueError,
     "optimizer must be one of adam, adamw, sgd, rmsprop, adadelta; did you mean 'adam'?"),
    (DenseClassifier, "scheduler", "cosin", ArgumentValueError,
     "scheduler must be one of none, step, cosine, onecycle; did you mean 'cosine'?"),
    (DenseClassifier, "activation", "swish", ArgumentValueError, "activation must be one of relu, gelu, silu"),
    (DenseClassifier, "dropout", 1.0, ArgumentValueError, "dropout must be in [0, 1)."),
    (DenseClassifier, "weight_decay", -0.1, ArgumentValueError, "weight_decay must be at least 0."),
    (DenseClassifier, "gamma", 0, ArgumentValueError, "gamma must be in (0, 1]."),
    (DenseClassifier, "step_size", True, ArgumentTypeError, "step_size must be a whole number."),
    (DenseClassifier, "erase", 1.5, ArgumentValueError, "erase must be in [0, 1]."),
    (DenseClassifier, "ema_decay", 1.0, ArgumentValueError, "ema_decay must be in [0, 1)."),
    (DenseClassifier, "augment", 1, ArgumentTypeError, "augment must be true or false."),
    (DenseClassifier, "figures_every_n_epochs", -1, ArgumentValueError, "figures_every_n_epochs must be at least 0."),
    (GAN, "latent_dim", 0, ArgumentValueError, "latent_dim must be at least 1."),
    (GAN, "betas", (0.5,), ArgumentValueError, "betas must have 2 entries (Adam's beta1 and beta2), not 1."),
    (GAN, "betas", (0.5, 1.0), ArgumentValueError, "betas must have every entry in [0, 1)."),
    (GAN, "generator_channels", [8, 8, 8], ArgumentValueError, "generator_channels must have 2 entries"),
    (GAN, "arch", "stylegan", ArgumentValueError, "arch must be one of fc, dcgan."),
    (GAN, "loss", "wasserstein", ArgumentValueError, "loss must be one of bce, hinge."),
    (GAN, "lr_d", 0.0, ArgumentValueError, "lr_d must be above 0."),
    (GAN, "real_label", 0, ArgumentValueError, "real_label must be in (0, 1]."),
    (GAN, "clusters", -1, ArgumentValueError, "clusters must be at least 0."),
    (GAN, "num_samples", 0, ArgumentValueError, "num_samples must be at least 1."),
    (GAN, "sample_seed", -1, ArgumentValueError, "sample_seed must be in [0, 4294967295]."),
    (GAN, "conditional", "yes", ArgumentTypeError, "conditional must be true or false."),
    (MNISTDataModule, "batch_size", 0, ArgumentValueError, "batch_size must be at least 1."),
    (MNISTDataModule, "batch_size", 32.0, ArgumentTypeError, "batch_size must be a whole number."),
    (MNISTDataModule, "val_size", 1.5, ArgumentValueError, "val_size must be in (0, 1): a fraction"),
    (MNISTDataModule, "val_size", 0, ArgumentValueError, "val_size must be at least 1."),
    (MNISTDataModule, "val_size", -0.1, ArgumentValueError, "val_size must be in (0, 1)"),
    (MNISTDataModule, "dataset", "mnsit", ArgumentValueError,
     "dataset must be one of mnist, fashion-mnist, kmnist; did you mean 'mnist'?"),
    (MNISTDataModule, "normalize", "foo", ArgumentValueError, "normalize must be one of standard, symmetric."),
    (MNISTDataModule, "num_workers", -1, ArgumentValueError, "num_workers must be at least 0."),
    (MNISTDataModule, "split_seed", 2**40, ArgumentValueError, "split_seed must be in [0, 4294967295]."),
    (MNISTDataModule, "download", "no", ArgumentTypeError, "download must be true or false or null."),
    (MNISTDataModule, "data_dir", 3, ArgumentTypeError, "data_dir must be a text or a path."),
    (SampleQuality, "num_samples", 0, ArgumentValueError, "num_samples must be at least 1."),
    (SampleQuality, "seed", -5, ArgumentValueError, "seed must be in [0, 4294967295]."),
]
IDS = [f"{cls.__name__}-{name}={value!r}" for cls, name, value, *_ in BAD]


@pytest.mark.parametrize("cls, name, value, error, message", BAD, ids=IDS)
def test_a_bad_argument_is_refused_when_the_object_is_built(cls, name, value, error, message):
    with pytest.raises(error) as caught:
        cls(**{name: value})
    assert isinstance(caught.value, UserError) and isinstance(caught.value, (ValueError, TypeError))
    text = str(caught.value)
    assert text.startswith(f"{cls.__name__}({name}={value!r}): ") and message in text, text


def test_the_error_names_the_class_that_was_built():
    class MyCNN(CNNClassifier):
        pass

    with pytest.raises(ArgumentValueError, match=r"^MyCNN\(lr=-1\): lr must be above 0\.$"):
        MyCNN(lr=-1)


# arguments that must fit together: (class, arguments, message; the same through --set)
TOGETHER = [
    (CNNClassifier, {"channels": [4, 8], "convs_per_block": [1]},
     "convs_per_block must be one number, or one for each of the 2 blocks of channels."),
    (GAN, {"arch": "fc", "minibatch_std": True}, "minibatch_std needs arch dcgan"),
    (GAN, {"conditional": True, "clusters": 4}, "clusters is for an unconditional GAN"),
]


@pytest.mark.parametrize("cls, kwargs, message", TOGETHER)
def test_arguments_that_must_fit_together(cls, kwargs, message):
    with pytest.raises(ArgumentValueError) as caught:
        cls(**kwargs)
    assert set(caught.value.arguments) == set(kwargs) and message in caught.value.problem
    assert str(caught.value).startswith(f"{cls.__name__}(") and message in str(caught.value)


def test_good_values_of_every_allowed_kind_pass():
    """Paths for folders, counts for val_size, numpy's numbers, whole numbers for floats, tuples."""
    MNISTDataModule(data_dir=Path("data"), val_size=5000, split_seed=None, download=False)
    DenseClassifier(hidden_sizes=(np.int64(8),), lr=np.float32(0.1), weight_decay=0)
    DenseClassifier(hidden_sizes=[])  # no hidden layer: a linear model
    CNNClassifier(channels=[4, 8], hidden_size=8, convs_per_block=[1, 2])
    GAN(lr_d=1e-3, sample_seed=None, betas=[0.0, 0.9])
    SampleQuality(evaluator_checkpoint=None, seed=2**32 - 1)


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_every_argument_is_declared_and_checked(cls):
    """Each argument has a type hint, and a value of no type it allows is refused, naming it."""
    hints = argument_hints(cls)
    names = [n for n, p in inspect.signature(cls).parameters.items()]
    assert names and all(n in hints for n in names), [n for n in names if n not in hints]
    for name in names:
        with pytest.raises(ArgumentTypeError, match=rf"^{cls.__name__}\({name}=.*\): {name} must be "):
            cls(**{name: object()})


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_signatures_show_every_argument(cls):
    kinds = {p.kind for p in inspect.signature(cls).parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds


def test_cnn_signature_shows_the_training_arguments():
    parameters = inspect.signature(CNNClassifier).parameters
    assert {"lr", "optimizer", "scheduler", "weight_decay", "ema_decay", "channels"} <= set(parameters)


@pytest.mark.parametrize("cls", [DenseClassifier, CNNClassifier], ids=lambda c: c.__name__)
def test_subclasses_repeat_the_training_arguments_exactly(cls):
    """DenseClassifier and CNNClassifier spell out ImageClassifier's arguments (so that they
    show): the same declaration and the same default as ImageClassifier's own."""
    base, sub = inspect.signature(ImageClassifier).parameters, inspect.signature(cls).parameters
    for name, parameter in base.items():
        assert name in sub, name
        assert (sub[name].annotation, sub[name].default) == (parameter.annotation, parameter.default), name


@pytest.mark.parametrize("cls, name, table", [
    (ImageClassifier, "optimizer", OPTIMIZERS), (ImageClassifier, "scheduler", SCHEDULERS),
    (DenseClassifier, "activation", ACTIVATIONS), (CNNClassifier, "activation", ACTIVATIONS),
    (MNISTDataModule, "dataset", DATASETS), (MNISTDataModule, "normalize", ("standard", "symmetric")),
    (GAN, "arch", ("fc", "dcgan")), (GAN, "loss", ("bce", "hinge")),
])
def test_choices_are_literals_that_match_what_the_builders_know(cls, name, table):
    hint = typing.get_type_hints(cls.__init__)[name]
    assert typing.get_origin(hint) is typing.Literal
    assert set(typing.get_args(hint)) == set(table)


def test_a_model_is_held_to_its_data_normalisation_under_a_plain_trainer(idx_dir):
    gan = GAN(arch="fc", latent_dim=4, generator_hidden=[8], discriminator_hidden=[8], num_samples=4)
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with pytest.raises(UserError, match="GAN trains on data normalised as 'symmetric', not 'standard'"):
        trainer.fit(gan, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=16))


# ---------------------------------------------------------------------------- the command line

SECTIONS = {MNISTDataModule: "data", SampleQuality: "quality"}
# values a YAML --set cannot write as Python does, or means otherwise (YAML reads 1e-3 as text
# and makes it the number it means)
AS_TYPED = {"'1e-3'": "fast", "nan": ".nan", "inf": ".inf", "(0.5,)": "[0.5]", "(0.5, 1.0)": "[0.5, 1.0]",
            "'yes'": "maybe"}
NOT_ON_THE_COMMAND_LINE = {"data_dir", "split_seed", "sample_seed", "seed", "download"}  # set apart or elsewhere


def _cli_cases():
    for cls, name, value, _, message in BAD:
        if name in NOT_ON_THE_COMMAND_LINE or cls is ImageClassifier:
            continue
        typed = AS_TYPED.get(repr(value), str(value).replace("'", "") if not isinstance(value, bool) else "true")
        model = "gan" if cls in (GAN, SampleQuality) else "cnn" if cls is CNNClassifier else "dense"
        yield pytest.param(model, f"{SECTIONS.get(cls, 'model')}.{name}", typed, message,
                           id=f"{model}-{name}={typed}")


@pytest.mark.parametrize("model, key, typed, message", list(_cli_cases()))
def test_the_same_value_on_the_command_line_gives_the_same_words(model, key, typed, message, idx_dir, tmp_path,
                                                                 capfd):
    status = main(["train", "--model", model, "--data-dir", str(idx_dir), "--logdir", str(tmp_path / "runs"),
                   "--accelerator", "cpu", "--set", f"{key}={typed}"])
    out, err = capfd.readouterr()
    assert status == 2 and out == "" and len(err.splitlines()) == 1, err
    section = key.partition(".")[0]
    problem = message.rstrip(".")
    if typed in ("fast", "maybe"):  # a text where a number or a yes/no is wanted
        problem = problem.split(" must be ")[0] + " must be"
    assert err.startswith(f"error: --set {key}=") and f"{section}.{problem}" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("cls, kwargs, message", TOGETHER)
def test_arguments_that_do_not_fit_together_on_the_command_line(cls, kwargs, message, idx_dir, tmp_path, capfd):
    model = "cnn" if cls is CNNClassifier else "gan"
    sets = [item for key, value in kwargs.items()
            for item in ("--set", f"model.{key}={str(value).lower() if isinstance(value, bool) else value}")]
    status = main(["train", "--model", model, "--data-dir", str(idx_dir), "--logdir", str(tmp_path / "runs"),
                   "--accelerator", "cpu", *sets])
    err = capfd.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1 and message in err, err
    for key in kwargs:  # each key, with where it came from
        assert f"model.{key}=" in err
    assert "(from --set)" in err and not (tmp_path / "runs").exists()
