"""Write outputs where the user wants them, completely or not at all.

Each output is streamed from its signed URL (without our credentials: the CDN signature is the
authorisation) to ``<name>.part``, checked, then renamed into place, so a crash or a broken
transfer never leaves a half-written file under the final name. Works for local paths and any
fsspec URL (``s3://``, ``gs://``, ``memory://``…).

A download is complete when it has every byte the CDN announced (``Content-Length``) and it
decodes: an image is fully decoded by Pillow and has the pixel size the asset announced, a video
is opened and its first frame decoded by PyAV. Its length is *not* compared with the asset's
``properties.size``: a URL may serve a transformed rendition whose bytes differ from the stored
original (contract §9).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import PurePosixPath
from typing import IO

import fsspec
import httpx
from fsspec.implementations.local import LocalFileSystem
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict

from scenario_upscale.errors import DownloadFailed
from scenario_upscale.models import Asset
from scenario_upscale.retry import DownloadRetry, RetryNow, RetryPolicy, Transient, retry
from scenario_upscale.sources import NotAVideo, probe_video

log = logging.getLogger("scenario_upscale.storage")

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/avif": "avif",
    "image/tiff": "tiff",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
}
_CHUNK = 1024 * 1024


class StoredOutput(BaseModel):
    """An output file in place."""

    model_config = ConfigDict(frozen=True)

    location: str
    size: int
    sha256: str
    mime_type: str
    width: int | None = None
    height: int | None = None


def output_name(
    source_name: str,
    model_id: str,
    scale: str,
    mime_type: str,
    index: int = 0,
    *,
    variant: str | None = None,
) -> str:
    """``<stem>@<model><scale>[-<n>][.<variant>].<ext>``, predictable so reruns find their outputs.

    The one place outputs are named. ``index`` numbers a job's further outputs (``-2``, ``-3``…);
    ``variant`` tells apart a different result that would otherwise take an existing name.

    Example:
        >>> output_name("hero.png", "model_upscale-v3", "x4", "image/png")
        'hero@upscale-v3x4.png'
        >>> output_name("sky.jpg", "model_scenario-gemini-upscale", "4k", "image/png", index=1)
        'sky@scenario-gemini-upscale-4k-2.png'
        >>> output_name("hero.png", "model_upscale-v3", "x4", "image/png", variant="0a1b2c3d")
        'hero@upscale-v3x4.0a1b2c3d.png'
    """
    stem = PurePosixPath(source_name).stem
    short = model_id.removeprefix("model_")
    label = scale if scale.startswith("x") else f"-{scale}"
    extension = _EXTENSIONS.get(mime_type, PurePosixPath(source_name).suffix.lstrip(".") or "bin")
    suffix = f"-{index + 1}" if index else ""
    tag = f".{variant}" if variant else ""
    return f"{stem}@{short}{label}{suffix}{tag}.{extension}"


def absolute(location: str) -> str:
    """A local path made absolute, a URL as it is: the same location from another directory
    (a deployment's run works in its own).

    Example:
        >>> absolute("s3://bucket/out")
        's3://bucket/out'
    """
    return location if "://" in location else os.path.abspath(location)


def join(target: str, name: str) -> str:
    return target.rstrip("/") + "/" + name


def extension_for(mime_type: str) -> str | None:
    return _EXTENSIONS.get(mime_type)


def exists(location: str) -> bool:
    fs, path = fsspec.core.url_to_fs(location)
    return bool(fs.isfile(path))


def image_size(location: str) -> tuple[int | None, int | None]:
    """Width and height of an image (from its header) or a video (from its first frame).

    ``(None, None)`` if it is neither.
    """
    fs, path = fsspec.core.url_to_fs(location)
    try:
        with fs.open(path, "rb") as handle, Image.open(handle) as image:
            width, height = image.size
            return width, height
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        pass
    try:
        with fs.open(path, "rb") as handle:
            return probe_video(handle)
    except (NotAVideo, OSError):
        return None, None


def _sha256_of(fs: fsspec.AbstractFileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def download(
    cdn: httpx.AsyncClient,
    asset: Asset,
    destination: str,
    *,
    refresh_url: Callable[[str], Awaitable[str]],
    alternative: str | None = None,
    policy: RetryPolicy | None = None,
    budget_s: float = 120.0,
    left_parts: LeftParts | None = None,
) -> StoredOutput:
    """Stream ``asset`` to ``destination`` atomically and check it.

    Args:
        cdn: An http client without Scenario credentials.
        asset: The output asset, with its signed ``url``.
        destination: Final local path or fsspec URL.
        refresh_url: Gets a fresh signed URL for an asset id, used when the URL has expired (403).
        alternative: Where to write instead when a *different* file already sits at
            ``destination`` (an identical one is kept as it is). Without it, that is an error:
            a result is never overwritten silently.
        policy: The backoff between tries after a transient network or server error.
        budget_s: How long transient errors are outlasted before the output is reported
            undelivered (``retry.DownloadRetry``).
        left_parts: The batch's record of killed writers' parts (see ``staged``).

    Raises:
        DownloadFailed: if the bytes never arrived whole, or are not what the asset announced.
    """
    url = asset.url

    async def once() -> StoredOutput:
        nonlocal url
        try:
            return await _fetch_to(cdn, url, asset, destination, alternative, left_parts)
        except _Expired:
            log.info("signed URL for %s expired; asking for a fresh one", asset.id)
            url = await refresh_url(asset.id)
            raise
        except _Rendition as error:
            # Not the pixels the asset announced: a transformed rendition, not the original.
            log.info("%s: %s; asking for a link to the original file", asset.id, error)
            url = await refresh_url(asset.id)
            raise

    try:
        return await retry(once, DownloadRetry(policy, budget_s=budget_s))
    except (_Expired, _Rendition, _Transient, httpx.TransportError) as error:
        raise DownloadFailed(
            f"output {asset.id} could not be downloaded to {destination}: {_why(error)}"
        ) from None


def _why(error: Exception) -> str:
    if isinstance(error, _Expired):
        return "the signed URL kept expiring"
    if isinstance(error, httpx.TransportError):
        return f"{type(error).__name__}: {error}"
    return str(error)


class _Expired(RetryNow):
    pass


class _Transient(Transient):
    pass


class _Rendition(RetryNow):
    pass


class Staged:
    """A file being written beside its final place (``<name>.<random>.part``), moved there only
    whole.

    Attributes:
        fs: The file system of both.
        part: The path being written.
        final: Where it goes once whole; may be changed before the end of ``staged``.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, final: str) -> None:
        self.fs = fs
        self.final = final
        # A name of its own: two runs collecting one output at once (shards or batches on one
        # target) never write into each other's part; the identical result is kept once. The
        # writer's host and pid in it let a later run clear the part of one that was killed.
        self.part = f"{final}.{_WRITER}-{uuid.uuid4().hex[:8]}.part"


_WRITER = f"{socket.gethostname()}-{os.getpid()}"


class LeftParts:
    """The parts left by writers of this host that are gone (killed while writing), removed as
    the outputs they were for are written whole. A live writer's part, or another host's, is
    left alone.

    Each folder is listed once, at its first output, not after every output: that made a batch
    quadratic in its outputs (a 1000-output folder listed 1000 times was 9 % of the engine's
    CPU per job). Keep one per batch: a writer killed after the listing leaves its part to the
    next batch, whose rerun of that output is the one that clears it.
    """

    def __init__(self) -> None:
        self._by_folder: dict[str, dict[str, list[str]]] = {}

    def remove_for(self, fs: fsspec.AbstractFileSystem, final: str) -> None:
        """Remove the dead writers' parts of ``final``."""
        folder = _folder_of(final)
        left = self._by_folder.get(folder)
        if left is None:
            left = self._by_folder[folder] = _parts_of_dead_writers(fs, folder)
        for part in left.pop(final, []):
            with contextlib.suppress(FileNotFoundError):
                fs.rm(part)


def _folder_of(path: str) -> str:
    """The folder of an fsspec path ("" for a bare name)."""
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _parts_of_dead_writers(fs: fsspec.AbstractFileSystem, folder: str) -> dict[str, list[str]]:
    """The parts in ``folder`` of this host's writers that are gone, by the output they were for."""
    host = socket.gethostname()
    pattern = f"*.{host}-*.part"
    if isinstance(fs, LocalFileSystem):
        # fsspec's local glob stats every file of the folder; Python's only lists it.
        parts = glob.glob(os.path.join(glob.escape(folder), pattern) if folder else pattern)
    else:
        parts = fs.glob(f"{folder}/{pattern}" if folder else pattern)  # one listing by prefix
    left: dict[str, list[str]] = {}
    for part in parts:
        final, _, writer = part.removesuffix(".part").rpartition(f".{host}-")
        pid = writer.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            left.setdefault(final, []).append(part)
    return left


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def staged(location: str, left_parts: LeftParts | None = None) -> Iterator[Staged]:
    """Write ``<location>.part``, then move it to its final place if the block ends normally;
    on an exception it is removed. A reader, or a crash, never sees half a file under the final
    name. On a local disk the move is an atomic rename; object stores have no partial objects.
    Then the parts of ``location`` that killed writers left are removed (``left_parts``: the
    batch's, so that its folders are listed once).

    Example:
        >>> with staged("memory://doc/staged.txt") as out:
        ...     with out.fs.open(out.part, "wb") as handle:
        ...         _ = handle.write(b"whole")
        >>> exists("memory://doc/staged.txt"), exists("memory://doc/staged.txt.part")
        (True, False)
    """
    fs, path = fsspec.core.url_to_fs(location)
    if parent := _folder_of(path):
        fs.makedirs(parent, exist_ok=True)
    target = Staged(fs, path)
    try:
        yield target
        fs.mv(target.part, target.final)
        (left_parts or LeftParts()).remove_for(fs, target.final)
    finally:
        if fs.exists(target.part):
            fs.rm(target.part)


def write_whole(location: str, data: bytes) -> None:
    """Write ``data`` to ``location`` whole or not at all (see ``staged``)."""
    with staged(location) as out, out.fs.open(out.part, "wb") as handle:
        handle.write(data)


async def _fetch_to(
    cdn: httpx.AsyncClient,
    url: str,
    asset: Asset,
    dest: str,
    alternative: str | None,
    left_parts: LeftParts | None,
) -> StoredOutput:
    with staged(dest, left_parts) as out:
        stored = await _stream_to_part(cdn, url, asset, out.fs, out.part, dest)
        if out.fs.isfile(out.final) and _sha256_of(out.fs, out.final) != stored.sha256:
            if alternative is None:
                raise DownloadFailed(
                    f"{dest} already holds a different file; not overwriting it with {asset.id}"
                )
            log.warning("%s holds a different result; writing %s instead", dest, alternative)
            out.final = fsspec.core.url_to_fs(alternative)[1]
            stored = stored.model_copy(update={"location": alternative})
        return stored


async def _stream_to_part(
    cdn: httpx.AsyncClient,
    url: str,
    asset: Asset,
    fs: fsspec.AbstractFileSystem,
    part: str,
    dest: str,
) -> StoredOutput:
    digest = hashlib.sha256()
    size = 0
    async with cdn.stream("GET", url) as response:
        if response.status_code in (401, 403, 410):
            raise _Expired()
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise DownloadFailed(f"output {asset.id}: the CDN answered HTTP {response.status_code}")
        announced = response.headers.get("content-length")
        handle: IO[bytes]
        with fs.open(part, "wb") as handle:
            async for chunk in response.aiter_bytes(_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
        # Content-Length counts the bytes on the wire, before any content decoding (gzip…).
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        received = response.num_bytes_downloaded if encoded else size
    if announced is not None and received != int(announced):
        raise _Transient(f"got {received} bytes of the {announced} announced")
    try:
        width, height, mime = await asyncio.to_thread(_decode, fs, part, asset)
    except _Undecodable as error:
        if announced is None:
            # Nothing said how long it was: a cut-short transfer looks just like this.
            raise _Transient(str(error)) from None
        raise DownloadFailed(f"output {asset.id} {error}") from None
    return StoredOutput(
        location=dest,
        size=size,
        sha256=digest.hexdigest(),
        mime_type=mime,
        width=width,
        height=height,
    )


class _Undecodable(Exception):
    pass


def _decode(
    fs: fsspec.AbstractFileSystem, part: str, asset: Asset
) -> tuple[int | None, int | None, str]:
    """Width, height and MIME type of a downloaded output, once it has decoded.

    Raises:
        _Undecodable: the bytes are not a readable image or a decodable video.
        _Rendition: an image whose pixel size is not the one the asset announced.
    """
    if asset.kind == "image":
        try:
            with fs.open(part, "rb") as handle, Image.open(handle) as image:
                image.load()  # every pixel: a file cut short fails here
                width, height = image.size
                mime = Image.MIME.get(image.format or "", asset.mime_type)
        except Image.DecompressionBombError as error:
            # Pillow's guard against hostile files also stops a huge upscale: say how to lift it.
            raise DownloadFailed(
                f"output {asset.id} is too large for Pillow to check ({error}); raise "
                "PIL.Image.MAX_IMAGE_PIXELS in your program to collect it"
            ) from None
        except (UnidentifiedImageError, OSError) as error:
            raise _Undecodable(f"is not a readable image: {error}") from None
        if None not in (asset.width, asset.height) and (width, height) != (
            asset.width,
            asset.height,
        ):
            raise _Rendition(
                f"it is {width}x{height} pixels where the asset says {asset.width}x{asset.height}"
            )
        return width, height, mime
    if asset.kind == "video":
        try:
            with fs.open(part, "rb") as handle:
                width, height = probe_video(handle)  # container + first frame only
        except (NotAVideo, OSError) as error:
            raise _Undecodable(f"is not a decodable video: {error}") from None
        return width, height, asset.mime_type
    return None, None, asset.mime_type
