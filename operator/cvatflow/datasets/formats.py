"""The `dump-format` tags (Onepanel's eight and CVAT 2.x's newer formats) and the CVAT export formats they name."""
from __future__ import annotations

from cvatflow.errors import DatasetError

# Onepanel's tags (CVAT 1.0 converter names) -> the export format names of today's CVAT.
DUMP_FORMATS = {
    "cvat_coco": "COCO 1.0",
    "cvat_voc": "PASCAL VOC 1.1",
    "cvat_yolo": "YOLO 1.1",
    "cvat_tfrecord": "TFRecord 1.0",
    "cvat_mot": "MOT 1.1",
    "cvat_label_me": "LabelMe 3.0",
    "cvat": "CVAT for images 1.1",
    "datumaro_project": "Datumaro 1.0",
    # CVAT 2.x formats for detection and segmentation (our tags, in the same style)
    "cvat_video": "CVAT for video 1.1",
    "cvat_coco_keypoints": "COCO Keypoints 1.0",
    "cvat_ultralytics_detection": "Ultralytics YOLO Detection 1.0",
    "cvat_ultralytics_segmentation": "Ultralytics YOLO Segmentation 1.0",
    "cvat_ultralytics_obb": "Ultralytics YOLO Oriented Bounding Boxes 1.0",
    "cvat_segmentation_mask": "Segmentation mask 1.1",
}


def export_format(tag: str) -> str:
    """The CVAT export format for a dump-format tag; an unknown tag is an error listing the valid ones."""
    try:
        return DUMP_FORMATS[tag]
    except KeyError:
        raise DatasetError(f"dump-format {tag!r} is not a known format; use one of: "
                           f"{', '.join(DUMP_FORMATS)}") from None
