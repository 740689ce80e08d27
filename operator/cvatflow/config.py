"""cvatflow's settings: a YAML file and environment variables; with nothing set, the embedded local default."""
from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvatflow.artifact_repository import ArtifactRepository
from cvatflow.errors import (
    ConfigError,
    CvatflowError,
)

BACKENDS = ("local", "kubernetes", "argo-server")
log = logging.getLogger(__name__)
_warned: set[tuple[str, str]] = set()  # (config file, key) already warned about in this process


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


def setting(default: Any = None, *, key: str | None = None, env: str | tuple[str, ...] | None = None,
            doc: str, factory: Callable[[], Any] | None = None) -> Any:
    """A Settings field: its config-file `key`, its environment variable(s) (which win) and what it does."""
    envs = (env,) if isinstance(env, str) else tuple(env or ())
    metadata = {"key": key, "env": envs, "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Settings:
    """Everything the CLI, the API server and the operator are configured with.

    Each field is a setting: `fields(Settings)[i].metadata` holds its config-file key, its environment
    variable(s) and its docstring (the README's configuration table is checked against them). Config-file
    keys cvatflow does not know stay in `extra`; known keys given there (older code) fill their fields.
    """

    home: Path = setting(key=None, env="CVATFLOW_HOME", doc="Folder of local runs, the local store and "  # noqa: RUF009
                         "config.yaml (default ~/.cvatflow).")
    store: str = setting("", key="store", env="CVATFLOW_STORE", doc="Object store URI for dumps and outputs: "
                         "s3://bucket/prefix, gs://bucket/prefix or file:///path (default <home>/store).")
    backend: str = setting("local", key="backend", env="CVATFLOW_BACKEND", doc="Where runs go: local, "
                           "kubernetes or argo-server.")
    namespace: str = setting("default", key="namespace", env="CVATFLOW_NAMESPACE",
                             doc="Kubernetes namespace of WorkflowTemplates and runs.")
    artifact_repository: ArtifactRepository | None = setting(key="artifactRepository", doc="Argo's artifact "  # noqa: RUF009
                                                             "repository (a mapping or the path of its YAML).")
    node_pools: NodePools = setting(key="nodePools", factory=NodePools, doc="Node pools offered by "  # noqa: RUF009
                                    "sys-node-pool: `{label, options}` or Onepanel's ConfigMap keys.")
    cvat_url: str = setting("", key="cvatUrl", env="CVAT_URL", doc="The CVAT server tasks are dumped from.")
    argo_server_url: str = setting("", key="argoServerUrl", env="ARGO_SERVER_URL",
                                   doc="Argo Server URL for the argo-server backend.")
    kubeconfig: str = setting("", env="KUBECONFIG", doc="kubeconfig file (default: in-cluster, then "
                              "~/.kube/config).")
    kube_url: str = setting("", env="CVATFLOW_KUBE_URL", doc="A Kubernetes API server URL used without TLS "
                            "checks or credentials (tests and local development only).")
    api_tokens: list[str] = setting(key="apiTokens", env="CVATFLOW_API_TOKENS", factory=list,  # noqa: RUF009
                                    doc="Bearer tokens the HTTP API accepts (comma-separated in the variable).")
    token_review: bool = setting(False, key="auth.tokenReview", env="CVATFLOW_TOKEN_REVIEW",
                                 doc="Also accept Kubernetes service-account tokens (TokenReview).")
    token_audiences: list[str] = setting(key="auth.audiences", factory=list,  # noqa: RUF009
                                         doc="Audiences a reviewed token must carry.")
    webhook_secret: str = setting("", key="webhookSecret", env="CVATFLOW_WEBHOOK_SECRET",
                                  doc="Shared secret of CVAT webhooks (X-Signature-256).")
    webhook_rules: list[dict[str, Any]] = setting(key="webhooks", factory=list,  # noqa: RUF009
                                                  doc="Rules that start runs on CVAT webhook events.")
    webhook_replay_window: float = setting(24 * 3600.0, key="webhookReplayWindow",
                                           doc="Seconds a webhook delivery may be late and still be accepted.")
    workflow_service_account: str = setting("", key="workflowServiceAccount",
                                            doc="Service account the Workflow pods run as.")
    dataset_dirs: list[str] = setting(key="datasetDirs", factory=list, doc="Server folders the API may read "  # noqa: RUF009
                                      "dataset paths from (besides <home>/datasets).")
    api_workers: int = setting(4, key="apiWorkers", doc="Background jobs (dumps, submissions) the API runs "
                               "at once.")
    events_interval: float = setting(1.0, key="eventsInterval", doc="Seconds between server-sent event "
                                     "updates of a run.")
    max_request_bytes: int = setting(1024 * 1024, key="maxRequestBytes", doc="Largest HTTP request body "
                                     "the API reads.")
    max_upload_bytes: int = setting(2 * 1024**3, key="maxUploadBytes", doc="Largest export zip the web UI "
                                    "may upload to train on without CVAT.")
    max_json_depth: int = setting(64, key="maxJsonDepth", doc="Deepest JSON nesting the API parses.")
    cvat_templates_label: str = setting("used-by=cvat", key="cvatTemplatesLabel",
                                        env=("CVAT_ONEPANEL_WORKFLOWS_LABEL", "ONEPANEL_CVAT_WORKFLOWS_LABEL"),
                                        doc="Label of the templates offered to CVAT (Onepanel's "
                                        "`key=used-by,value=cvat` form works too).")
    workspace_uid: str = setting("", key="workspaceUid", env="ONEPANEL_RESOURCE_UID",
                                 doc="Onepanel workspace uid put on runs started from CVAT.")
    metrics_interval: float = setting(30.0, env="CVATFLOW_METRICS_INTERVAL",
                                      doc="Seconds between the operator's reads of a running run's metrics (environment only: "
                                      "the operator's timers are set up before the config file is read).")
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        extra, self.extra = self.extra, {}
        self.apply(extra)

    def apply(self, data: dict[str, Any], source: str = "settings") -> None:
        """Set the fields whose config-file keys `data` has (camelCase, as in config.yaml); other keys go to
        `extra`."""
        data = dict(data)
        for f in fields(self):
            key = f.metadata.get("key")
            if key and "." not in key and key in data:
                setattr(self, f.name, _convert(f, data.pop(key), source))
        auth = data.pop("auth", None)
        if isinstance(auth, dict):
            self.token_review = bool(auth.get("tokenReview", self.token_review))
            self.token_audiences = list(auth.get("audiences") or self.token_audiences)
        self.extra.update(data)

    @property
    def cvat_token(self) -> str:
        """CVAT_ACCESS_TOKEN, read from the environment only: secrets never sit in config files cvatflow writes
        or logs."""
        return secret("CVAT_ACCESS_TOKEN")

    @property
    def argo_token(self) -> str:
        """ARGO_TOKEN (the Argo Server's bearer token), from the environment only, like cvat_token."""
        return secret("ARGO_TOKEN")


#: Secrets: environment variables only, never a config-file key.
SECRETS = {"CVAT_ACCESS_TOKEN": "CVAT personal access token used for dumps.",
           "ARGO_TOKEN": "Bearer token for the Argo Server."}


def secret(name: str) -> str:
    """One of SECRETS from the environment ('' when unset); read when used, never stored in Settings."""
    if name not in SECRETS:
        raise KeyError(f"{name} is not one of cvatflow's secrets")
    return os.environ.get(name, "")


def _convert(f: Any, value: Any, source: str) -> Any:
    """A config or environment value as the field's type; a ConfigError naming the setting otherwise."""
    kind = str(f.type)
    where = f"{source}: {f.metadata.get('key') or f.metadata['env'][0]}"
    try:
        if kind.startswith("bool"):
            return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
        if kind.startswith(("int", "float")):
            return _positive(value, kind.startswith("int"), where)
        if kind.startswith("list[str]"):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return [str(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where} = {value!r} is not {kind.split('[')[0].split(' ')[0]}; fix the value") from None
    return value


def _positive(value: Any, integer: bool, where: str) -> int | float:
    """A count or a number of seconds/bytes from the config or environment: above 0 (0 workers or a 0 s poll
    interval would hang or spin), and a whole number for an int setting. ConfigError naming `where` otherwise."""
    if isinstance(value, bool):  # YAML `yes`/`true`: int(True) would quietly be 1
        raise TypeError
    if integer and isinstance(value, float) and not value.is_integer():
        raise ValueError  # 2.5 workers: int() would quietly round it down
    number = int(value) if integer else float(value)
    if not number > 0:  # also refuses nan
        raise ConfigError(f"{where} = {value!r} must be greater than 0; fix the value")
    return number


def settings_table() -> list[tuple[str, str, str, str]]:
    """(field, config-file key, environment variables, docstring) of every setting, for the README and `--help`."""
    rows = [(f.name, f.metadata["key"] or "", ", ".join(f.metadata["env"]), f.metadata["doc"])
            for f in fields(Settings) if f.metadata]
    return rows + [("", "", name, doc) for name, doc in SECRETS.items()]


def metrics_interval(env: dict[str, str] | None = None) -> float:
    """The operator's metrics interval, needed when its handlers are registered (before settings load)."""
    value = (os.environ if env is None else env).get("CVATFLOW_METRICS_INTERVAL")
    if not value:
        return 30.0
    try:
        return _positive(value, False, "CVATFLOW_METRICS_INTERVAL")
    except (TypeError, ValueError):
        raise ConfigError(f"CVATFLOW_METRICS_INTERVAL = {value!r} is not a number of seconds; fix the value") from None


def _nested(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


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
    if data.get("auth") is not None and not isinstance(data["auth"], dict):  # else tokenReview would be ignored
        raise ConfigError(f"{source}: auth = {data['auth']!r} is not a mapping; write it as "
                          f"`auth: {{tokenReview: true, audiences: [...]}}`")

    known = {f.metadata["key"].split(".")[0] for f in fields(Settings) if f.metadata.get("key")}
    _warn_unknown(data, known, source)

    backend = env.get("CVATFLOW_BACKEND") or data.get("backend") or "local"
    if backend not in BACKENDS:
        raise ConfigError(f"{source}: unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")
    repository = data.get("artifactRepository")
    if isinstance(repository, str):
        repository = _repository_file(repository, path)
    elif repository is not None:
        repository = ArtifactRepository.from_dict(repository, source=f"{source}: artifactRepository")
    store = env.get("CVATFLOW_STORE") or data.get("store") or (repository.uri if repository else "")
    if store:
        _check_store(store, "CVATFLOW_STORE" if env.get("CVATFLOW_STORE") else f"{source}: store")
    if not store and repository is not None and backend != "local":
        # A dump in this machine's folder would never reach the cluster's pods.
        raise ConfigError(f"{source}: cvatflow stores dumps in S3 or GCS, not in the {repository.kind} artifact "
                          f"repository; set `store:` to an s3:// or gs:// bucket the training pods can read")
    if not store:
        store = (home / "store").resolve().as_uri()
    special = {"home": home, "store": store, "backend": backend, "artifact_repository": repository,
               "node_pools": NodePools.from_dict(data.get("nodePools"), source=f"{source}: nodePools")}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in special or not f.metadata:
            continue
        found = next((env[name] for name in f.metadata["env"] if env.get(name)), None)
        if found is None and f.metadata["key"]:
            found = _nested(data, f.metadata["key"])
            if found in ("", None):
                found = None
        if found is not None:
            values[f.name] = _convert(f, found, source)
    if "namespace" in values:
        values["namespace"] = _namespace(values["namespace"], "CVATFLOW_NAMESPACE" if env.get("CVATFLOW_NAMESPACE")
                                         else f"{source}: namespace")
    return Settings(**special, **values, extra={k: v for k, v in data.items() if k not in known})


def _warn_unknown(data: dict[str, Any], known: set[str], source: str) -> None:
    """Log a warning for each top-level key (and `auth` key) cvatflow does not read, with the closest known key.

    A warning, not an error: other tools may share the file, and such keys stay in Settings.extra. Each
    (file, key) is warned about once per process, since every command loads the settings again.
    """
    unknown = [(str(k), known) for k in data if str(k) not in known]
    if isinstance(data.get("auth"), dict):
        auth = {f.metadata["key"].split(".", 1)[1] for f in fields(Settings) if
                str(f.metadata.get("key")).startswith("auth.")}
        unknown += [(f"auth.{k}", {f"auth.{a}" for a in auth}) for k in data["auth"] if str(k) not in auth]
    for key, choices in unknown:
        if (source, key) in _warned:
            continue
        _warned.add((source, key))
        lower = {choice.lower(): choice for choice in choices}
        close = difflib.get_close_matches(key.lower(), list(lower), n=1)
        hint = f"did you mean {lower[close[0]]!r}? " if close else ""
        kept = "" if key.startswith("auth.") else " (it stays in Settings.extra)"
        log.warning(f"{source}: unknown key {key!r}; {hint}cvatflow does not read it{kept}. This is cvatflow's "
                    f"own check, a warning only: other tools may share this file")


def _repository_file(name: str, config: Path | None) -> ArtifactRepository:
    """The artifact repository in the YAML file `name` that the config file `config` names as artifactRepository;
    a ConfigError naming the config file and key when it is missing or unreadable."""
    where = f"{config or 'settings'}: artifactRepository"
    path = Path(name).expanduser()
    if not path.is_file():
        beside = config.parent / path if config is not None and not path.is_absolute() else None
        hint = (f" (there is one beside the config file: write {str(beside)!r})"
                if beside is not None and beside.is_file() else
                f" (a relative path is read from the current folder, {Path.cwd()})" if not path.is_absolute() else "")
        raise ConfigError(f"{where} = {name!r}: no such file{hint}; give the path of Argo's artifact-repository "
                          f"YAML, or write the repository itself under artifactRepository")
    try:
        return ArtifactRepository.from_file(path)
    except CvatflowError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_store(uri: Any, where: str) -> None:
    """Refuse a store URI that no store of cvatflow.storage opens, naming `where` (the config key or variable)."""
    from cvatflow.storage import USAGE, uri_problem

    problem = uri_problem(uri) if isinstance(uri, str) else "is not text"
    if problem:
        raise ConfigError(f"{where} = {uri!r} {problem}; use {USAGE}")


def _namespace(namespace: Any, where: str) -> str:
    """`namespace` as text (YAML reads `namespace: 42` as a number); a ConfigError naming `where` and the rule
    when Kubernetes would refuse it (a DNS-1123 label)."""
    from cvatflow.names import DNS1123_LABEL

    if isinstance(namespace, int) and not isinstance(namespace, bool):
        namespace = str(namespace)
    if not (isinstance(namespace, str) and re.fullmatch(DNS1123_LABEL, namespace)):
        raise ConfigError(f"{where} = {namespace!r} is not a Kubernetes namespace name: a DNS-1123 label is at "
                          f"most 63 lower-case letters, digits and '-', starting and ending with a letter or digit; "
                          f"fix the value")
    return namespace


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
