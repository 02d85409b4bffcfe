"""Turn what the user points at into input files: a file, a folder, a glob, an fsspec or http URL,
or an existing Scenario asset id.

Reading checks that each file is an image (Pillow) or a video (PyAV) we can send, so a bad input
fails here, before anything is uploaded or paid for.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import mimetypes
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import IO, Literal

import fsspec
import httpx
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict

from scenario_upscale.errors import InvalidInput

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif", ".tif", ".tiff", ".heic", ".bmp"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".m4v"})
_VIDEO_MIME = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
}

MediaKind = Literal["image", "video"]


class SourceFile(BaseModel):
    """One input, read and identified.

    Attributes:
        location: Where it came from, as given or as found (path, URL or asset id).
        name: Its file name, used to name the output.
    """

    model_config = ConfigDict(frozen=True)

    location: str
    name: str
    kind: MediaKind
    mime_type: str
    sha256: str
    size: int
    width: int | None = None
    height: int | None = None


def is_asset_id(location: str) -> bool:
    return location.startswith("asset_") and "/" not in location


def _is_http(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def expand(locations: str | Iterable[str]) -> list[str]:
    """Every input a location names, sorted, duplicates removed.

    A folder (local or ``s3://…/prefix/``) gives the images and videos directly inside it; a glob
    (``assets/**/*.png``) what it matches; a file, an http URL or an asset id itself.

    Raises:
        InvalidInput: if a location does not exist or names no image or video.

    Example:
        >>> expand("asset_abc")
        ['asset_abc']
    """
    items = [locations] if isinstance(locations, str) else list(locations)
    if not items:
        raise InvalidInput(
            "no inputs given: pass at least one file, folder, glob, URL or Scenario asset id"
        )
    found: list[str] = []
    for location in items:
        if not location.strip():
            raise InvalidInput(
                f"input {location!r} is blank: give a file, folder, glob, URL or asset id"
            )
        if is_asset_id(location) or _is_http(location):
            found.append(location)
            continue
        fs, path = fsspec.core.url_to_fs(location)
        if any(ch in path for ch in "*?["):
            matches = [m for m in fs.glob(path) if _media_suffix(m) and fs.isfile(m)]
        elif fs.isdir(path):
            matches = [m for m in fs.ls(path, detail=False) if _media_suffix(m) and fs.isfile(m)]
        elif fs.isfile(path):
            matches = [path]
        else:
            raise InvalidInput(f"input {location!r} does not exist")
        if not matches:
            allowed = ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
            raise InvalidInput(f"input {location!r} has no image or video files ({allowed})")
        found.extend(_unstrip(fs, location, m) for m in sorted(matches))
    return list(dict.fromkeys(found))


def _media_suffix(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


def _unstrip(fs: fsspec.AbstractFileSystem, original: str, path: str) -> str:
    # fsspec drops the protocol from paths it lists; put it back so the location stays usable.
    if "://" not in original:
        return str(path)
    return str(fs.unstrip_protocol(path))


class NotAVideo(ValueError):
    """The bytes are not a video PyAV can decode."""


def probe_video(handle: IO[bytes]) -> tuple[int, int]:
    """Width and height of a video, after decoding its first frame (the rest is not read).

    PyAV is imported here, not at module level, so importing the engine stays light.

    Raises:
        NotAVideo: if there is no video stream or its first frame does not decode.
    """
    import av  # lazy: only inputs and outputs that are videos need FFmpeg
    import av.error

    try:
        with av.open(handle, mode="r") as container:
            if not container.streams.video:
                raise NotAVideo("it has no video stream")
            stream = container.streams.video[0]
            frame = next(iter(container.decode(stream)), None)
            if frame is None:
                raise NotAVideo("its video stream has no decodable frame")
            width = stream.codec_context.width or frame.width
            height = stream.codec_context.height or frame.height
    except NotAVideo:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as error:
        # FFmpeg errors read "[Errno …] Invalid data found when processing input: '<none>'".
        reason = getattr(error, "strerror", None) or str(error)
        raise NotAVideo(f"{type(error).__name__}: {reason}") from None
    if not width or not height:
        raise NotAVideo("its video stream has no frame size")
    return width, height


HASH_CHUNK = 1024 * 1024
"""Bytes read at a time while hashing: an input is never held whole."""


def identify(data: bytes | IO[bytes], location: str, name: str) -> SourceFile:
    """Check that ``data`` (bytes, or a seekable binary file read from its start) is an image
    (decodable by Pillow) or a video (by PyAV); describe it. A file is read in chunks.

    Raises:
        InvalidInput: empty, or not an image or video we can send.
    """
    handle = io.BytesIO(data) if isinstance(data, bytes) else data
    hasher = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
        hasher.update(chunk)
        size += len(chunk)
    if not size:
        raise InvalidInput(f"input {location!r} is empty")
    digest = hasher.hexdigest()
    handle.seek(0)
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        try:
            width, height = probe_video(handle)
        except NotAVideo as error:
            raise InvalidInput(
                f"input {location!r} is not a video Scenario can upscale ({error}); "
                f"give a decodable {', '.join(sorted(VIDEO_SUFFIXES))} file"
            ) from None
        return SourceFile(
            location=location,
            name=name,
            kind="video",
            mime_type=_VIDEO_MIME[suffix],
            sha256=digest,
            size=size,
            width=width,
            height=height,
        )
    try:
        # Pillow reads the header here and verify() walks the rest through the file, chunk by
        # chunk: nothing is decoded into memory.
        with Image.open(handle) as image:
            image.verify()
            fmt, width, height = image.format or "", image.width, image.height
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidInput(
            f"input {location!r} is not an image Scenario can upscale ({error}); "
            f"give one of: {', '.join(sorted(IMAGE_SUFFIXES))} or a video"
        ) from None
    mime = Image.MIME.get(fmt) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return SourceFile(
        location=location,
        name=name,
        kind="image",
        mime_type=mime,
        sha256=digest,
        size=size,
        width=width,
        height=height,
    )


async def read(location: str, http: httpx.AsyncClient) -> SourceFile:
    """Read one input (not an asset id) and identify it: a file (local or fsspec) is streamed
    through the hash and the header checks, never held whole.

    Raises:
        InvalidInput: unreadable, empty, or not an image or video.
    """
    name = name_of(location)
    if _is_http(location):
        data = await fetch(location, http)
        return await asyncio.to_thread(identify, data, location, name)

    def identify_file() -> SourceFile:
        with open_file(location) as handle:
            return identify(handle, location, name)

    return await asyncio.to_thread(identify_file)


def name_of(location: str) -> str:
    """The file name in ``location`` (a path or URL), ``input`` when it has none."""
    return PurePosixPath(location.split("?", 1)[0]).name or "input"


def is_http(location: str) -> bool:
    """Whether ``location`` is an http URL, fetched whole rather than opened as a file."""
    return _is_http(location)


def open_file(location: str) -> IO[bytes]:
    """A local or fsspec file, opened for binary reading (blocking: call it from a thread).

    Raises:
        InvalidInput: it cannot be opened.
    """
    try:
        handle: IO[bytes] = fsspec.open(location, "rb").open()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise InvalidInput(f"input {location!r} could not be read: {error}") from None
    return handle


async def fetch(location: str, http: httpx.AsyncClient) -> bytes:
    """The bytes of an http input (files are opened with ``open_file`` instead).

    Raises:
        InvalidInput: unreadable or empty.
    """
    try:
        response = await http.get(location)
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise InvalidInput(
            f"input {location!r} could not be read: no answer ({type(error).__name__}: "
            f"{error}); check the URL, and that this machine can reach it"
        ) from None
    if response.status_code != 200:
        raise InvalidInput(
            f"input {location!r} could not be read: HTTP {response.status_code}; check the "
            "URL (a signed URL may have expired)"
        )
    if not response.content:
        raise InvalidInput(f"input {location!r} is empty")
    return response.content
