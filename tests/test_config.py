"""Configs: the shipped YAML files, overrides, and the errors for unknown or bad keys."""

from __future__ import annotations

import pytest

from mnist_pl import MODELS, UserError, load_config
from mnist_pl.config import parse_set, section_defaults
from mnist_pl.registry import CONFIG_DIR


@pytest.mark.parametrize("model", MODELS)
def test_shipped_configs_load_and_build(model):
    config = load_config(model)
    assert config["data"]["dataset"] == "mnist" and config["trainer"]["max_epochs"] > 0
    MODELS[model](**config["model"])  # every key is a real constructor argument


# every YAML file shipped, the variants too: configs/<model>-<variant>.yaml is for --model <model>
SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_yaml_loads_builds_and_spells_out_every_model_key(path):
    """The YAML files are documentation: each holds every hyperparameter of its model."""
    model = path.stem.split("-")[0]
    config = load_config(model, path)
    assert config["trainer"]["max_epochs"] > 0
    MODELS[model](**config["model"])
    assert set(config["model"]) == set(section_defaults(model)["model"])


def _flat(config: dict) -> dict:
    """{"seed": 42, "model.lr": 0.001, ...}"""
    return {f"{name}.{key}": value for name, section in config.items() if isinstance(section, dict)
            for key, value in section.items()} | {k: v for k, v in config.items() if not isinstance(v, dict)}


# The keys each variant changes from its model's default YAML (the README shows them). Anything
# else that differs is drift: a change to cnn.yaml that was not made in cnn-fashion.yaml too.
VARIANT_CHANGES = {
    "dense-fashion": {"data.dataset", "model.augment", "model.batch_norm", "model.dropout", "model.optimizer",
                      "model.weight_decay"},
    "cnn-fashion": {"data.dataset", "model.flip", "model.hidden_size", "model.dropout", "trainer.max_epochs"},
    "gan-unconditional": {"model.conditional", "model.clusters", "model.loss", "model.spectral_norm",
                          "model.minibatch_std", "model.augment", "model.lr", "model.lr_d",
                          "trainer.max_epochs"},
}


@pytest.mark.parametrize("variant", [p.stem for p in SHIPPED if "-" in p.stem])
def test_a_variant_differs_from_its_default_only_where_it_says(variant):
    model = variant.split("-")[0]
    default, config = _flat(load_config(model)), _flat(load_config(model, CONFIG_DIR / f"{variant}.yaml"))
    changed = {key for key in default.keys() | config.keys() if default.get(key, "-") != config.get(key, "-")}
    assert changed == VARIANT_CHANGES[variant]


def test_a_shipped_config_by_name_works_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here, as after pip install
    shipped = load_config("cnn", CONFIG_DIR / "cnn-fashion.yaml")
    assert shipped["data"]["dataset"] == "fashion-mnist"
    assert load_config("cnn", "cnn-fashion") == shipped == load_config("cnn", "cnn-fashion.yaml")
    (tmp_path / "cnn-fashion.yaml").write_text("model:\n  lr: 0.5\n")  # a file of that name wins
    assert load_config("cnn", "cnn-fashion.yaml")["model"]["lr"] == 0.5
    with pytest.raises(UserError, match=r"does not exist; .*--config cnn or cnn-fashion\)"):
        load_config("cnn", "configs/cnn-fashion.yaml")
    with pytest.raises(UserError, match=r"cnn-fahsion does not exist; did you mean 'cnn-fashion'\?"):
        load_config("cnn", "cnn-fahsion")


def test_overrides_win_and_values_are_typed():
    config = load_config("cnn", overrides=parse_set(["model.lr=1e-2", "model.channels=[8, 16]", "seed=7"]))
    assert config["model"]["lr"] == 0.01 and config["model"]["channels"] == [8, 16] and config["seed"] == 7


def test_yaml_scientific_notation_becomes_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  lr: 1e-3\n")
    assert load_config("dense", path)["model"]["lr"] == 0.001


@pytest.mark.parametrize("overrides, message", [
    ({"model.dropuot": 0.1}, r"unknown config key 'model.dropuot'.*did you mean 'model.dropout'\?"),
    ({"nonsense": 1}, "unknown config key 'nonsense'"),
    ({"trainer.logger": False}, "unknown config key 'trainer.logger'"),
    ({"model.lr": "fast"}, "model.lr must be a number"),
])
def test_bad_overrides(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config("dense", overrides=overrides)


def test_unknown_key_in_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  hiden_sizes: [10]\n")
    with pytest.raises(UserError, match=f"hiden_sizes.*{path}"):
        load_config("dense", path)


@pytest.mark.parametrize("text, message", [("model: [1, 2]\n", "must be a mapping"),
                                           ("model: {lr: 0.1\n", "line 2, column 1: not valid YAML"),
                                           ("- 1\n", "must hold a mapping")])
def test_malformed_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_config("cnn", path)


def test_missing_file_and_bad_set_syntax(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config("cnn", tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_set(["model.lr"])
    with pytest.raises(UserError, match="unknown model"):
        load_config("resnet")
