"""Config values that load but would hang, spin or be ignored later are refused when the file is read."""
from __future__ import annotations

import pytest

from cvatflow.config import load_settings, metrics_interval
from cvatflow.errors import ConfigError


def _load(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_settings(path, env={"CVATFLOW_HOME": str(tmp_path)})


@pytest.mark.parametrize("text", ["apiWorkers: -1\n", "apiWorkers: 0\n", "eventsInterval: 0\n",
                                  "maxRequestBytes: -5\n", "webhookReplayWindow: -1\n", "eventsInterval: .nan\n"])
def test_a_count_or_interval_below_one_is_refused_naming_the_key(tmp_path, text):
    with pytest.raises(ConfigError, match=rf"{text.split(':')[0]} = .* must be greater than 0"):
        _load(tmp_path, text)


@pytest.mark.parametrize("text", ["apiWorkers: yes\n", "apiWorkers: 2.5\n", "maxJsonDepth: .inf\n"])
def test_a_non_whole_count_is_refused(tmp_path, text):
    with pytest.raises(ConfigError, match=r"is not int"):
        _load(tmp_path, text)


def test_good_numbers_still_load(tmp_path):
    settings = _load(tmp_path, "apiWorkers: 2\neventsInterval: 0.5\nmaxUploadBytes: 3.0\n")
    assert (settings.api_workers, settings.events_interval, settings.max_upload_bytes) == (2, 0.5, 3)
    assert isinstance(settings.max_upload_bytes, int)


def test_auth_that_is_not_a_mapping_is_refused_not_ignored(tmp_path):
    with pytest.raises(ConfigError, match=r"auth = True is not a mapping"):
        _load(tmp_path, "auth: yes\n")
    assert _load(tmp_path, "auth: {tokenReview: true}\n").token_review is True


def test_metrics_interval_from_the_environment_is_checked():
    assert metrics_interval({"CVATFLOW_METRICS_INTERVAL": "5"}) == 5.0
    with pytest.raises(ConfigError, match="CVATFLOW_METRICS_INTERVAL = 'abc'"):
        metrics_interval({"CVATFLOW_METRICS_INTERVAL": "abc"})
    with pytest.raises(ConfigError, match="greater than 0"):
        metrics_interval({"CVATFLOW_METRICS_INTERVAL": "0"})
