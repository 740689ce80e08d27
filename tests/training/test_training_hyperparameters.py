"""Hyperparameters: YAML text or file over model defaults, CLI overrides, and one clear error per bad input."""
from __future__ import annotations

import pytest

from cvatflow.errors import TrainingError
from cvatflow.training.hyperparameters import Hyperparameters, parse


def test_defaults_then_yaml_then_overrides():
    hp = parse("epochs: 3\nlr: 0.01\n", defaults={"epochs": 7, "batch_size": 8}, overrides={"batch_size": 2})
    assert (hp.epochs, hp.lr, hp.batch_size) == (3, 0.01, 2)
    assert hp.weight_decay == Hyperparameters().weight_decay


def test_empty_and_none_give_defaults():
    assert parse(None) == Hyperparameters()
    assert parse("") == Hyperparameters()
    assert parse("# nothing but a comment\n") == Hyperparameters()


def test_yaml_file(tmp_path):
    path = tmp_path / "hp.yaml"
    path.write_text("batch_size: 16\nmax_steps: 100\namp: bf16\n")
    hp = parse(str(path))
    assert (hp.batch_size, hp.max_steps, hp.amp) == (16, 100, "bf16")


def test_ints_are_accepted_for_floats_and_yaml_round_trips():
    hp = parse("lr: 1\nval_every: 2\n")
    assert hp.lr == 1.0 and isinstance(hp.lr, float)
    assert parse(hp.to_yaml()) == hp


@pytest.mark.parametrize("text, words", [
    ("epochs: 3\nlearning_rate: 0.1\n", ["unknown key", "learning_rate", "known keys"]),
    ("epochs: [3\n", ["not valid YAML", "line"]),
    ("- epochs\n- 3\n", ["mapping"]),
    ("epochs: three\n", ["epochs", "int", "three"]),
    ("epochs: 0\n", ["epochs", "at least 1 and at most 100000"]),
    ("epochs: -5\n", ["epochs", "at least 1 and at most", "-5"]),
    ("epochs: .nan\n", ["epochs", "int", "nan"]),
    ("lr: .inf\n", ["lr", "greater than 0", "inf"]),
    ("lr: .nan\n", ["lr", "greater than 0", "nan"]),
    ("batch_size: 0\n", ["batch_size", "at least 1 and at most"]),
    ("val_percent: 150\n", ["val_percent", "greater than 0 and less than 100", "150"]),
    ("val_percent: 100\n", ["val_percent", "less than 100"]),
    ("epochs: " + "9" * 45_000 + "\n", ["too many digits"]),
    ("epochs: " + "9" * 4_000 + "\n", ["epochs", "at least 1 and at most 100000", "9999..."]),
    ("max_steps: 0\n", ["max_steps", "or null"]),
    ("deterministic: maybe\n", ["deterministic", "bool"]),
    ("lr: -1\n", ["lr", "greater than 0"]),
    ("optimizer: lamb\n", ["optimizer", "adamw"]),
    ("weights_init_type: scratch\n", ["weights_init_type", "transfer_learning"]),
    ("hflip: 2\n", ["hflip", "at least 0 and at most 1"]),
    ("batch_size: true\n", ["batch_size", "int"]),
    ("epochs:\n", ["epochs", "may not be empty"]),
])
def test_malformed_hyperparameters_are_one_clear_error(text, words):
    with pytest.raises(TrainingError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith("hyperparameters")
    for word in words:
        assert word in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(TrainingError, match="does not exist"):
        parse(str(tmp_path / "nope.yaml"))


def test_sources_name_where_each_value_came_from():
    from cvatflow.training.hyperparameters import annotated_yaml, resolve

    hp, sources = resolve("epochs: 1\nlr: 0.01\n", defaults={"lr": 0.002, "warmup_steps": 5},
                          overrides={"epochs": 1, "batch_size": 3}, defaults_label="default of tiny")
    assert (hp.epochs, hp.batch_size, hp.lr, hp.warmup_steps) == (1, 3, 0.01, 5)
    assert sources["epochs"] == "hyperparameters and --epochs"
    assert sources["batch_size"] == "--batch-size"
    assert sources["lr"] == "hyperparameters"
    assert sources["warmup_steps"] == "default of tiny"
    assert sources["seed"] == "default"
    text = annotated_yaml(hp, sources)
    assert "epochs: 1  # hyperparameters and --epochs\n" in text
    assert parse(text) == hp  # the file a run writes reads back as the same hyperparameters
