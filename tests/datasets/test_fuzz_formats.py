"""Hypothesis fuzzing of the CVAT XML and YOLO readers: only our error, and nothing written outside the output."""
from __future__ import annotations

import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bad_inputs import format_files, png
from cvatflow.datasets.ingest import ingest
from cvatflow.errors import CvatflowError, DatasetError

# Few examples and a fixed order: seconds per test, the same examples in CI as here.
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                database=None)

SHAPES = ('<box label="circle" occluded="0" xtl="1" ytl="2" xbr="10" ybr="12" rotation="30" z_order="0">'
          '<attribute name="color">red</attribute></box>'
          '<polygon label="circle" occluded="1" points="1,2;10,2;10,12" z_order="0"/>'
          '<ellipse label="circle" cx="16" cy="16" rx="4" ry="3" z_order="0"/>'
          '<mask label="circle" rle="2, 3, 4, 3" left="5" top="2" width="4" height="3" z_order="0"/>'
          '<polyline label="circle" points="1,1;5,5" z_order="0"/><tag label="circle"/>')
# Values a hostile or broken writer puts in an attribute: numbers at and past every edge, and no numbers.
VALUES = st.sampled_from(["", "0", "1", "-1", "1.5", "nan", "-inf", "1e309", "1e9", "99999999999999999999", "0x10",
                          "1,2", "1,2;3", ";;", "1, -2", "../../x.png", "/etc/passwd", "a\x7fb", "true", "yes",
                          "C:/x", "." * 5000]) | st.text(max_size=20)
ATTRIBUTES = st.sampled_from(["label", "occluded", "xtl", "ytl", "xbr", "ybr", "rotation", "points", "cx", "rx",
                              "rle", "left", "top", "width", "height", "frame", "outside", "keyframe", "id",
                              "name", "subset", "z_order"])
TAGS = st.sampled_from(["box", "polygon", "ellipse", "mask", "polyline", "points", "cuboid", "skeleton", "tag",
                        "image", "track", "attribute", "annotations", "x"])


def cvat_documents() -> dict[str, bytes]:
    images = format_files("cvat")
    images["annotations.xml"] = images["annotations.xml"].replace(b'z_order="0"/>', b'z_order="0"/>' + SHAPES.encode())
    return {"images": images["annotations.xml"], "video": format_files("video")["annotations.xml"]}


BASES = cvat_documents()


@st.composite
def mutated_xml(draw) -> tuple[str, bytes]:
    """A CVAT for images or video document with one to four elements changed: an attribute set to a hostile
    value or removed, an element renamed, removed or repeated."""
    kind = draw(st.sampled_from(sorted(BASES)))
    root = ET.fromstring(BASES[kind])
    for _ in range(draw(st.integers(1, 4))):
        elements = list(root.iter())
        element = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["set", "delete", "rename", "remove", "repeat", "text"]))
        if action == "set":
            element.set(draw(ATTRIBUTES), draw(VALUES))
        elif action == "delete" and element.attrib:
            del element.attrib[draw(st.sampled_from(sorted(element.attrib)))]
        elif action == "rename":
            element.tag = draw(TAGS)
        elif action == "text":
            element.text = draw(VALUES)
        else:
            parent = next((p for p in root.iter() if element in list(p)), None)
            if parent is not None:
                if action == "remove":
                    parent.remove(element)
                else:
                    for _ in range(draw(st.integers(1, 3))):
                        parent.append(ET.fromstring(ET.tostring(element)))
    return kind, ET.tostring(root, encoding="utf-8")


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def ingest_checked(files: dict[str, bytes]) -> None:
    """Ingest a folder export of `files`: a CvatflowError naming annotation file or folder, or a dataset; the
    export unchanged and nothing written beside the output folder."""
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        export = work / "export"
        for name, data in files.items():
            (export / name).parent.mkdir(parents=True, exist_ok=True)
            (export / name).write_bytes(data)
        before = files_under(work)
        try:
            ingest(export, work / "out")
        except CvatflowError as error:
            assert str(export) in str(error), error  # names the user's input, never a temporary folder
            assert ".ingest-" not in str(error), error
        written = {k: v for k, v in files_under(work).items() if not k.startswith("out/")}
        assert written == before, "the reader wrote beside its output folder or changed the export"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@FUZZ
@given(document=mutated_xml())
def test_the_cvat_xml_reader_refuses_or_reads_every_mutated_document(document):
    kind, xml = document
    image = "images/frame_000000.png" if kind == "video" else "images/a.png"
    ingest_checked({"annotations.xml": xml, image: png()})


@FUZZ
@given(text=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: ("<annotations>" + t).encode()))
def test_the_cvat_xml_reader_refuses_any_bytes(text):
    from cvatflow.datasets.cvat_schema import load

    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        (work / "annotations.xml").write_bytes(text)
        try:
            load(work / "annotations.xml")
        except DatasetError as error:
            assert "annotations.xml" in str(error)
    finally:
        shutil.rmtree(work, ignore_errors=True)


NUMBERS = st.sampled_from(["0", "1", "0.5", "-1", "nan", "inf", "1e309", "2.5", "x", "", "1e-300", "0.25"])
LINES = st.lists(NUMBERS, max_size=12).map(" ".join) | st.text(alphabet="0123456789.-e nai\t", max_size=40)
YAML = st.sampled_from([b"names: [a, b]\n", b"names: {0: a, 5: b}\n", b"names: [1, yes, null]\n", b"names: a\n",
                        b"names: {-1: a}\n", b"names: {a: b}\n", b"names: [[a]]\n", b"kpt_shape: [2, 3]\nnames: [a]\n",
                        b"names: *x\n", b"names: !!binary aGk=\n", b"- names\n", b"", b"\xff\xfe"]) | \
    st.text(max_size=60).map(lambda t: ("names: " + t).encode())


@FUZZ
@given(meta=YAML, lines=st.lists(LINES, max_size=6), subset=st.sampled_from(["train", "", "../up", "a/b"]))
def test_the_yolo_reader_refuses_or_reads_every_mutated_export(meta, lines, subset):
    files = format_files("ultralytics")
    files["data.yaml"] = meta
    folder = f"/{subset}" if subset else ""
    files = {k.replace("/train", folder): v for k, v in files.items() if k != "train.txt"}
    files[f"labels{folder}/a.txt"] = "\n".join(lines).encode()
    ingest_checked(files)


@FUZZ
@given(lines=st.lists(LINES, min_size=1, max_size=6))
def test_the_yolo_11_reader_refuses_or_reads_every_label_file(lines):
    files = format_files("yolo")
    files["obj_train_data/a.txt"] = "\n".join(lines).encode()
    ingest_checked(files)
