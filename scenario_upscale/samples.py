"""Sample game-art images for the demo: generated, so the repository ships no binaries."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

Painter = Callable[[ImageDraw.ImageDraw, int, int, random.Random], None]


def _sky(draw: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    top, bottom = (rng.randrange(20, 80), 60, 160), (250, rng.randrange(120, 200), 120)
    for y in range(h):
        t = y / h
        draw.line(
            [(0, y), (w, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    draw.ellipse([w * 0.6, h * 0.5, w * 0.85, h * 0.75], fill=(255, 230, 150))


def _tiles(draw: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    step = rng.choice([8, 12, 16])
    base = (rng.randrange(60, 140), rng.randrange(90, 160), 70)
    for y in range(0, h, step):
        for x in range(0, w, step):
            shade = rng.randrange(-25, 25)
            draw.rectangle(
                [x, y, x + step - 1, y + step - 1],
                fill=tuple(max(0, min(255, c + shade)) for c in base),
            )


def _sprite(draw: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    draw.rectangle([0, 0, w, h], fill=(30, 30, 46))
    body = (rng.randrange(120, 255), rng.randrange(40, 200), rng.randrange(40, 200))
    draw.ellipse([w * 0.25, h * 0.2, w * 0.75, h * 0.9], fill=body, outline=(0, 0, 0), width=2)
    for ex in (0.4, 0.6):
        draw.ellipse([w * ex - 4, h * 0.4 - 4, w * ex + 4, h * 0.4 + 4], fill=(255, 255, 255))
        draw.ellipse([w * ex - 2, h * 0.4 - 2, w * ex + 2, h * 0.4 + 2], fill=(0, 0, 0))


def _rune(draw: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    draw.rectangle([0, 0, w, h], fill=(18, 12, 40))
    cx, cy, r = w / 2, h / 2, min(w, h) * 0.4
    turn = rng.uniform(0, 2 * math.pi)
    points = [
        (cx + r * math.cos(a), cy + r * math.sin(a))
        for a in (turn + i * 2 * math.pi / 5 * 2 for i in range(6))
    ]
    draw.line(points, fill=(rng.randrange(80, 200), 220, 255), width=3)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(200, 120, 255), width=2)


PAINTERS: dict[str, Painter] = {"sky": _sky, "tiles": _tiles, "sprite": _sprite, "rune": _rune}


def write_samples(folder: Path, count: int = 12, seed: int = 7) -> list[Path]:
    """Write ``count`` small PNGs (skies, tile sets, sprites, runes) and return their paths.

    Example:
        >>> paths = write_samples(Path("demo-input"), 4)  # doctest: +SKIP
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    kinds = list(PAINTERS)
    paths = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        w, h = rng.choice([(96, 96), (128, 96), (80, 120), (112, 112)])
        image = Image.new("RGB", (w, h))
        PAINTERS[kind](ImageDraw.Draw(image), w, h, rng)
        path = folder / f"{kind}-{i // len(kinds) + 1:02d}.png"
        image.save(path)
        paths.append(path)
    return paths
