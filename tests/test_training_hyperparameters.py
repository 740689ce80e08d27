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
    ("epochs: 0\n", ["epochs", "at least 1"]),
    ("lr: -1\n", ["lr", "greater than 0"]),
    ("optimizer: lamb\n", ["optimizer", "adamw"]),
    ("weights_init_type: scratch\n", ["weights_init_type", "transfer_learning"]),
    ("hflip: 2\n", ["hflip", "between 0 and 1"]),
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
