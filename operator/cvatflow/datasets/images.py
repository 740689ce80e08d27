"""Images as CVAT shows them: probe at ingest (size, EXIF orientation, damage), decode to 8-bit RGB in training."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Image types CVAT accepts for image tasks; torchvision decodes the first four, PIL the rest.
TORCHVISION_TYPES = ("JPEG", "PNG", "GIF", "WEBP")
PIL_TYPES = ("BMP", "TIFF")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
# EXIF orientations 5-8 turn the image a quarter: width and height swap.
_SWAPS = {5, 6, 7, 8}


@dataclass
class Probe:
    """What ingest learnt about one file: PIL's format name, mode, the size CVAT shows (EXIF applied), the
    EXIF orientation (1 = none), and a problem reason ("image zero bytes", ...) when it cannot be used."""

    format: str = ""
    mode: str = ""
    width: int = 0
    height: int = 0
    orientation: int = 1
    stored_width: int = 0  # before the EXIF orientation
    stored_height: int = 0
    problem: str = ""
    detail: str = ""


def probe(path: Path) -> Probe:
    """Open `path` as CVAT would: read the header, the EXIF orientation, and decode it (at 1/8 scale for JPEG,
    which still reads every byte) so a truncated file is found here, not in a DataLoader on the GPU."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.stat().st_size == 0:
        return Probe(problem="image zero bytes")
    try:
        with Image.open(path) as im:
            result = Probe(format=im.format or "", mode=im.mode, stored_width=im.width, stored_height=im.height)
            try:
                result.orientation = int(im.getexif().get(0x0112, 1) or 1)
            except (OSError, ValueError, TypeError, SyntaxError):  # a broken EXIF block: the browser ignores it too
                result.orientation = 1
            if result.format not in TORCHVISION_TYPES + PIL_TYPES:
                return Probe(format=result.format, problem="image unreadable",
                             detail=f"{result.format or 'unknown'} is not an image type CVAT tasks take")
            if result.format == "JPEG":
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except UnidentifiedImageError:
        return Probe(problem="image unreadable", detail="not an image file")
    except (OSError, SyntaxError, ValueError) as exc:
        truncated = "truncated" in str(exc).lower() or isinstance(exc, EOFError)
        return Probe(problem="image truncated" if truncated else "image unreadable", detail=str(exc)[:120])
    swap = result.orientation in _SWAPS
    result.width, result.height = ((result.stored_height, result.stored_width) if swap
                                   else (result.stored_width, result.stored_height))
    return result


def to_rgb8(image):
    """A PIL image (EXIF orientation already applied) as an HxWx3 uint8 array, every mode scaled to 0-255:
    16-bit (I;16*, and I holding 16-bit samples) by 255/65535, float (F) from 0-1 when it fits there else
    clipped to 0-255, 1-bit to 0/255, palette/CMYK/LA/RGBA by PIL's conversion (alpha dropped, as CVAT shows
    the colour channels)."""
    import numpy as np

    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        wide = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(wide * 255.0 / 65535.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        wide = np.asarray(image, dtype=np.float64)
        if wide.size and np.nanmax(wide) <= 1.0:
            wide = wide * 255.0
        grey = np.clip(np.rint(np.nan_to_num(wide)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy, as torch.from_numpy wants


def decode_rgb(path: str | Path, apply_exif: bool = True):
    """The image at `path` as a uint8 tensor [3, H, W] (RGB, 0-255), oriented as CVAT shows it.

    JPEG, PNG (16-bit samples scaled by 255/65535), GIF (first frame) and WebP go through torchvision's native
    decoders; BMP, TIFF and anything else through PIL. Raises OSError/RuntimeError on an unreadable file
    (ingest finds those first).
    """
    import torch
    from torchvision.io import ImageReadMode, decode_image

    with open(path, "rb") as handle:
        data = handle.read()
    head = data[:12]
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n" or head[:4] == b"GIF8" or \
            (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB,
                             apply_exif_orientation=apply_exif)
        if image.ndim == 4:  # an animated GIF: CVAT shows its first frame
            image = image[0]
        if image.dtype == torch.uint16:
            image = ((image.to(torch.int32) * 255 + 32767) // 65535).to(torch.uint8)
        return image
    return torch.from_numpy(pil_rgb8(data, apply_exif)).permute(2, 0, 1).contiguous()


def pil_rgb8(data: bytes, apply_exif: bool = True):
    """Bytes of any image PIL reads as an HxWx3 uint8 array (first frame, EXIF orientation applied)."""
    import io

    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        oriented = ImageOps.exif_transpose(im) if apply_exif else im
        return to_rgb8(oriented)
