"""`dataset prepare --out` never deletes a folder or file the user had there: only an earlier prepared dataset."""
from __future__ import annotations

import pytest

from cvatflow.datasets.prepare import prepare
from cvatflow.datasets.synth import make_export
from cvatflow.errors import DatasetError


@pytest.fixture
def export(tmp_path):
    return make_export(tmp_path / "shapes.zip", images=4, size=32, seed=0)


def test_a_folder_with_the_users_files_is_refused_and_kept(tmp_path, export):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(DatasetError, match=r"--out .*mine: a folder with other files in it"):
        prepare(export, mine)
    assert (mine / "notes.txt").read_text() == "precious"
    assert export.exists()


def test_a_file_is_refused_not_a_traceback(cli, export):
    result = cli("dataset", "prepare", export, "--out", export)
    assert result.code == 1, result.out + result.err
    assert "exists and is not a folder" in result.err and "Traceback" not in result.err
    assert export.stat().st_size > 0


def test_an_empty_folder_and_an_earlier_prepared_dataset_are_still_written(tmp_path, export):
    out = tmp_path / "prepared"
    out.mkdir()
    prepare(export, out, val_split=25)
    prepare(export, out, val_split=25)  # rerunning replaces the earlier output
    assert (out / "train_val_split.json").is_file()
