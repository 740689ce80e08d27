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


# -- keys cvatflow does not know, store URIs, namespaces, artifact-repository files ----------------------------

def test_a_typo_in_a_key_is_a_warning_naming_the_closest_key_and_stays_in_extra(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="cvatflow.config"):
        settings = _load(tmp_path, "storee: s3://bucket\ncvatURL: http://cvat\nsomeOtherTool: {a: 1}\n"
                                   "auth: {tokenReveiw: true}\n")
    assert settings.extra == {"storee": "s3://bucket", "cvatURL": "http://cvat", "someOtherTool": {"a": 1}}
    assert settings.store != "s3://bucket" and settings.token_review is False  # a typo sets nothing
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 4 and all(str(tmp_path / "config.yaml") in line and "cvatflow's own check" in line
                                   for line in lines)
    assert "unknown key 'storee'; did you mean 'store'?" in lines[0]
    assert "did you mean 'cvatUrl'?" in lines[1]
    assert "'someOtherTool'" in lines[2] and "did you mean" not in lines[2]
    assert "unknown key 'auth.tokenReveiw'; did you mean 'auth.tokenReview'?" in lines[3]


def test_known_keys_give_no_warning(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="cvatflow.config"):
        _load(tmp_path, "store: s3://bucket/prefix\nbackend: local\nnamespace: ml-team\ncvatUrl: http://cvat\n"
                        "auth: {tokenReview: true, audiences: [cvatflow]}\napiWorkers: 2\n")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize(("store", "says"), [
    ("ftp://x", "uses the scheme 'ftp', which cvatflow cannot store to"),
    ("data/store", "is not a URI (for a folder write file:///"),
    ("s3://", "names no bucket"),
    ("file://server/share", "names the host 'server'"),
])
def test_a_store_no_backend_opens_is_refused_naming_the_file_the_key_and_the_schemes(tmp_path, store, says):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"store: {store}\n")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'config.yaml'}: store = {store!r} {says}")
    assert "s3://bucket/prefix, gs://bucket/prefix or file:///absolute/path" in message


def test_a_store_from_the_environment_is_checked_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"^CVATFLOW_STORE = 'ftp://x' uses the scheme 'ftp'"):
        load_settings(None, env={"CVATFLOW_HOME": str(tmp_path), "CVATFLOW_STORE": "ftp://x"})


@pytest.mark.parametrize("store", ["s3://bucket", "gs://bucket/prefix", "gcs://bucket", "file:///data/store",
                                   "file://localhost/data/store"])
def test_stores_cvatflow_opens_load(tmp_path, store):
    assert _load(tmp_path, f"store: {store}\n").store == store


@pytest.mark.parametrize("namespace", ["My_NS", "team.ml", "-ml", "ml-", "a" * 64, "yes", "[ml]"])
def test_a_namespace_kubernetes_refuses_is_refused_naming_the_key_and_the_rule(tmp_path, namespace):
    with pytest.raises(ConfigError, match=r"config.yaml: namespace = .* is not a Kubernetes namespace name: "
                                          r"a DNS-1123 label is at most 63 lower-case letters"):
        _load(tmp_path, f"namespace: {namespace}\n")


def test_a_namespace_from_the_environment_is_checked_and_good_ones_load(tmp_path):
    with pytest.raises(ConfigError, match=r"^CVATFLOW_NAMESPACE = 'ML' is not a Kubernetes namespace name"):
        load_settings(None, env={"CVATFLOW_HOME": str(tmp_path), "CVATFLOW_NAMESPACE": "ML"})
    assert _load(tmp_path, "namespace: ml-team-2\n").namespace == "ml-team-2"
    assert _load(tmp_path, f"namespace: {'a' * 63}\n").namespace == "a" * 63
    assert _load(tmp_path, "namespace: 42\n").namespace == "42"  # YAML's number, a valid label as text


def test_a_missing_artifact_repository_file_names_the_config_file_and_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "..")
    (tmp_path / "repo.yaml").write_text("s3: {bucket: ml, endpoint: minio:9000}\n")
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "artifactRepository: repo.yaml\n")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'config.yaml'}: artifactRepository = 'repo.yaml': no such file")
    assert f"there is one beside the config file: write {str(tmp_path / 'repo.yaml')!r}" in message
    with pytest.raises(ConfigError, match=r"config.yaml: artifactRepository = '/nope/repo.yaml': no such file; "):
        _load(tmp_path, "artifactRepository: /nope/repo.yaml\n")
    assert _load(tmp_path, f"artifactRepository: {tmp_path / 'repo.yaml'}\n").artifact_repository.bucket == "ml"


def test_an_unreadable_artifact_repository_file_names_the_config_file_too(tmp_path):
    (tmp_path / "repo.yaml").write_text("s3: {bucket: ml, nonsense: 1}\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'config.yaml'}: artifactRepository: .*repo.yaml: s3 has "
                                          r"no field nonsense"):
        _load(tmp_path, f"artifactRepository: {tmp_path / 'repo.yaml'}\n")
