"""Where artifacts live: Argo's artifact-repository config (every kind and field), read from YAML or a ConfigMap."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cvatflow.errors import TemplateError

# Argo's key pattern when a repository gives no keyFormat (pkg/apis/workflow/v1alpha1, DefaultArchivePattern).
ARGO_KEY_FORMAT = "{{workflow.name}}/{{pod.name}}"
# Onepanel's keyFormat, which its installer wrote into every namespace's repository.
ONEPANEL_KEY_FORMAT = "artifacts/{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}"
DEFAULT_ANNOTATION = "workflows.argoproj.io/default-artifact-repository"
SECRET_REF = {"name", "key", "optional"}  # a Kubernetes SecretKeySelector
NESTED = {  # fields that are objects, with the keys Argo knows in them (OSS's createBucketIfNotPresent is a bool)
    "encryptionOptions": {"kmsKeyId", "kmsEncryptionContext", "enableEncryption", "serverSideCustomerKeySecret"},
    "createBucketIfNotPresent": {"objectLocking"},
    "lifecycleRule": {"markInfrequentAccessAfterDays", "markDeletionAfterDays"},
}


@dataclass(frozen=True)
class Kind:
    """One of Argo's repository kinds: the location fields it shares with its artifacts, the repository-only
    fields, the field its key-format pattern is in, and the location field the key goes to."""

    shared: frozenset[str]
    required: tuple[str, ...]
    key_field: str = "key"
    format_field: str = "keyFormat"
    repository_only: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()


# Argo's ArtifactRepository types (pkg/apis/workflow/v1alpha1/artifact_repository_types.go and the bucket types
# they inline from workflow_types.go), v3.5 to v4.
KINDS: dict[str, Kind] = {
    "s3": Kind(frozenset({"endpoint", "bucket", "region", "insecure", "accessKeySecret", "secretKeySecret",
                          "sessionTokenSecret", "roleARN", "useSDKCreds", "createBucketIfNotPresent",
                          "encryptionOptions", "caSecret", "addressingStyle"}), ("bucket",),
               repository_only=frozenset({"keyPrefix"}),
               secrets=frozenset({"accessKeySecret", "secretKeySecret", "sessionTokenSecret", "caSecret"})),
    "gcs": Kind(frozenset({"bucket", "serviceAccountKeySecret"}), ("bucket",),
                secrets=frozenset({"serviceAccountKeySecret"})),
    "azure": Kind(frozenset({"endpoint", "container", "accountKeySecret", "useSDKCreds"}), ("endpoint", "container"),
                  key_field="blob", format_field="blobNameFormat", secrets=frozenset({"accountKeySecret"})),
    "oss": Kind(frozenset({"endpoint", "bucket", "accessKeySecret", "secretKeySecret", "createBucketIfNotPresent",
                           "securityToken", "lifecycleRule", "useSDKCreds"}), ("bucket",),
                secrets=frozenset({"accessKeySecret", "secretKeySecret"})),
    "artifactory": Kind(frozenset({"usernameSecret", "passwordSecret"}), ("repoURL",), key_field="url",
                        repository_only=frozenset({"repoURL"}),
                        secrets=frozenset({"usernameSecret", "passwordSecret"})),
    "hdfs": Kind(frozenset({"addresses", "hdfsUser", "dataTransferProtection", "krbCCacheSecret", "krbKeytabSecret",
                            "krbUsername", "krbRealm", "krbConfigConfigMap", "krbServicePrincipalName", "force"}),
                 ("addresses",), key_field="path", format_field="pathFormat",
                 secrets=frozenset({"krbCCacheSecret", "krbKeytabSecret"})),
    "plugin": Kind(frozenset({"name", "configuration"}), ("name",)),
}
NOT_REPOSITORIES = {  # artifact kinds Argo has no default repository of
    "http": "an http artifact names its own url",
    "git": "a git artifact names its own repo",
    "raw": "a raw artifact carries its data inline",
}


@dataclass(frozen=True)
class SecretRef:
    """A key of a Kubernetes Secret (the value never enters cvatflow's parameters or logs)."""

    name: str
    key: str

    def to_argo(self) -> dict[str, str]:
        return {"name": self.name, "key": self.key}


@dataclass(frozen=True)
class ArtifactRepository:
    """The default artifact repository: one of Argo's kinds and its spec exactly as given (every field is carried
    into the locations it completes); Onepanel's shorthand keys complete against it."""

    kind: str
    spec: dict[str, Any] = field(default_factory=dict)
    archive_logs: bool | None = None  # the Workflow's logs, not an artifact's: Argo reads it from the ConfigMap

    # -- the fields cvatflow itself uses (its store talks to the same bucket) ---------------------------------

    @property
    def bucket(self) -> str:
        return str(self.spec.get("bucket") or self.spec.get("container") or "")

    @property
    def endpoint(self) -> str:
        return str(self.spec.get("endpoint") or "")

    @property
    def region(self) -> str:
        return str(self.spec.get("region") or "")

    @property
    def insecure(self) -> bool:
        return bool(self.spec.get("insecure", False))

    @property
    def use_sdk_creds(self) -> bool:
        """IRSA, EKS Pod Identity, Workload Identity: the pods' own identity, no keys in Secrets."""
        return bool(self.spec.get("useSDKCreds", False))

    @property
    def addressing_style(self) -> str:
        return str(self.spec.get("addressingStyle") or "")

    def _secret(self, name: str) -> SecretRef | None:
        ref = self.spec.get(name)
        return SecretRef(str(ref["name"]), str(ref["key"])) if isinstance(ref, dict) else None

    @property
    def access_key_secret(self) -> SecretRef | None:
        return self._secret("accessKeySecret")

    @property
    def secret_key_secret(self) -> SecretRef | None:
        return self._secret("secretKeySecret")

    @property
    def service_account_key_secret(self) -> SecretRef | None:
        return self._secret("serviceAccountKeySecret")

    @property
    def uri(self) -> str:
        """The store URI of the bucket root (s3://bucket or gs://bucket); "" for kinds cvatflow cannot store in."""
        return {"s3": f"s3://{self.bucket}", "gcs": f"gs://{self.bucket}"}.get(self.kind, "")

    @property
    def key_format(self) -> str:
        """The key pattern of artifacts that name no key, by Argo's rule: the kind's format field, else (S3)
        `<keyPrefix>/{{workflow.name}}/{{pod.name}}`, else `{{workflow.name}}/{{pod.name}}`."""
        given = str(self.spec.get(KINDS[self.kind].format_field) or "")
        if given:
            return given
        prefix = str(self.spec.get("keyPrefix") or "").strip("/")
        return f"{prefix}/{ARGO_KEY_FORMAT}" if prefix else ARGO_KEY_FORMAT

    def location(self, key: str | None = None) -> dict[str, Any]:
        """An Argo artifact location (`{"s3": {...}}`, `{"azure": {..., "blob": key}}`...) for `key` in this
        repository, carrying every location field of the repository; no key (or "") means the key format."""
        kind = KINDS[self.kind]
        key = key or self.key_format
        body = {k: copy.deepcopy(v) for k, v in self.spec.items() if k in kind.shared}
        if self.kind == "artifactory":
            body["url"] = str(self.spec["repoURL"]).rstrip("/") + "/" + key.lstrip("/")
        else:
            body[kind.key_field] = key
        return {self.kind: body}

    # -- reading ------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "artifact repository") -> ArtifactRepository:
        """Read Argo's format: `{s3: {bucket, endpoint, ..., useSDKCreds, keyFormat}}`, or gcs, azure, oss,
        artifactory, hdfs, plugin; `archiveLogs` beside it. An Argo `artifact-repositories` ConfigMap works too.

        Raises TemplateError naming the field for anything Argo would not read (or would silently drop).
        """
        if isinstance(data, dict) and data.get("kind") == "ConfigMap":
            return cls.from_configmap(data, source)
        if not isinstance(data, dict):
            raise TemplateError(f"{source}: expected a mapping with one of {', '.join(KINDS)}; "
                                f"got {type(data).__name__}")
        archive_logs = data.get("archiveLogs")
        if archive_logs is not None and not isinstance(archive_logs, bool):
            raise TemplateError(f"{source}: archiveLogs must be true or false, not {archive_logs!r}")
        for name, why in NOT_REPOSITORIES.items():
            if name in data:
                raise TemplateError(f"{source}: Argo has no {name} artifact repository ({why}); use one of "
                                    f"{', '.join(KINDS)}")
        unknown = sorted(set(data) - set(KINDS) - {"archiveLogs"})
        if unknown:
            raise TemplateError(f"{source}: unknown keys {', '.join(unknown)}; an artifact repository has one of "
                                f"{', '.join(KINDS)} (and archiveLogs)")
        kinds = [k for k in KINDS if k in data]
        if len(kinds) != 1:
            raise TemplateError(f"{source}: name exactly one of {', '.join(KINDS)} (found {kinds or 'none'})")
        name = kinds[0]
        body = data[name] or {}
        if not isinstance(body, dict):
            raise TemplateError(f"{source}: `{name}` must be a mapping of its fields")
        _check(name, body, source)
        return cls(kind=name, spec=copy.deepcopy(body), archive_logs=archive_logs)

    @classmethod
    def from_configmap(cls, data: dict[str, Any], source: str) -> ArtifactRepository:
        """Argo's `artifact-repositories` ConfigMap: the entry its default annotation names (else the only one)."""
        entries = data.get("data") or {}
        if not isinstance(entries, dict) or not entries:
            raise TemplateError(f"{source}: the ConfigMap has no data entries; add one holding the repository")
        default = ((data.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_ANNOTATION)
        if default is None:
            if len(entries) > 1:
                raise TemplateError(f"{source}: the ConfigMap has {len(entries)} entries ({', '.join(entries)}) and "
                                    f"no {DEFAULT_ANNOTATION} annotation; set it to the default one")
            default = next(iter(entries))
        if default not in entries:
            raise TemplateError(f"{source}: the {DEFAULT_ANNOTATION} annotation names {default!r}, which is not an "
                                f"entry of the ConfigMap (it has: {', '.join(entries)}); fix the annotation or add "
                                f"the entry")
        where = f"{source}: data.{default}"
        try:
            entry = yaml.safe_load(entries[default]) if isinstance(entries[default], str) else entries[default]
        except yaml.YAMLError as exc:
            raise TemplateError(f"{where} is not valid YAML ({exc.__class__.__name__}); fix the syntax") from None
        return cls.from_dict(entry, source=where)

    @classmethod
    def from_file(cls, path: str | Path) -> ArtifactRepository:
        """Read a YAML file in Argo's artifact-repository format (or a ConfigMap holding one)."""
        from cvatflow.templates.yamlsafe import load_file

        path = Path(path)
        data = load_file(path, "artifact-repository file", "give the path of Argo's artifact-repository YAML")
        return cls.from_dict(data, source=str(path))


def _check(name: str, body: dict[str, Any], source: str) -> None:
    """Refuse what Argo would not read: unknown fields (Argo drops them silently), a missing required field, a
    malformed Secret reference or option object."""
    kind = KINDS[name]
    known = kind.shared | kind.repository_only | {kind.format_field}
    unknown = sorted(set(body) - known)
    if unknown:
        raise TemplateError(f"{source}: {name} has no field {', '.join(unknown)} (Argo would drop it silently); "
                            f"its fields are {', '.join(sorted(known))}")
    for required in kind.required:
        if not body.get(required):
            raise TemplateError(f"{source}: `{name}.{required}` is required; set it")
    for key in kind.secrets | {"serverSideCustomerKeySecret"}:
        value = body.get(key) if key in body else (body.get("encryptionOptions") or {}).get(key)
        if value is not None and (not isinstance(value, dict) or not value.get("name") or not value.get("key")
                                  or set(value) - SECRET_REF):
            raise TemplateError(f"{source}: `{name}.{key}` must be {{name: SECRET, key: KEY}}")
    for key, fields in NESTED.items():
        value = body.get(key)
        if value is None or (name, key) == ("oss", "createBucketIfNotPresent"):
            continue
        if not isinstance(value, dict) or set(value) - fields:
            raise TemplateError(f"{source}: `{name}.{key}` takes {', '.join(sorted(fields))}")
    flags = ["insecure", "useSDKCreds", "force"] + (["createBucketIfNotPresent"] if name == "oss" else [])
    for flag in flags:
        if flag in body and not isinstance(body[flag], bool):
            raise TemplateError(f"{source}: `{name}.{flag}` must be true or false, not {body[flag]!r}")
    if name == "s3" and body.get("addressingStyle") not in (None, "", "path", "virtual-hosted"):
        raise TemplateError(f"{source}: `s3.addressingStyle` is path or virtual-hosted, not {body['addressingStyle']!r}")
