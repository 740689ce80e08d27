"""Argo's artifact repositories as clusters write them: every field carried into completed locations, or refused."""
from __future__ import annotations

import pytest
import yaml

from cvatflow.artifact_repository import ArtifactRepository
from cvatflow.config import ConfigError, load_settings
from cvatflow.errors import TemplateError
from cvatflow.templates import complete_artifacts, get_template

SECRET = {"name": "creds", "key": "k"}
# One repository per kind with every field Argo's types give it (v3.5-v4 artifact_repository_types.go and the
# bucket types inlined from workflow_types.go), written as in an artifact-repositories ConfigMap.
FULL = {
    "s3": {"endpoint": "s3.amazonaws.com", "bucket": "b", "region": "eu-west-1", "insecure": False,
           "accessKeySecret": SECRET, "secretKeySecret": SECRET, "sessionTokenSecret": SECRET,
           "roleARN": "arn:aws:iam::1:role/r", "useSDKCreds": True,
           "createBucketIfNotPresent": {"objectLocking": True},
           "encryptionOptions": {"kmsKeyId": "kms-1", "kmsEncryptionContext": "{}", "enableEncryption": True,
                                 "serverSideCustomerKeySecret": SECRET},
           "caSecret": SECRET, "addressingStyle": "path", "keyFormat": "runs/{{workflow.name}}/{{pod.name}}"},
    "gcs": {"bucket": "b", "serviceAccountKeySecret": SECRET, "keyFormat": "g/{{workflow.name}}"},
    "azure": {"endpoint": "https://acct.blob.core.windows.net", "container": "c", "accountKeySecret": SECRET,
              "useSDKCreds": True, "blobNameFormat": "az/{{workflow.name}}"},
    "oss": {"endpoint": "oss-cn-hangzhou.aliyuncs.com", "bucket": "b", "accessKeySecret": SECRET,
            "secretKeySecret": SECRET, "createBucketIfNotPresent": True, "securityToken": "tok",
            "lifecycleRule": {"markInfrequentAccessAfterDays": 30, "markDeletionAfterDays": 60},
            "useSDKCreds": True, "keyFormat": "o/{{workflow.name}}"},
    "artifactory": {"repoURL": "https://artifactory.example.com/artifactory/generic-local",
                    "usernameSecret": SECRET, "passwordSecret": SECRET, "keyFormat": "a/{{workflow.name}}"},
    "hdfs": {"addresses": ["nn:8020"], "hdfsUser": "root", "dataTransferProtection": "privacy",
             "krbCCacheSecret": SECRET, "krbKeytabSecret": SECRET, "krbUsername": "u", "krbRealm": "R",
             "krbConfigConfigMap": {"name": "krb5", "key": "krb5.conf"}, "krbServicePrincipalName": "hdfs/nn",
             "force": True, "pathFormat": "/h/{{workflow.name}}"},
    "plugin": {"name": "my-plugin", "configuration": "bucket: x", "keyFormat": "p/{{workflow.name}}"},
}
REPOSITORY_ONLY = {"keyFormat", "blobNameFormat", "pathFormat", "keyPrefix", "repoURL"}
KEY_FIELD = {"azure": "blob", "hdfs": "path", "artifactory": "url"}


@pytest.mark.parametrize("kind", list(FULL))
def test_every_field_of_each_kind_reaches_the_completed_location(kind):
    repo = ArtifactRepository.from_dict({"archiveLogs": True, kind: FULL[kind]})
    assert repo.archive_logs is True
    location = repo.location("annotations/7/x/")[kind]
    for field, value in FULL[kind].items():
        if field not in REPOSITORY_ONLY:
            assert location[field] == value, field
    key_field = KEY_FIELD.get(kind, "key")
    expected = ("https://artifactory.example.com/artifactory/generic-local/annotations/7/x/" if kind == "artifactory"
                else "annotations/7/x/")
    assert location[key_field] == expected
    assert not set(location) & (REPOSITORY_ONLY - {"repoURL"})
    # An artifact that names no key gets the repository's key format (Argo's rule).
    fmt = next(v for k, v in FULL[kind].items() if k in REPOSITORY_ONLY - {"repoURL"})
    assert repo.location()[kind][key_field].endswith(fmt)


def test_use_sdk_creds_survives_shorthand_completion_in_a_template():
    # IRSA / EKS Pod Identity: no key Secrets, the pod's own identity.
    repo = ArtifactRepository.from_dict({"s3": {"bucket": "ml", "region": "us-east-1", "useSDKCreds": True}})
    template = get_template("maskrcnn-training")
    assert complete_artifacts(template.spec, repo) == 5  # export, train and fine-tune outputs, fine-tune input, the multi-node dataset
    export = template.spec["templates"][0]["inputs"]["artifacts"][0]["s3"]
    assert export == {"bucket": "ml", "region": "us-east-1", "useSDKCreds": True,
                      "key": "{{workflow.parameters.cvat-annotation-path}}"}
    assert repo.use_sdk_creds


def test_key_format_follows_argo_defaults_and_key_prefix():
    assert ArtifactRepository.from_dict({"s3": {"bucket": "b"}}).key_format == "{{workflow.name}}/{{pod.name}}"
    assert ArtifactRepository.from_dict({"s3": {"bucket": "b", "keyPrefix": "team-a/"}}).key_format == \
        "team-a/{{workflow.name}}/{{pod.name}}"
    onepanel = "artifacts/{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}"
    assert ArtifactRepository.from_dict({"s3": {"bucket": "b", "keyFormat": onepanel}}).location()["s3"]["key"] == \
        onepanel


@pytest.mark.parametrize(("data", "message"), [
    ({"s3": {"bucket": "b", "useSdkCreds": True}}, "s3 has no field useSdkCreds (Argo would drop it silently)"),
    ({"http": {"url": "https://x"}}, "Argo has no http artifact repository"),
    ({"s3": {"bucket": "b"}, "gcs": {"bucket": "b"}}, "name exactly one of"),
    ({"azure": {"container": "c"}}, "`azure.endpoint` is required"),
    ({"s3": {"bucket": "b", "accessKeySecret": {"name": "x"}}}, "`s3.accessKeySecret` must be {name: SECRET"),
    ({"s3": {"bucket": "b", "encryptionOptions": {"kmsKeyID": "x"}}}, "`s3.encryptionOptions` takes"),
    ({"s3": {"bucket": "b", "useSDKCreds": "yes"}}, "`s3.useSDKCreds` must be true or false"),
    ({"s3": {"bucket": "b", "addressingStyle": "virtual"}}, "path or virtual-hosted"),
    ({"archiveLog": True, "s3": {"bucket": "b"}}, "unknown keys archiveLog"),
])
def test_what_argo_would_not_read_is_refused_naming_the_field(data, message):
    with pytest.raises(TemplateError, match="repo.yaml") as excinfo:
        ArtifactRepository.from_dict(data, source="repo.yaml")
    assert message in str(excinfo.value)


def configmap(annotation: str | None, **entries) -> dict:
    metadata = {"name": "artifact-repositories"}
    if annotation is not None:
        metadata["annotations"] = {"workflows.argoproj.io/default-artifact-repository": annotation}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": {k: yaml.safe_dump(v) for k, v in entries.items()}}


def test_the_configmaps_default_annotation_is_followed_and_a_missing_entry_is_one_clear_error(tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(configmap("my-s3", **{"my-s3": {"s3": {"bucket": "b", "useSDKCreds": True}},
                                                         "my-gcs": {"gcs": {"bucket": "g"}}})))
    repo = ArtifactRepository.from_file(path)
    assert (repo.kind, repo.bucket, repo.use_sdk_creds) == ("s3", "b", True)

    path.write_text(yaml.safe_dump(configmap("default-v1", **{"my-s3": {"s3": {"bucket": "b"}}})))
    with pytest.raises(TemplateError) as excinfo:
        ArtifactRepository.from_file(path)
    assert str(excinfo.value) == (
        f"{path}: the workflows.argoproj.io/default-artifact-repository annotation names 'default-v1', which is not "
        f"an entry of the ConfigMap (it has: my-s3); fix the annotation or add the entry")

    path.write_text(yaml.safe_dump(configmap(None, a={"s3": {"bucket": "b"}}, b={"s3": {"bucket": "c"}})))
    with pytest.raises(TemplateError, match="2 entries .* and no workflows.argoproj.io/default-artifact"):
        ArtifactRepository.from_file(path)
    path.write_text(yaml.safe_dump(configmap(None, only={"gcs": {"bucket": "g"}})))
    assert ArtifactRepository.from_file(path).uri == "gs://g"


def test_settings_read_an_azure_repository_but_want_a_store_for_a_cluster(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"backend": "kubernetes", "artifactRepository": {"azure": FULL["azure"]}}))
    with pytest.raises(ConfigError, match="not in the azure artifact repository; set `store:`"):
        load_settings(config, env={"CVATFLOW_HOME": str(tmp_path)})
    config.write_text(yaml.safe_dump({"backend": "kubernetes", "store": "s3://dumps",
                                      "artifactRepository": {"azure": FULL["azure"]}}))
    settings = load_settings(config, env={"CVATFLOW_HOME": str(tmp_path)})
    assert settings.artifact_repository.location("k")["azure"]["useSDKCreds"] is True
