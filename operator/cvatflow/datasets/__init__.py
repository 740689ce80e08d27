"""CVAT exports in, COCO datasets out: ingest, validate, convert, split, upload, and a synthetic generator."""
from cvatflow.datasets.formats import DUMP_FORMATS, export_format
from cvatflow.datasets.ingest import DatasetInfo, detect_format, ingest
from cvatflow.datasets.prepare import prepare, split
from cvatflow.datasets.report import DatasetReport
from cvatflow.datasets.synth import make_export

__all__ = ["DUMP_FORMATS", "DatasetInfo", "DatasetReport", "detect_format", "export_format", "ingest", "make_export",
           "prepare", "split"]
