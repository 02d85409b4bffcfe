"""Byte-level media work: recognise uploaded files and really resize images (Pillow).

Videos are probed and re-encoded with PyAV in ``video.py``. Everything here is synchronous and
CPU-bound; callers run it in a worker thread.
"""

from __future__ import annotations

import io
from typing import Literal

from PIL import Image, PngImagePlugin, UnidentifiedImageError
from pydantic import BaseModel

# Formats the docs list for uploads that Pillow can decode (svg/heic are not decodable here).
_IMAGE_FORMATS = {"PNG", "JPEG", "GIF", "WEBP", "TIFF", "AVIF", "BMP"}
# Output keeps the input's format when it is a common web format, else PNG.
_OUTPUT_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


class InvalidMedia(ValueError):
    """The bytes are not a file of the declared kind."""


class MediaProperties(BaseModel):
    """What an asset's ``properties`` say about its pixels and, for videos, its timing."""

    width: int | None = None
    height: int | None = None
    # Videos only (contract 3.9 ``properties``): seconds, frames per second, bits per second.
    duration: float | None = None
    frame_rate: float | None = None
    nb_frames: int | None = None
    codec_name: str | None = None
    bitrate: int | None = None


class MediaInfo(MediaProperties):
    kind: Literal["image", "video"]
    mime_type: str
    extension: str
    size: int


def inspect_image(data: bytes) -> MediaInfo:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        # verify() leaves the image unusable, hence the second open for the size.
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidMedia(f"not a decodable image ({exc.__class__.__name__})") from exc
    if fmt not in _IMAGE_FORMATS:
        raise InvalidMedia(f"unsupported image format {fmt or 'unknown'}")
    mime = Image.MIME.get(fmt, f"image/{fmt.lower()}")
    extension = {"JPEG": "jpg", "TIFF": "tiff"}.get(fmt, fmt.lower())
    return MediaInfo(
        kind="image",
        mime_type=mime,
        extension=extension,
        size=len(data),
        width=width,
        height=height,
    )


def inspect_video(data: bytes) -> MediaInfo:
    """Probe with PyAV: a known container whose first video frame decodes."""
    from .video import probe_video  # video.py builds on this module's types

    return probe_video(data)


def inspect_media(data: bytes, kind: str) -> MediaInfo:
    if kind == "image":
        return inspect_image(data)
    if kind == "video":
        return inspect_video(data)
    raise InvalidMedia(f"kind '{kind}' is not supported by the emulator (image or video only)")


def resize_image(data: bytes, width: int, height: int) -> tuple[bytes, MediaInfo]:
    """Resample ``data`` to exactly ``width`` x ``height``; returns the encoded output."""
    with Image.open(io.BytesIO(data)) as source:
        source.seek(0)  # first frame of animated GIF/WebP
        fmt = source.format if source.format in _OUTPUT_FORMATS else "PNG"
        frame = source.convert("RGB" if fmt == "JPEG" else "RGBA")
    resized = frame.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, format=fmt)
    out = buffer.getvalue()
    info = MediaInfo(
        kind="image",
        mime_type=Image.MIME[fmt],
        extension=_OUTPUT_FORMATS[fmt],
        size=len(out),
        width=width,
        height=height,
    )
    return out, info


# Marks a transformed rendition (profile ``transformed-urls``), like a CDN's image pipeline would.
RENDITION_NOTE = "Scenario emulator transformed rendition"


def transformed_image(data: bytes) -> bytes:
    """The same picture in the same format and pixel size, encoded differently.

    PNG: another compression level plus a text chunk (lossless). JPEG/WebP: another quality.
    Other formats are saved again by Pillow in their own format (every frame).
    """
    with Image.open(io.BytesIO(data)) as image:
        fmt = image.format or "PNG"
        buffer = io.BytesIO()
        if fmt == "PNG":
            note = PngImagePlugin.PngInfo()
            note.add_text("Comment", RENDITION_NOTE)
            image.save(buffer, format="PNG", compress_level=1, pnginfo=note)
        elif fmt in ("JPEG", "WEBP"):
            image.save(buffer, format=fmt, quality=70)
        else:
            image.save(buffer, format=fmt, save_all=getattr(image, "n_frames", 1) > 1)
    return buffer.getvalue()


def transformed_media(data: bytes, kind: str, mime_type: str, width: int, height: int) -> bytes:
    """A transformed rendition: images as above; MP4 videos re-encoded at the same size and
    frame rate (the same frames). Other video containers are served as stored, since the
    emulator's encoder only writes MP4."""
    if kind == "image":
        return transformed_image(data)
    if mime_type != "video/mp4":
        return data
    from .video import reencode_video  # video.py builds on this module's types

    encoded, _ = reencode_video(data, width, height)
    return encoded
