"""TrainingRuns reconciled per second against kmock (create -> Workflow submitted), and the controller's memory.

The operator runs as `cvatflow operator` in its own process (so its memory is its own); kmock serves the API
in this one. Baseline, measured in the same run: the same submissions made by calling the handler logic
directly, one after another, without kopf; the ratio shows what kopf's watching and patching add or save.
"""
from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from _goal import Goals

# kmock shaped like a cvatflow installation is a test double: it lives with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("CVATFLOW_BENCH_RUNS", "500"))
BASELINE_RUNS = min(RUNS, 50)
NAMESPACE = "bench"
BURST = 10  # TrainingRuns created at once
TIMEOUT = 60.0  # for the operator to start
# The run stops measuring here so the bench stays under ~3 minutes; the rate is then over the runs done so far.
MEASURE_LIMIT = float(os.environ.get("CVATFLOW_BENCH_SECONDS", "140"))
CONFIG = {"backend": "kubernetes", "store": "s3://bench",
          "nodePools": {"label": "node.kubernetes.io/instance-type",
                        "options": [{"name": "T4", "value": "g4dn.xlarge",
                                     "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}


def training_run(name: str) -> dict:
    return {"apiVersion": "cvatflow.io/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "resourceVersion": "1"},
            "spec": {"template": {"name": "detr-training"},
                     "source": {"dataset": f"datasets/bench/{name}/"},
                     "parameters": {"cvat-num-classes": "3", "epochs": "2"}}}


def start_operator(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`cvatflow operator` as the chart runs it, against kmock ($CVATFLOW_KUBE_URL), logging to `log`."""
    verbose = ["--verbose"] if os.environ.get("CVATFLOW_BENCH_LOG") else []
    with log.open("w") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "cvatflow.cli", "operator", "--all-namespaces", "--standalone",
                                 *verbose], env=env, stdout=out, stderr=subprocess.STDOUT)


def memory_mib(pid: int) -> dict[str, float]:
    """Resident and peak resident memory (MiB) and CPU time used (s) of a process (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    fields = {"cpu": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def workflow_exists(kmock, name: str) -> bool:
    from kube_mock import WORKFLOWS

    try:  # `in` does not parse the resource string; indexing does
        return not kmock.objects[WORKFLOWS, NAMESPACE, name].deleted
    except KeyError:
        return False


async def baseline(kmock) -> float:
    """Runs per second of the submission logic alone (no kopf): submit() one run after another."""
    from cvatflow.config import NodePools, Settings
    from cvatflow.controller.cluster import Cluster
    from cvatflow.controller.deps import Deps
    from cvatflow.controller.submit import submit

    settings = Settings(home=Path(tempfile.gettempdir()), store=CONFIG["store"],
                        node_pools=NodePools.from_dict(CONFIG["nodePools"]))
    deps = Deps(cluster=Cluster(), settings=settings, checkpoint_exists=lambda prefix: True)

    def run_all() -> float:
        start = time.perf_counter()
        for i in range(BASELINE_RUNS):
            status = submit(training_run(f"base-{i:04d}"), deps)
            assert status.get("workflowName"), status
        return BASELINE_RUNS / (time.perf_counter() - start)

    return await asyncio.to_thread(run_all)


async def post_runs(url: str, names: list[str], started: dict[str, float]) -> None:
    async with aiohttp.ClientSession() as session:
        async def post(name: str) -> None:
            started[name] = time.perf_counter()
            async with session.post(f"{url}/apis/cvatflow.io/v1alpha1/namespaces/{NAMESPACE}/trainingruns",
                                    json=training_run(name)) as response:
                response.raise_for_status()

        for i in range(0, len(names), BURST):  # like `kubectl apply` of a folder: bursts, not one at a time
            await asyncio.gather(*(post(n) for n in names[i:i + BURST]))


async def wait_for(kmock, names: list[str], seen: dict[str, float], process, deadline: float,
                   required: bool = True) -> None:
    """Record when each run's Workflow appears; past the deadline, fail (`required`) or stop measuring."""
    pending = set(names)
    while pending:
        now = time.perf_counter()
        for name in [n for n in pending if workflow_exists(kmock, n)]:
            seen[name] = now
            pending.discard(name)
        if process.poll() is not None:
            raise RuntimeError(f"the operator exited with {process.returncode}")
        if now > deadline:
            if required:
                raise RuntimeError(f"{len(pending)} of {len(names)} runs not submitted in time")
            return
        await asyncio.sleep(0.2)  # each kmock lookup costs ~13 us of the CPU kmock serves with


async def watching(kmock, process, deadline: float) -> None:
    """Wait until the operator watches both resources: kmock 0.8 drops events written while a watch starts."""
    from kmock import action

    wanted = {"trainingruns", "workflows"}
    while not wanted <= {r.resource.plural for r in list(kmock) if r.action == action.WATCH and r.resource}:
        if process.poll() is not None or time.perf_counter() > deadline:
            raise RuntimeError("the operator never started watching")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)


async def main() -> int:
    from kmock import Server

    import kube_mock as mock

    template = yaml.safe_load((ROOT / "workflow_templates" / "detr-training.yaml").read_text())
    # Requests in flight stay recorded (kmock matches each against the record); older ones are forgotten.
    async with mock.versioned_emulator()(keep_requests=64) as kmock, Server(kmock):
        mock.declare(kmock, NAMESPACE, templates=[template])
        os.environ["CVATFLOW_KUBE_URL"] = str(kmock.url)
        base_rate = await baseline(kmock)

        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.yaml"
            config.write_text(yaml.safe_dump(CONFIG))
            env = {**os.environ, "CVATFLOW_CONFIG": str(config), "CVATFLOW_HOME": tmp}
            log = Path(os.environ.get("CVATFLOW_BENCH_LOG") or Path(tmp) / "operator.log")
            process = start_operator(env, log)
            try:
                start = time.perf_counter()
                await watching(kmock, process, start + TIMEOUT)
                warm: dict[str, float] = {}
                await post_runs(str(kmock.url), ["warm-up"], {})
                await wait_for(kmock, ["warm-up"], warm, process, start + TIMEOUT)
                startup = time.perf_counter() - start
                idle = memory_mib(process.pid)

                names = [f"run-{i:04d}" for i in range(RUNS)]
                posted: dict[str, float] = {}
                seen: dict[str, float] = {}
                start = time.perf_counter()
                await asyncio.gather(post_runs(str(kmock.url), names, posted),
                                     wait_for(kmock, names, seen, process, start + MEASURE_LIMIT, required=False))
                elapsed = (max(seen.values()) if seen else time.perf_counter()) - start
                busy = memory_mib(process.pid)
            except Exception:
                print(log.read_text()[-3000:], file=sys.stderr)
                raise
            finally:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    done = len(seen)
    rate = done / elapsed
    latencies = sorted((seen[n] - posted[n]) * 1000 for n in seen)
    print(f"TrainingRuns: {RUNS}, created in bursts of {BURST} via the API; operator = `cvatflow operator` (kopf)")
    if done < RUNS:
        print(f"NOTE: {done} of {RUNS} submitted when measuring stopped at {MEASURE_LIMIT:.0f} s")
    print(f"operator startup to first Workflow:     {startup:8.2f} s")
    print(f"reconciled (create -> Workflow):        {rate:8.1f} runs/s  ({elapsed:.1f} s for {done})")
    print(f"latency create -> Workflow p50 / p95:   {statistics.median(latencies):8.0f} / "
          f"{latencies[int(len(latencies) * 0.95) - 1]:.0f} ms")
    print(f"baseline: submit() alone, sequential:   {base_rate:8.1f} runs/s  ({BASELINE_RUNS} runs)")
    print(f"ratio operator / baseline:              {rate / base_rate:8.2f}")
    print(f"controller memory idle (1 run):         {idle['VmRSS']:8.1f} MiB RSS")
    print(f"controller memory after {done} runs:    {busy['VmRSS']:8.1f} MiB RSS, peak {busy['VmHWM']:.1f} MiB")
    print(f"controller CPU per run:                 {(busy['cpu'] - idle['cpu']) * 1000 / max(done, 1):8.1f} ms "
          f"(the rest of the time is kmock, in this process)")
    print(f"memory per run held:                    {(busy['VmRSS'] - idle['VmRSS']) * 1024 / max(done, 1):8.1f} KiB")
    goals = Goals(__file__)  # no goal is set for these: measured and shown
    goals.note("TrainingRuns reconciled per second", rate, " runs/s")
    goals.note("operator / sequential submit() rate", rate / base_rate, "x")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
