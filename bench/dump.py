"""Dataset upload: our Store.upload_dir against what Onepanel did, on S3 with 20 ms per request, and on file://.

A synthetic CVAT export of 2,000 images is normalised once; the same tree is then uploaded
  - to moto's S3 server (its own process, on loopback), every request delayed by 20 ms in botocore's
    `before-send` event (what a cloud object store costs a request), by
      baseline: one file at a time through boto3's S3Transfer with multipart off (Onepanel's dump), and
      ours:     S3Store.upload_dir (concurrent, verified, resumable);
  - to a file:// store, against shutil.copytree of the same tree.
Goals: S3 at least 8x the baseline; file:// within 1.5x of copytree.
Environment: BENCH_IMAGES (2000), BENCH_SIZE (image side, 64), BENCH_LATENCY_MS (20).
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _goal import Goals

IMAGES = int(os.environ.get("BENCH_IMAGES", "2000"))
SIZE = int(os.environ.get("BENCH_SIZE", "64"))
LATENCY = float(os.environ.get("BENCH_LATENCY_MS", "20")) / 1000
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


def _moto(port_queue, stop) -> None:
    """moto in server mode, in a process of its own so that it does not share the uploaders' GIL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port_queue.put(server.get_host_and_port()[1])
    stop.wait()
    server.stop()


def delay(**_) -> None:
    time.sleep(LATENCY)  # before-send: every HTTP request pays a cloud round trip


def s3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench", config=Config(max_pool_connections=64))
    client.meta.events.register("before-send.s3.*", delay)
    return client


def baseline_upload(client, bucket: str, tree: Path, prefix: str) -> None:
    """Onepanel's dump: every file in turn, S3Transfer, multipart off."""
    from boto3.s3.transfer import S3Transfer, TransferConfig

    transfer = S3Transfer(client, TransferConfig(multipart_threshold=1 << 40, use_threads=False))
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        transfer.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(tree).as_posix()}")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    goals = Goals(__file__)
    from cvatflow.datasets.ingest import ingest
    from cvatflow.datasets.synth import make_export
    from cvatflow.storage import open_store
    from cvatflow.storage.s3 import S3Store

    work = Path(tempfile.mkdtemp(prefix="cvatflow-bench-dump-"))
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    moto = context.Process(target=_moto, args=(ports, stop), daemon=True)
    moto.start()
    try:
        started = time.perf_counter()
        export = make_export(work / "export.zip", images=IMAGES, seed=0, size=SIZE)
        tree = ingest(export, work / "dataset").path
        files = [p for p in tree.rglob("*") if p.is_file()]
        total = sum(p.stat().st_size for p in files)
        print(f"dataset: {len(files)} files, {total / 1e6:.1f} MB ({IMAGES} images of {SIZE}px), "
              f"made in {time.perf_counter() - started:.1f}s")

        endpoint = f"http://127.0.0.1:{ports.get(timeout=60)}"
        import boto3

        admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                             aws_secret_access_key="bench")
        buckets = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        for bucket in buckets:
            admin.create_bucket(Bucket=bucket)

        base = timed(lambda: baseline_upload(s3_client(endpoint), buckets[0], tree, "annotations/1/x"))
        store = S3Store(f"s3://{buckets[1]}/annotations/1/x", client=s3_client(endpoint))  # default workers
        ours = timed(lambda: store.upload_dir(tree, ""))
        assert len(store.list("")) == len(files)
        rerun = timed(lambda: store.upload_dir(tree, ""))  # everything already there: one listing
        ratio = base / ours
        print(f"s3 ({LATENCY * 1000:.0f} ms/request): baseline {base:.1f}s ({len(files) / base:.0f} files/s), "
              f"ours {ours:.1f}s ({len(files) / ours:.0f} files/s), re-run {rerun:.2f}s")
        goals.check("s3 upload speed-up over Onepanel's", ratio, ">=", 8, "x")

        # Local copies of small files take well under a second and this machine is shared: take the median
        # of interleaved runs, each into a fresh folder.
        copies, mine = [], []
        for run in range(REPEATS):
            copies.append(timed(lambda: shutil.copytree(tree, work / f"copytree-{run}")))
            local = open_store((work / f"store-{run}").as_uri())
            mine.append(timed(lambda: local.upload_dir(tree, "annotations/1/x")))
        copy, ours_local = statistics.median(copies), statistics.median(mine)
        slower = ours_local / copy
        print(f"file:// (median of {REPEATS}): copytree {copy:.2f}s ({total / copy / 1e6:.0f} MB/s), "
              f"ours {ours_local:.2f}s ({total / ours_local / 1e6:.0f} MB/s)")
        goals.check("file:// upload time / copytree", slower, "<=", 1.5, "x")
        return goals.exit_code()
    finally:
        stop.set()
        moto.join(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
