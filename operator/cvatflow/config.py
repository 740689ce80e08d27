"""cvatflow's settings: a YAML file and environment variables; with nothing set, the embedded local default."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cvatflow.artifact_repository import ArtifactRepository
from cvatflow.errors import CvatflowError

BACKENDS = ("local", "kubernetes", "argo-server")


class ConfigError(CvatflowError):
    """A setting that cannot be used."""


@dataclass(frozen=True)
class NodePool:
    """One node pool the dialog offers: display name, node label value, and the resources its pods get."""

    name: str
    value: str
    resources: dict[str, Any] = field(default_factory=dict)


@dataclass
class NodePools:
    """The node-pool config (Onepanel kept it in a ConfigMap: a label key and a list of options)."""

    label: str = "node.kubernetes.io/instance-type"
    pools: list[NodePool] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "node pools") -> NodePools:
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping with `label` and `options`")
        # Onepanel's ConfigMap keys are understood too.
        label = data.get("label") or data.get("applicationNodePoolLabel") or cls.label
        options = data.get("options", data.get("applicationNodePoolOptions")) or []
        if isinstance(options, str):
            options = yaml.safe_load(options) or []
        pools = []
        for i, option in enumerate(options):
            if not isinstance(option, dict) or not option.get("value"):
                raise ConfigError(f"{source}: options[{i}] needs at least a `value` (the node label value)")
            resources = option.get("resources") or {}
            if not isinstance(resources, dict):
                raise ConfigError(f"{source}: options[{i}].resources must be a mapping of limits/requests")
            pools.append(NodePool(str(option.get("name") or option["value"]), str(option["value"]), resources))
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
