"""Where artifacts live: Argo's artifact-repository config (S3 or GCS), read from YAML or a ConfigMap."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cvatflow.errors import TemplateError

# Argo's default key format; Onepanel prefixed the namespace the same way.
DEFAULT_KEY_FORMAT = "artifacts/{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}"


@dataclass(frozen=True)
class SecretRef:
    """A key of a Kubernetes Secret (the value never enters cvatflow's parameters or logs)."""

    name: str
    key: str

    def to_argo(self) -> dict[str, str]:
        return {"name": self.name, "key": self.key}


@dataclass(frozen=True)
class ArtifactRepository:
    """The default artifact repository: `kind` is "s3" or "gcs"; Onepanel's shorthand keys complete against it."""

    kind: str
    bucket: str
    endpoint: str = ""
    region: str = ""
    insecure: bool = False
    access_key_secret: SecretRef | None = None
    secret_key_secret: SecretRef | None = None
    service_account_key_secret: SecretRef | None = None
    key_format: str = DEFAULT_KEY_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """The store URI of the bucket root (s3://bucket or gs://bucket)."""
        return f"{'s3' if self.kind == 's3' else 'gs'}://{self.bucket}"

    def location(self, key: str) -> dict[str, Any]:
        """An Argo artifact location (`{"s3": {...}}` or `{"gcs": {...}}`) for `key` in this repository."""
        if self.kind == "s3":
            body: dict[str, Any] = {"bucket": self.bucket, "key": key}
            if self.endpoint:
                body["endpoint"] = self.endpoint
            if self.region:
                body["region"] = self.region
            if self.insecure:
                body["insecure"] = True
            if self.access_key_secret:
                body["accessKeySecret"] = self.access_key_secret.to_argo()
            if self.secret_key_secret:
                body["secretKeySecret"] = self.secret_key_secret.to_argo()
            return {"s3": body}
        body = {"bucket": self.bucket, "key": key}
        if self.service_account_key_secret:
            body["serviceAccountKeySecret"] = self.service_account_key_secret.to_argo()
        return {"gcs": body}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "artifact repository") -> ArtifactRepository:
        """Read Argo's format: `{s3: {bucket, endpoint, region, insecure, accessKeySecret, ...}}` or `{gcs: {...}}`."""
        if not isinstance(data, dict):
            raise TemplateError(f"{source}: expected a mapping with an `s3` or `gcs` key; got {type(data).__name__}")
        if "archiveLogs" in data:
            data = {k: v for k, v in data.items() if k != "archiveLogs"}
        kinds = [k for k in ("s3", "gcs") if k in data]
        if len(kinds) != 1:
            raise TemplateError(f"{source}: name exactly one of `s3` or `gcs` (found {sorted(data) or 'nothing'})")
        kind = kinds[0]
        body = data[kind] or {}
        if not body.get("bucket"):
            raise TemplateError(f"{source}: `{kind}.bucket` is required; set it to the bucket artifacts go to")

        def ref(name: str) -> SecretRef | None:
            value = body.get(name)
            if value is None:
                return None
            if not isinstance(value, dict) or not value.get("name") or not value.get("key"):
                raise TemplateError(f"{source}: `{kind}.{name}` must be {{name: SECRET, key: KEY}}")
            return SecretRef(str(value["name"]), str(value["key"]))

        known = {"bucket", "endpoint", "region", "insecure", "accessKeySecret", "secretKeySecret",
                 "serviceAccountKeySecret", "keyFormat"}
        return cls(
            kind=kind,
            bucket=str(body["bucket"]),
            endpoint=str(body.get("endpoint", "")),
            region=str(body.get("region", "")),
            insecure=bool(body.get("insecure", False)),
            access_key_secret=ref("accessKeySecret"),
            secret_key_secret=ref("secretKeySecret"),
            service_account_key_secret=ref("serviceAccountKeySecret"),
            key_format=str(body.get("keyFormat", DEFAULT_KEY_FORMAT)),
            extra={k: v for k, v in body.items() if k not in known},
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ArtifactRepository:
        """Read a YAML file in Argo's artifact-repository format (or a ConfigMap holding one)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise TemplateError(f"{path}: no such artifact-repository file") from None
        except yaml.YAMLError as exc:
            raise TemplateError(f"{path}: not valid YAML ({exc.__class__.__name__}); fix the syntax") from None
        if isinstance(data, dict) and data.get("kind") == "ConfigMap":
            # Argo's `artifact-repositories` ConfigMap: the default entry is named by an annotation.
            entries = data.get("data") or {}
            default = ((data.get("metadata") or {}).get("annotations") or {}).get(
                "workflows.argoproj.io/default-artifact-repository")
            key = default or next(iter(entries), None)
            if key is None:
                raise TemplateError(f"{path}: the ConfigMap has no data entries")
            data = yaml.safe_load(entries[key])
        return cls.from_dict(data, source=str(path))
