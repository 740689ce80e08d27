"""HTTP API throughput: requests/s and p50/p99 latency of template listing and execution status, 64 clients.

`cvatflow serve` runs in its own process on loopback (local backend, a run with training events in its
logs); an httpx async client keeps 64 requests in flight for a fixed time per endpoint. GET /healthz is
measured the same way as the baseline: the floor that FastAPI + uvicorn + this client reach on this machine.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _goal import Goals

CLIENTS = 64
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_run(home: Path) -> str:
    """A finished local run with a few hundred training events, as the status endpoint reads them."""
    from cvatflow import events as ev
    from cvatflow.local.executor import LocalExecutor, write_json
    from cvatflow.templates import get_template, render

    executor = LocalExecutor(home / "runs", (home / "store").as_uri())
    run_dir = executor.create(render(get_template("maskrcnn-training")), {"epochs": "10"}, "bench-run",
                              {"app.kubernetes.io/managed-by": "cvatflow", "cvatflow.io/cvat-task-id": "1"})
    lines = []
    for step in range(300):
        lines.append(json.dumps(ev.progress("train", step, 300)))
        if step % 30 == 29:
            lines.append(json.dumps(ev.metrics("train", step / 30, {"loss": 1.0 / (step + 1)})))
            lines.append(json.dumps(ev.metrics("val", step / 30, {"mAP": step / 300})))
    (run_dir / "logs" / "train.log").write_text("\n".join(lines) + "\n")
    write_json(run_dir / "status.json", {
        "phase": "Succeeded", "progress": "1/1", "startedAt": "2026-11-22T00:00:00Z",
        "finishedAt": "2026-11-22T00:10:00Z", "message": "",
        "nodes": {"train": {"phase": "Succeeded", "template": "train"}}})
    return "bench-run"


async def load(url: str, seconds: float) -> tuple[int, list[float], int]:
    """Keep CLIENTS requests in flight for `seconds`; returns (count, latencies in ms, failures)."""
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, limits=limits,
                                 timeout=30) as http:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < end:
                start = time.perf_counter()
                answer = await http.get(url)
                latencies.append((time.perf_counter() - start) * 1000)
                failures += answer.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    return int(len(latencies) / elapsed), latencies, failures


def report(name: str, rate: int, latencies: list[float], failures: int, baseline: int | None = None) -> None:
    cuts = statistics.quantiles(latencies, n=100)
    ratio = f"  ({rate / baseline:.2f}x of /healthz)" if baseline else ""
    print(f"{name:<28} {rate:>6} req/s   p50 {cuts[49]:7.1f} ms   p99 {cuts[98]:7.1f} ms   "
          f"failures {failures}{ratio}")
    Goals(__file__).note(f"{name} requests/s (64 clients)", rate)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="cvatflow-bench-api-"))
    run = make_run(home)
    port = free_port()
    env = {**os.environ, "CVATFLOW_HOME": str(home), "CVATFLOW_API_TOKENS": TOKEN, "CVATFLOW_BACKEND": "local"}
    server = subprocess.Popen([sys.executable, "-m", "cvatflow.cli", "serve", "--port", str(port),
                               "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded machine imports slowly
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the API server did not start")
            time.sleep(0.2)
        print(f"cvatflow serve on loopback, {CLIENTS} concurrent clients, {SECONDS:.0f} s per endpoint, "
              f"{os.cpu_count()} CPUs shared by server and client")
        rate, lat, fail = asyncio.run(load(base + "/healthz", SECONDS))
        report("GET /healthz (baseline)", rate, lat, fail)
        for name, path in [("GET /api/v1/templates", "/api/v1/templates?label=used-by=cvat"),
                           ("GET /api/v1/executions/{id}", f"/api/v1/executions/{run}")]:
            r, lat, fail = asyncio.run(load(base + path, SECONDS))
            report(name, r, lat, fail, baseline=rate)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
