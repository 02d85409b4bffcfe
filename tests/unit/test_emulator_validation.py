"""The emulator's body validation and URL signing (pure logic, no server)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from scenario_upscale.emulator.catalog import MODELS_BY_ID
from scenario_upscale.emulator.errors import ApiError
from scenario_upscale.emulator.signing import UrlSigner
from scenario_upscale.emulator.store import AssetRecord
from scenario_upscale.emulator.validation import validate_body

IMAGE = AssetRecord(
    id="asset_image",
    kind="image",
    mime_type="image/png",
    source="uploaded",
    meta_type="uploaded",
    name="a.png",
    size=10,
    sha256="0" * 64,
    width=4,
    height=4,
    created_at="2026-01-01T00:00:00.000Z",
    updated_at="2026-01-01T00:00:00.000Z",
)
VIDEO = IMAGE.model_copy(update={"id": "asset_video", "kind": "video", "mime_type": "video/mp4"})
ASSETS = {a.id: a for a in (IMAGE, VIDEO)}


def check(model_id: str, body: Any) -> AssetRecord:
    return validate_body(MODELS_BY_ID[model_id], body, ASSETS.get)


def test_valid_body_returns_the_main_asset() -> None:
    body = {"image": "asset_image", "upscaleFactor": 4, "styleImages": ["asset_image"]}
    assert check("model_upscale-v3", body) is IMAGE
    assert check("model_seedvr-2-upscale-image", {"imageUrl": "asset_image"}) is IMAGE


@pytest.mark.parametrize(
    ("model_id", "body", "fragment"),
    [
        ("model_upscale-v3", [], "JSON object"),
        ("model_upscale-v3", {}, "Missing required input 'image'"),
        ("model_upscale-v3", {"image": "asset_video"}, "expected a image"),
        ("model_upscale-v3", {"image": "https://x/y.png"}, "asset id"),
        ("model_upscale-v3", {"image": "asset_image", "upscaleFactor": True}, "number"),
        ("model_upscale-v3", {"image": "asset_image", "upscaleFactor": 0.5}, ">= 1"),
        ("model_upscale-v3", {"image": "asset_image", "tileStyle": "yes"}, "boolean"),
        (
            "model_upscale-v3",
            {"image": "asset_image", "styleImages": ["asset_x"]},
            "styleImages[0]",
        ),
        (
            "model_upscale-v3",
            {"image": "asset_image", "styleImages": ["asset_image"] * 11},
            "at most",
        ),
        ("model_scenario-gemini-upscale", {"image": "asset_image", "upscaleFactor": "2k"}, "4k"),
        (
            "model_seedvr-2-upscale-image",
            {"imageUrl": "asset_image", "upscaleMode": "x"},
            "upscaleMode",
        ),
    ],
)
def test_invalid_bodies(model_id: str, body: Any, fragment: str) -> None:
    with pytest.raises(ApiError) as error:
        check(model_id, body)
    assert error.value.status_code == 400 and fragment in error.value.text


def test_signed_urls_expire_and_resist_tampering() -> None:
    signer = UrlSigner(b"k" * 32)
    url, _ = signer.sign("http://h:1", "/_cdn/asset_a", ttl_s=60)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert signer.check("/_cdn/asset_a", query["expires"], query["sig"]) is None
    assert signer.check("/_cdn/asset_b", query["expires"], query["sig"]) is not None
    later = str(int(query["expires"]) + 1)
    assert signer.check("/_cdn/asset_a", later, query["sig"]) is not None
    expired_url, _ = signer.sign("http://h:1", "/_cdn/asset_a", ttl_s=0)
    expired = {k: v[0] for k, v in parse_qs(urlsplit(expired_url).query).items()}
    assert (
        signer.check("/_cdn/asset_a", expired["expires"], expired["sig"]) == "Request has expired"
    )
    assert UrlSigner().check("/_cdn/asset_a", query["expires"], query["sig"]) is not None
