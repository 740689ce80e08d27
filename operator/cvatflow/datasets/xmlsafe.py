"""The one XML reader for export files: no entity expansion, no external references, a size limit."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from cvatflow.config import input_limits
from cvatflow.errors import DatasetError
from cvatflow.reading import read_limited


def read_bytes(path: Path, what: str = "annotation file") -> bytes:
    """The bytes of an export's annotation file, refused (DatasetError naming `path`) over the
    `annotation_file_bytes` input limit or when it cannot be read."""
    return read_limited(path, input_limits().annotation_file_bytes, DatasetError, what, "export the task again",
                        "export fewer images per task, or raise CVATFLOW_MAX_ANNOTATION_FILE_BYTES")


def read_text(path: Path, what: str = "annotation file") -> str:
    """`read_bytes` as UTF-8 text (a byte-order mark allowed); DatasetError naming `path` otherwise."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}); export the "
                           f"task again") from None


def parse(path: Path, what: str = "XML file") -> ET.Element:
    """The root element of the XML file at `path`, parsed by defusedxml.

    Entity declarations (billion laughs, quadratic blowup) and external references (XXE) are refused, as are
    files over the `annotation_file_bytes` input limit: each a DatasetError naming `path` and the fix. A
    DOCTYPE without entities is accepted, as stdlib parsers accept it.
    """
    import defusedxml
    import defusedxml.ElementTree as SafeET

    data = read_bytes(path, what)
    try:
        return SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except ET.ParseError as exc:
        raise DatasetError(f"{path}: not valid XML ({exc}); export the task again") from None
    except defusedxml.DefusedXmlException as exc:
        raise DatasetError(f"{path}: the XML declares entities or external references ({exc.__class__.__name__}),"
                           f" which CVAT never writes and cvatflow does not expand; export the task again") from None
    except (ValueError, RecursionError) as exc:
        raise DatasetError(f"{path}: not readable XML ({exc.__class__.__name__}); export the task again") from None
