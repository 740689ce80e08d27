"""Node pools meet pods: the resources a pool gives a step, its GPU toleration, and the check against allocatable."""
from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cvatflow.errors import Problem

if TYPE_CHECKING:
    from cvatflow.config import NodePool
    from cvatflow.templates.template import Template

# The hidden parameter that carries a pool's podSpecPatch into the steps (cvatflow.templates.steps).
NODE_POOL_PATCH = "sys-node-pool-patch"
# A JobSet's pods (multi-node training) take no podSpecPatch: the same placement reaches them as three hidden
# parameters whose JSON Argo substitutes into the manifest (cvatflow.templates.jobset).
NODE_POOL_SELECTOR = "sys-node-pool-selector"
NODE_POOL_TOLERATIONS = "sys-node-pool-tolerations"
NODE_POOL_RESOURCES = "sys-node-pool-resources"

# Extended resources that mean "this pool has GPUs" (Onepanel's docs name these two).
GPU_SUFFIX = "/gpu"
SECTIONS = ("requests", "limits")
# Reads a pool's allocatable from the cluster: (label, value) -> {"cpu": "3920m", ...} or None when unknown.
AllocatableLookup = Callable[[str, str], "dict[str, str] | None"]


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity ("500m", "16Gi", "1.5", 2) as a number of base units (cores, bytes, devices).

    Raises ValueError for text that is not a quantity.
    """
    from kubernetes.utils import parse_quantity

    return Decimal(parse_quantity(value if isinstance(value, str) else str(value)))


def scaled(value: str, factor: int) -> str:
    """A quantity times a whole `factor`, in the same unit: ("4Gi", 2) -> "8Gi", ("500m", 3) -> "1500m".

    Raises ValueError for text that is not a quantity.
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)\s*", str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    if factor == 1:
        return str(value).strip()
    number, unit = match.groups()
    return f"{(Decimal(number) * factor).normalize():f}{unit}"


def clean_resources(resources: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    """`{requests: {...}, limits: {...}}` with string values, empty sections dropped."""
    out: dict[str, dict[str, str]] = {}
    for section in SECTIONS:
        values = (resources or {}).get(section) or {}
        if isinstance(values, dict) and values:
            out[section] = {str(k): str(v) for k, v in values.items()}
    return out


def gpu_resources(resources: dict[str, Any] | None, allocatable: dict[str, Any] | None = None) -> list[str]:
    """The GPU resource names (nvidia.com/gpu, amd.com/gpu) a pool's resources or allocatable give a positive count."""
    names: set[str] = set()
    for values in [*(clean_resources(resources).values()), allocatable or {}]:
        for name, value in values.items():
            if name.endswith(GPU_SUFFIX) and _positive(value):
                names.add(name)
    return sorted(names)


def pool_resources(defaults: dict[str, Any], pool: dict[str, Any] | None,
                   allocatable: dict[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """The resources a step gets on a pool.

    Onepanel's rule: a pool that sets resources replaces the step's (its `limits: {nvidia.com/gpu: 1}` is the
    container's whole resources then). A pool without resources keeps the step's defaults, which ask for no
    GPU; where the pool is known to have GPUs (its allocatable), one GPU is added so the step can use it.
    """
    mine = clean_resources(pool)
    if mine:
        return mine
    out = clean_resources(defaults)
    for name in gpu_resources(None, allocatable)[:1]:
        out.setdefault("limits", {})[name] = "1"
    return out


def tolerations(resources: dict[str, Any] | None, allocatable: dict[str, Any] | None = None,
                extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Tolerations of a pod on the pool: the pool's own, plus `<gpu resource>:NoSchedule` on GPU pools (GKE and
    the NVIDIA device plugin's guides taint GPU nodes `nvidia.com/gpu`, so only GPU pods land there)."""
    out = [dict(t) for t in extra or []]
    for name in gpu_resources(resources, allocatable):
        wanted = {"key": name, "operator": "Exists", "effect": "NoSchedule"}
        if wanted not in out:
            out.append(wanted)
    return out


def requested(resources: dict[str, Any]) -> dict[str, Decimal]:
    """What the scheduler reserves for a container: its requests, or its limits where it gives no request
    (Kubernetes defaults a missing request to the limit)."""
    cleaned = clean_resources(resources)
    out = {name: quantity(v) for name, v in cleaned.get("limits", {}).items()}
    out.update({name: quantity(v) for name, v in cleaned.get("requests", {}).items()})
    return out


def shortfalls(requests: dict[str, Decimal], allocatable: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    """(resource, requested, allocatable) for every resource a pod asks more of than a node allocates.

    A resource the node does not list counts as 0 (a CPU node allocates no nvidia.com/gpu).
    """
    have = {str(k): quantity(v) for k, v in (allocatable or {}).items()}
    return [(name, want, have.get(name, Decimal(0))) for name, want in sorted(requests.items())
            if want > have.get(name, Decimal(0))]


def gpu_count(resources: dict[str, Any] | None, allocatable: dict[str, Any] | None = None) -> int:
    """GPUs one pod gets on a pool: the most its resources name (limits or requests), else what a node allocates;
    0 where neither names a GPU resource."""
    found = [quantity(v) for values in clean_resources(resources).values() for name, v in values.items()
             if name.endswith(GPU_SUFFIX) and _positive(v)]
    if not found:
        found = [quantity(v) for name, v in (allocatable or {}).items() if name.endswith(GPU_SUFFIX) and _positive(v)]
    return int(max(found)) if found else 0


def with_gpus(resources: dict[str, dict[str, str]], count: int) -> dict[str, dict[str, str]]:
    """`resources` with each GPU resource it names set to `count` (the processes torchrun starts on the pod)."""
    return {section: {name: str(count) if name.endswith(GPU_SUFFIX) else v for name, v in values.items()}
            for section, values in resources.items()}


def pod_patch(pool: NodePool, label: str, allocatable: dict[str, str] | None = None, gpus: int = 0,
              requests: dict[str, str] | None = None) -> dict[str, Any]:
    """The strategic-merge patch that puts a pod on `pool`: its nodeSelector, the GPU toleration on GPU pools and
    the pool's resources, which replace the main container's whole `resources` (`$patch: replace`, Onepanel's rule;
    a plain merge would keep the step's own requests beside them). A pool without resources but with GPUs in its
    allocatable adds a GPU limit to the step's own resources.

    `gpus` > 0 is the processes the step starts (its `gpus` parameter): the pod asks that many GPUs, and, on a pool
    without resources, `requests` (the step's per-process CPU and memory) times that many.
    """
    patch: dict[str, Any] = {"nodeSelector": {label: pool.value}}
    tolerated = tolerations(pool.resources, allocatable, pool.tolerations)
    if tolerated:
        patch["tolerations"] = tolerated
    resources = clean_resources(pool.resources)
    if resources:
        patch["containers"] = [{"name": "main", "resources": {"$patch": "replace",
                                                              **(with_gpus(resources, gpus) if gpus else resources)}}]
        return patch
    main: dict[str, Any] = {}
    if requests and gpus > 1:
        main["requests"] = {name: scaled(v, gpus) for name, v in requests.items()}
    names = gpu_resources(None, allocatable)[:1]
    if names:
        main["limits"] = {names[0]: str(gpus or 1)}
    if main:
        patch["containers"] = [{"name": "main", "resources": main}]
    return patch


def jobset_placement(pool: NodePool | None, label: str, allocatable: dict[str, str] | None, gpus: int,
                     requests: dict[str, str]) -> dict[str, Any]:
    """What the hidden JobSet parameters carry for a multi-node run: the pods' nodeSelector, tolerations and main
    container resources (the pool's, or the step's per-process `requests` times `gpus`, with `gpus` GPUs where
    the pool has them)."""
    own = {"requests": {name: scaled(v, max(gpus, 1)) for name, v in requests.items()}}
    if pool is None:
        return {NODE_POOL_SELECTOR: {}, NODE_POOL_TOLERATIONS: [], NODE_POOL_RESOURCES: own}
    resources = pool_resources(own, pool.resources, allocatable)
    return {NODE_POOL_SELECTOR: {label: pool.value},
            NODE_POOL_TOLERATIONS: tolerations(pool.resources, allocatable, pool.tolerations),
            NODE_POOL_RESOURCES: with_gpus(resources, gpus) if gpus else resources}


def patched_steps(template: Template) -> list[dict[str, Any]]:
    """The template's pod templates that take the node-pool patch."""
    marker = "workflow.parameters." + NODE_POOL_PATCH
    return [t for t in template.container_templates() if marker in str(t.get("podSpecPatch") or "")]


def fit_problems(template: Template, pool: NodePool, label: str, allocatable: dict[str, str],
                 parameter: str, gpus: int = 0) -> list[Problem]:
    """One problem per step whose pod, on `pool`, asks more than one of its nodes allocates (it would stay
    Pending): the main container with the pool's resources (as pod_patch gives them for `gpus` processes), plus
    the step's sidecars."""
    by_numbers: dict[str, list[str]] = {}  # steps asking the same (train, train-from-checkpoint) share a line
    for step in patched_steps(template):
        container = step.get("container") or step.get("script") or {}
        own = clean_resources(container.get("resources") or {})
        if gpus > 1 and "requests" in own:
            own["requests"] = {name: scaled(v, gpus) if name in ("cpu", "memory") else v
                               for name, v in own["requests"].items()}
        given = pool_resources(own, pool.resources, allocatable)
        wanted = requested(with_gpus(given, gpus) if gpus else given)
        for sidecar in step.get("sidecars") or []:
            for resource, amount in requested(sidecar.get("resources") or {}).items():
                wanted[resource] = wanted.get(resource, Decimal(0)) + amount
        short = shortfalls(wanted, allocatable)
        if short:
            numbers = "; ".join(f"{r} {show(r, want)} but a node allocates {show(r, have)}" for r, want, have in short)
            by_numbers.setdefault(numbers, []).append(repr(step.get("name")))
    return [Problem(parameter, f"node pool {pool.name!r} ({label}={pool.value}): "
                               f"{'steps' if len(steps) > 1 else 'step'} {', '.join(steps)} "
                               f"request{'' if len(steps) > 1 else 's'} {numbers}, so the pod would never schedule",
                    "choose a pool with bigger nodes, or lower the pool's resources in the nodePools config")
            for numbers, steps in by_numbers.items()]


def show(name: str, value: Decimal) -> str:
    """A quantity the way people write it: 3.92 for CPU, 14.5Gi for bytes, 1 for devices."""
    if name in ("memory", "ephemeral-storage") or name.startswith("hugepages-"):
        for unit, size in (("Ti", 2 ** 40), ("Gi", 2 ** 30), ("Mi", 2 ** 20), ("Ki", 2 ** 10)):
            if value >= size:
                return f"{(value / size).quantize(Decimal('0.1')).normalize():f}{unit}"
        return f"{value:f}"
    return f"{value.normalize():f}"


def _positive(value: Any) -> bool:
    try:
        return quantity(value) > 0
    except (ValueError, ArithmeticError):
        return False
