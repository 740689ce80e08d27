"""Conversions work in any thread, whichever thread imported datumaro first (the API converts in job threads)."""
from __future__ import annotations

import subprocess
import sys

from paths import SHARED


def test_conversion_after_datumaro_was_first_imported_in_another_thread(tmp_path):
    # A fresh interpreter, so that datumaro's first import really happens in the worker thread.
    code = f"""
import threading
worker = threading.Thread(target=lambda: __import__("datumaro"))
worker.start()
worker.join()
from cvatflow.datasets.ingest import ingest
print(ingest({str(SHARED / 'reference/formats/voc')!r}, {str(tmp_path / 'out')!r}).format)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("PASCAL VOC 1.1")
