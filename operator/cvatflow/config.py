"""cvatflow's settings: a YAML file and environment variables; with nothing set, the embedded local default."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvatflow.artifact_repository import ArtifactRepository
from cvatflow.errors import CvatflowError

BACKENDS = ("local", "kubernetes", "argo-server")


class ConfigError(CvatflowError):
    """A setting that cannot be used."""


@dataclass(frozen=True)
class NodePool:
    """One node pool the dialog offers: display name, node label value, the resources its pods get (Onepanel's
    `resources`, replacing a step's own), what one of its nodes allocates (if configured) and extra tolerations."""

    name: str
    value: str
    resources: dict[str, Any] = field(default_factory=dict)
    allocatable: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)


POOL_KEYS = {"name", "value", "resources", "allocatable", "tolerations", "default"}


@dataclass
class NodePools:
    """The node-pool config (Onepanel kept it in a ConfigMap: a label key and a list of options)."""

    label: str = "node.kubernetes.io/instance-type"
    pools: list[NodePool] = field(default_factory=list)
    # Reads a pool's allocatable from the cluster's nodes, where the backend can (set at run time, not config).
    lookup: Callable[[str, str], dict[str, str] | None] | None = field(default=None, compare=False, repr=False)

    def allocatable(self, pool: NodePool) -> dict[str, str] | None:
        """What one node of `pool` allocates: configured, else read from the cluster, else None (unknown)."""
        if pool.allocatable:
            return pool.allocatable
        if self.lookup is None:
            return None
        try:
            return self.lookup(self.label, pool.value)
        except CvatflowError:
            return None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "node pools") -> NodePools:
        """Our `{label, options}` or Onepanel's `{applicationNodePoolLabel, applicationNodePoolOptions}` (the
        options a YAML list or the YAML text Onepanel's ConfigMap holds; a whole ConfigMap works too)."""
        from cvatflow.nodepool import clean_resources, quantity

        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping with `label` and `options`")
        if data.get("kind") == "ConfigMap":
            data = data.get("data") or {}
        for ours, onepanels in (("label", "applicationNodePoolLabel"), ("options", "applicationNodePoolOptions")):
            if data.get(ours) is not None and data.get(onepanels) is not None:
                raise ConfigError(f"{source}: give `{ours}` or Onepanel's `{onepanels}`, not both")
        label = data.get("label") or data.get("applicationNodePoolLabel") or cls.label
        options = data.get("options", data.get("applicationNodePoolOptions")) or []
        if isinstance(options, str):
            try:
                options = yaml.safe_load(options) or []
            except yaml.YAMLError as exc:
                raise ConfigError(f"{source}: applicationNodePoolOptions is not valid YAML "
                                  f"({exc.__class__.__name__}); fix the syntax") from None
        if not isinstance(options, list):
            raise ConfigError(f"{source}: options must be a list of {{name, value, resources}}")
        pools = []
        for i, option in enumerate(options):
            where = f"{source}: options[{i}]"
            if not isinstance(option, dict) or not option.get("value"):
                raise ConfigError(f"{where} needs at least a `value` (the node label value)")
            unknown = sorted(set(option) - POOL_KEYS)
            if unknown:
                raise ConfigError(f"{where}: unknown keys {', '.join(unknown)}; use {', '.join(sorted(POOL_KEYS))}")
            resources = option.get("resources") or {}
            allocatable = option.get("allocatable") or {}
            tolerations = option.get("tolerations") or []
            if not isinstance(resources, dict) or set(resources) - {"limits", "requests"}:
                raise ConfigError(f"{where}.resources must be a mapping of limits/requests")
            if not isinstance(allocatable, dict):
                raise ConfigError(f"{where}.allocatable must be a mapping like {{cpu: 3920m, memory: 14Gi}}")
            if not isinstance(tolerations, list) or not all(isinstance(t, dict) for t in tolerations):
                raise ConfigError(f"{where}.tolerations must be a list of Kubernetes tolerations")
            for section, values in [*((f"resources.{k}", v) for k, v in clean_resources(resources).items()),
                                    ("allocatable", allocatable)]:
                for name, value in values.items():
                    try:
                        quantity(value)
                    except (ValueError, ArithmeticError):
                        raise ConfigError(f"{where}: {section}.{name} = {value!r} is not a Kubernetes quantity; "
                                          f"write e.g. 4, 500m, 16Gi") from None
            pools.append(NodePool(str(option.get("name") or option["value"]), str(option["value"]), resources,
                                  {str(k): str(v) for k, v in allocatable.items()}, tolerations))
        return cls(label=str(label), pools=pools)


@dataclass
class Settings:
    """Everything the CLI, the API server and the operator are configured with."""

    home: Path
    store: str
    backend: str = "local"
    namespace: str = "default"
    artifact_repository: ArtifactRepository | None = None
    node_pools: NodePools = field(default_factory=NodePools)
    cvat_url: str = ""
    argo_server_url: str = ""
    kubeconfig: str = ""
    api_tokens: list[str] = field(default_factory=list)
    webhook_secret: str = ""
    webhook_rules: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cvat_token(self) -> str:
        """Read from the environment only: secrets never sit in config files cvatflow writes or logs."""
        return os.environ.get("CVAT_ACCESS_TOKEN", "")


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from `path` (or $CVATFLOW_CONFIG, or <home>/config.yaml if present), then the environment."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("CVATFLOW_HOME") or Path.home() / ".cvatflow").expanduser()
    path = Path(path) if path else (Path(env["CVATFLOW_CONFIG"]) if env.get("CVATFLOW_CONFIG") else None)
    if path is None and (home / "config.yaml").exists():
        path = home / "config.yaml"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file; create it or unset CVATFLOW_CONFIG") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}); fix the syntax") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
    source = str(path or "settings")

    backend = env.get("CVATFLOW_BACKEND") or data.get("backend") or "local"
    if backend not in BACKENDS:
        raise ConfigError(f"{source}: unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")
    repository = data.get("artifactRepository")
    if isinstance(repository, str):
        repository = ArtifactRepository.from_file(repository)
    elif repository is not None:
        repository = ArtifactRepository.from_dict(repository, source=f"{source}: artifactRepository")
    store = env.get("CVATFLOW_STORE") or data.get("store") or (repository.uri if repository else "")
    if not store and repository is not None and backend != "local":
        # A dump in this machine's folder would never reach the cluster's pods.
        raise ConfigError(f"{source}: cvatflow stores dumps in S3 or GCS, not in the {repository.kind} artifact "
                          f"repository; set `store:` to an s3:// or gs:// bucket the training pods can read")
    if not store:
        store = (home / "store").resolve().as_uri()
    tokens = env.get("CVATFLOW_API_TOKENS")
    return Settings(
        home=home,
        store=store,
        backend=backend,
        namespace=env.get("CVATFLOW_NAMESPACE") or data.get("namespace") or "default",
        artifact_repository=repository,
        node_pools=NodePools.from_dict(data.get("nodePools"), source=f"{source}: nodePools"),
        cvat_url=env.get("CVAT_URL") or data.get("cvatUrl") or "",
        argo_server_url=env.get("ARGO_SERVER_URL") or data.get("argoServerUrl") or "",
        kubeconfig=env.get("KUBECONFIG") or "",
        api_tokens=[t.strip() for t in tokens.split(",") if t.strip()] if tokens else list(data.get("apiTokens") or []),
        webhook_secret=env.get("CVATFLOW_WEBHOOK_SECRET") or data.get("webhookSecret") or "",
        webhook_rules=list(data.get("webhooks") or []),
        extra={k: v for k, v in data.items() if k not in {
            "backend", "namespace", "artifactRepository", "store", "nodePools", "cvatUrl", "argoServerUrl",
            "apiTokens", "webhookSecret", "webhooks"}},
    )


# -- Input limits (issue 13): what cvatflow reads from an export, set by environment variables ---------------

class InputLimits(BaseModel):
    """Limits on an export cvatflow reads (archives, folders, COCO JSON, CVAT XML, YOLO and MOT text files).

    Each field is set by the environment variable `CVATFLOW_MAX_<FIELD IN CAPITALS>` (see `LIMIT_VARIABLES`);
    the defaults fit any export CVAT writes. Read them with `input_limits()`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    archive_bytes: int = Field(50 * 1024 ** 3, gt=0)
    """Bytes an export archive may unpack to, or a folder export may hold (default 50 GiB)."""
    archive_files: int = Field(2_000_000, gt=0)
    """Entries (files and folders) in an export archive or folder."""
    archive_ratio: float = Field(200, gt=1)
    """Unpacked : packed size of a zip (or one entry over 1 MiB) above which it is refused as a compression bomb."""
    entry_name: int = Field(4096, gt=0)
    """Characters in one entry's path inside an archive or folder (Linux's PATH_MAX)."""
    annotation_file_bytes: int = Field(2 * 1024 ** 3, gt=0)
    """Bytes of one annotation file read whole: CVAT XML, VOC/LabelMe XML, YOLO/MOT text, data.yaml (2 GiB)."""
    images: int = Field(10_000_000, gt=0)
    """Images in one annotation file (COCO `images`, CVAT XML `<image>`s or video frames)."""
    annotations: int = Field(50_000_000, gt=0)
    """Objects (COCO annotations, CVAT shapes and track frames, YOLO and MOT lines) in one export."""
    categories: int = Field(100_000, gt=0)
    """Classes (COCO categories, CVAT labels, YOLO names)."""
    name_length: int = Field(1024, gt=0)
    """Characters in an image file name, class name or attribute (S3 keys are at most 1,024 bytes)."""
    coordinates: int = Field(1_000_000, gt=0)
    """Numbers in one polygon or mask run-length list."""
    image_side: int = Field(100_000, gt=0)
    """Pixels on an image side as an annotation file declares it; larger is no photograph CVAT can show."""
    mask_pixels: int = Field(400_000_000, gt=0)
    """Pixels of an image a CVAT XML mask is drawn on (the mask is decoded at full size: one byte a pixel)."""


#: Environment variable -> InputLimits field.
LIMIT_VARIABLES = {f"CVATFLOW_MAX_{name.upper()}": name for name in InputLimits.model_fields}


def input_limits(env: dict[str, str] | None = None) -> InputLimits:
    """The input limits: defaults, overridden by CVATFLOW_MAX_* environment variables (read on every call).

    Raises ConfigError naming the variable when a value is not a positive number.
    """
    env = os.environ if env is None else env
    values = {name: env[variable] for variable, name in LIMIT_VARIABLES.items() if env.get(variable, "").strip()}
    if not values:
        return _DEFAULT_LIMITS
    try:
        return InputLimits(**{name: value.strip().replace("_", "") for name, value in values.items()})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        variable = f"CVATFLOW_MAX_{str(error['loc'][0]).upper()}"
        raise ConfigError(f"{variable}={env.get(variable)!r}: {error['msg']}; give a positive whole number "
                          f"(or unset it for the default {InputLimits.model_fields[error['loc'][0]].default})") \
            from None


_DEFAULT_LIMITS = InputLimits()
