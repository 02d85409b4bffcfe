"""The demo's generated samples: real, distinct images (identical ones would share one job)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from scenario_upscale.samples import write_samples


def test_twelve_distinct_images(tmp_path: Path) -> None:
    paths = write_samples(tmp_path, 12)
    assert len(paths) == 12
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}) == 12
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) >= 80
