"""Off a terminal, `cvatflow dataset` reports progress as event lines on stderr; stdout keeps the result."""
from __future__ import annotations

from cvatflow import events
from cvatflow.datasets.synth import make_export


def test_cli_upload_off_a_terminal_reports_progress_as_events_on_stderr(cli, tmp_path):
    export = make_export(tmp_path / "synth.zip", images=3, size=32)
    result = cli("dataset", "upload", export, "--to", (tmp_path / "store").as_uri(), "--task", 5)
    assert result.code == 0, result.err
    assert result.out.strip().splitlines()[-1].startswith("annotations/5/")  # stdout: the path, no events
    progress = list(events.parse_lines(result.err.splitlines()))
    assert progress and progress[-1]["subtask"] == "uploading"
    assert progress[-1]["current"] == progress[-1]["total"] > 0
