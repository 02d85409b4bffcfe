"""A download is judged by its transfer and by decoding it, not by ``properties.size``.

The CDN is an httpx ``MockTransport``: each test decides what bytes and headers it serves.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from scenario_upscale import storage
from scenario_upscale.errors import DownloadFailed
from scenario_upscale.models import Asset
from scenario_upscale.retry import RetryPolicy


def _png(size: tuple[int, int], compress_level: int = 6) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buffer, "PNG", compress_level=compress_level)
    return buffer.getvalue()


ORIGINAL = _png((20, 16))
QUICK = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)
ASSET = Asset(
    id="asset_out",
    url="https://cdn.test/transformed",
    mime_type="image/png",
    kind="image",
    width=20,
    height=16,
    size=len(ORIGINAL),
)


def _files_in(folder: Path) -> list[Path]:
    return list(folder.glob("*"))


async def _download(
    handler: Callable[[httpx.Request], httpx.Response],
    tmp_path: Path,
    refresh: list[str] | None = None,
    budget_s: float = 120.0,
) -> storage.StoredOutput:
    async def fresh(asset_id: str) -> str:
        if refresh is None:
            raise AssertionError("no fresh URL expected")
        refresh.append(asset_id)
        return "https://cdn.test/original"

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as cdn:
        return await storage.download(
            cdn,
            ASSET,
            str(tmp_path / "out.png"),
            refresh_url=fresh,
            policy=QUICK,
            budget_s=budget_s,
        )


async def test_a_rendition_of_another_length_than_properties_size_is_accepted(
    tmp_path: Path,
) -> None:
    rendition = _png((20, 16), compress_level=0)
    assert len(rendition) != ASSET.size
    stored = await _download(lambda _: httpx.Response(200, content=rendition), tmp_path)
    assert (stored.width, stored.height, stored.size) == (20, 16, len(rendition))
    assert (tmp_path / "out.png").read_bytes() == rendition


async def test_a_rendition_of_another_pixel_size_is_replaced_by_the_original(
    tmp_path: Path,
) -> None:
    def cdn(request: httpx.Request) -> httpx.Response:
        small = request.url.path == "/transformed"
        return httpx.Response(200, content=_png((10, 8)) if small else ORIGINAL)

    refreshed: list[str] = []
    stored = await _download(cdn, tmp_path, refreshed)
    assert (stored.width, stored.height) == (20, 16) and refreshed == ["asset_out"]


async def test_an_output_that_never_has_the_announced_pixel_size_fails(tmp_path: Path) -> None:
    refreshed: list[str] = []
    with pytest.raises(
        DownloadFailed,
        match=r"asset_out could not be downloaded to .*out\.png: it is 10x8 pixels where the "
        r"asset says 20x16",
    ):
        await _download(lambda _: httpx.Response(200, content=_png((10, 8))), tmp_path, refreshed)
    assert not _files_in(tmp_path)  # nothing under the final name, no .part left


async def test_fewer_bytes_than_content_length_is_a_transfer_cut_short(tmp_path: Path) -> None:
    def cut(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=ORIGINAL[:50], headers={"Content-Length": str(len(ORIGINAL))}
        )

    with pytest.raises(DownloadFailed, match=rf"got 50 bytes of the {len(ORIGINAL)} announced"):
        await _download(cut, tmp_path, budget_s=0.2)
    assert not _files_in(tmp_path)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_without_content_length_a_file_that_does_not_decode_is_fetched_again(
    tmp_path: Path,
) -> None:
    served: list[int] = []

    def cdn(_: httpx.Request) -> httpx.Response:
        # Chunked, no Content-Length: the first transfer stops early without any error.
        body = ORIGINAL[: len(ORIGINAL) // 2] if not served else ORIGINAL
        served.append(len(body))
        return httpx.Response(200, content=_chunks(body))

    stored = await _download(cdn, tmp_path)
    assert len(served) == 2 and stored.sha256
    with Image.open(tmp_path / "out.png") as image:
        image.load()


async def test_a_complete_transfer_that_does_not_decode_fails_at_once(tmp_path: Path) -> None:
    served: list[bool] = []

    def cdn(_: httpx.Request) -> httpx.Response:
        served.append(True)
        return httpx.Response(200, content=ORIGINAL[:-40])  # Content-Length says this is all

    with pytest.raises(DownloadFailed, match=r"output asset_out is not a readable image"):
        await _download(cdn, tmp_path)
    assert served == [True]


async def test_an_output_above_pillows_pixel_limit_fails_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 20x16 is over twice the limit
    with pytest.raises(
        DownloadFailed,
        match=r"output asset_out is too large for Pillow to check .*; raise "
        r"PIL\.Image\.MAX_IMAGE_PIXELS in your program to collect it",
    ):
        await _download(lambda _: httpx.Response(200, content=ORIGINAL), tmp_path)
    assert not _files_in(tmp_path)


def test_a_finished_write_clears_the_parts_of_killed_writers_but_not_of_live_ones(
    tmp_path: Path,
) -> None:
    import os
    import socket
    import subprocess
    import sys

    from scenario_upscale.storage import write_whole

    final = tmp_path / "hero@x2.png"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = socket.gethostname()
    dead = tmp_path / f"hero@x2.png.{host}-{gone.stdout.strip()}-abcd1234.part"
    live = tmp_path / f"hero@x2.png.{host}-{os.getpid()}-abcd1234.part"
    other_host = tmp_path / "hero@x2.png.elsewhere-1-abcd1234.part"
    for part in (dead, live, other_host):
        part.write_bytes(b"half")
    write_whole(str(final), b"whole")
    assert final.read_bytes() == b"whole"
    assert not dead.exists()
    assert live.exists() and other_host.exists()


def test_a_batch_lists_each_folder_once_for_the_parts_of_killed_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import glob
    import socket
    import subprocess
    import sys

    from scenario_upscale import storage

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    host = socket.gethostname()
    finals = [tmp_path / "a" / f"tile{i}@x2.png" for i in range(3)] + [tmp_path / "b" / "x.png"]
    dead = [final.with_name(f"{final.name}.{host}-{gone}-abcd1234.part") for final in finals]
    for part in dead:
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(b"half")
    listings: list[str] = []
    real_glob = glob.glob
    monkeypatch.setattr(glob, "glob", lambda p, **kw: listings.append(p) or real_glob(p, **kw))

    left = storage.LeftParts()
    for final in finals:
        with storage.staged(str(final), left) as out, out.fs.open(out.part, "wb") as handle:
            handle.write(b"whole")
    assert [p.exists() for p in dead] == [False] * 4
    assert len(listings) == 2  # folders a and b, once each
