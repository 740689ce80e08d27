"""Node pools meet pods: the resources a pool gives a step, its GPU toleration, and the check against allocatable."""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

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
