"""Commands that write a folder whole never replace a folder of the user's (only an empty one or their own)."""
from __future__ import annotations

import pytest

from cvatflow.errors import TrainingError
from cvatflow.serverless import export
from cvatflow.training.state import write_model_state
from model_states import tiny_state


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return tiny_state("maskrcnn", tmp_path_factory.mktemp("state") / "model")


def test_export_serverless_refuses_a_folder_of_the_users_and_keeps_it(state, tmp_path):
    mine = tmp_path / "fn"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(TrainingError, match=r"--output .*fn: a folder with other files in it"):
        export(state, mine)
    assert (mine / "notes.txt").read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["fn"]  # no staging folder left behind


def test_export_serverless_replaces_its_own_earlier_export_and_an_empty_folder(state, tmp_path):
    out = tmp_path / "fn"
    out.mkdir()
    export(state, out)
    (out / "stale.txt").write_text("from the last export")
    export(state, out)  # an earlier export (function.yaml + main.py) is ours to replace
    assert (out / "function.yaml").is_file() and not (out / "stale.txt").exists()


def test_a_model_state_never_replaces_a_folder_that_is_not_one(tmp_path):
    mine = tmp_path / "weights"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(TrainingError, match="a folder with other files in it"):
        write_model_state(mine, {"classes": []}, {})
    assert (mine / "notes.txt").read_text() == "precious"
    write_model_state(tmp_path / "state", {"classes": []}, {})
    write_model_state(tmp_path / "state", {"classes": ["a"]}, {})  # an earlier state is replaced
    assert "a" in (tmp_path / "state" / "config.json").read_text()
