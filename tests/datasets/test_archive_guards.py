"""Each of extract_zip's two zip-slip guards holds on its own: the name check, and the resolved-path check."""
from __future__ import annotations

import zipfile

import pytest

from cvatflow.datasets import archive
from cvatflow.datasets.archive import extract_zip
from cvatflow.errors import DatasetError


def hostile_zip(path, names):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("annotations/instances_default.json", "{}")
        for name in names:
            info = zipfile.ZipInfo("x")
            info.filename = name  # ZipInfo() would strip a leading '/'; a hostile archive keeps it
            z.writestr(info, b"owned")
    return path


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize("name", ["images/../../escaped.txt", "{tmp}/escaped.txt"])
def test_the_resolved_path_check_alone_keeps_every_entry_inside(name, tmp_path, monkeypatch):
    """With the name check gone (as if it missed a case), the resolve() check still refuses the entry."""
    monkeypatch.setattr(archive, "_member_problem", lambda info: None)
    zip_path = hostile_zip(tmp_path / "export.zip", [name.format(tmp=tmp_path)])
    work = tmp_path / "work"
    with pytest.raises(DatasetError, match="escapes the folder"):
        extract_zip(zip_path, work / "out")
    assert files_under(tmp_path) == ["export.zip", "work"]  # the staging folder went, nothing escaped


def test_the_name_check_alone_refuses_dot_dot_even_when_it_stays_inside(tmp_path, monkeypatch):
    """`images/../x` resolves inside the folder, so only the name check refuses it, before writing anything."""
    zip_path = hostile_zip(tmp_path / "export.zip", ["images/../annotations/instances_default.json"])
    with pytest.raises(DatasetError, match="zip slip") as caught:
        extract_zip(zip_path, tmp_path / "work" / "out")
    assert "refusing to extract anything" in str(caught.value)
    assert files_under(tmp_path) == ["export.zip"]  # refused before even the target's parent is made
