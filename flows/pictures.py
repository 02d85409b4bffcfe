"""Small inline pictures for Markdown artifacts: ``data:`` URIs, bounded in size and in total.

Prefect's UI renders a Markdown artifact's images, but blocks ``file://`` ones, and the artifact
is stored whole in the server's database: so a picture is a thumbnail (longest side at most
``THUMBNAIL_MAX_SIDE``), encoded inline as the smaller of PNG and (for opaque images) JPEG, and a
``PictureBudget`` caps what one artifact holds. Markdown text from file names is code-formatted,
so ``rune-01@upscale-v3x4.png`` is not turned into a ``mailto:`` link.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import PurePosixPath

import fsspec
from PIL import Image, UnidentifiedImageError

from scenario_upscale import sources

THUMBNAIL_MAX_SIDE = 160
"""Longest side of an inline thumbnail, in pixels."""
ARTIFACT_PICTURE_BUDGET = 600_000
"""Bytes of inline pictures one artifact may hold (about 30 pairs of 160 px thumbnails)."""
_JPEG_QUALITY = 80


def thumbnail_data_uri(location: str, max_side: int = THUMBNAIL_MAX_SIDE) -> str | None:
    """A ``data:image/…;base64,`` thumbnail of the image at ``location``, or ``None`` for a video,
    an asset id, an http URL (not fetched again for a picture) or a file that is not an image.

    Example:
        >>> thumbnail_data_uri("asset_abc") is None
        True
    """
    if not _readable(location):
        return None
    try:
        with fsspec.open(location, "rb") as handle:
            data = handle.read()
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((max_side, max_side))
            mime, encoded = _smallest_encoding(image)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return f"data:{mime};base64,{base64.b64encode(encoded).decode('ascii')}"


def _readable(location: str) -> bool:
    if location.startswith(("asset_", "http://", "https://")):
        return False
    return PurePosixPath(location).suffix.lower() not in sources.VIDEO_SUFFIXES


def _smallest_encoding(image: Image.Image) -> tuple[str, bytes]:
    """PNG keeps pixel art sharp and transparency; JPEG is smaller for opaque painted images."""
    rgba = image.convert("RGBA") if image.mode not in ("RGB", "RGBA", "L", "LA") else image
    png = io.BytesIO()
    rgba.save(png, format="PNG", optimize=True)
    candidates = [("image/png", png.getvalue())]
    if rgba.mode in ("RGB", "L") or (rgba.mode == "RGBA" and _opaque(rgba)):
        jpeg = io.BytesIO()
        rgba.convert("RGB").save(jpeg, format="JPEG", quality=_JPEG_QUALITY)
        candidates.append(("image/jpeg", jpeg.getvalue()))
    return min(candidates, key=lambda c: len(c[1]))


def _opaque(image: Image.Image) -> bool:
    low, _ = image.getchannel("A").getextrema()
    return bool(low == 255)


class PictureBudget:
    """Hands out thumbnails until ``budget`` bytes of them are in one artifact."""

    def __init__(self, budget: int = ARTIFACT_PICTURE_BUDGET) -> None:
        self.left = budget

    def picture(self, location: str, alt: str) -> str:
        """Markdown for a thumbnail of ``location`` (empty once the budget is spent, or when
        there is no picture to show)."""
        uri = thumbnail_data_uri(location) if self.left > 0 else None
        if uri is None or len(uri) > self.left:
            return ""
        self.left -= len(uri)
        return f"![{alt}]({uri})"


def code(text: str) -> str:
    """``text`` as inline Markdown code: shown as typed, never turned into a link.

    Example:
        >>> code("rune-01@upscale-v3x4.png")
        '`rune-01@upscale-v3x4.png`'
    """
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|").replace("\n", " ")
