"""HMAC-signed URLs for the fake CDN (downloads) and the fake S3 (multipart part uploads).

Like real presigned URLs they carry their own expiry and need no Authorization header; a client
that edits the query string or waits past ``expires`` gets a 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode


class UrlSigner:
    def __init__(self, key: bytes | None = None) -> None:
        # A fresh key per server, so URLs from an earlier run never validate.
        self._key = key or secrets.token_bytes(32)

    def _signature(self, path: str, expires_ms: int) -> str:
        message = f"{path}\n{expires_ms}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:40]

    def sign(self, root_url: str, path: str, ttl_s: float) -> tuple[str, int]:
        """Return the absolute URL and its expiry (unix milliseconds)."""
        # Milliseconds so that sub-second TTLs (the short-expiry fault) behave exactly.
        expires_ms = int((time.time() + ttl_s) * 1000)
        query = urlencode({"expires": expires_ms, "sig": self._signature(path, expires_ms)})
        return f"{root_url.rstrip('/')}{path}?{query}", expires_ms

    def check(self, path: str, expires: str | None, sig: str | None) -> str | None:
        """None when valid, else the reason for refusing."""
        if not expires or not sig:
            return "Missing signature"
        try:
            expires_ms = int(expires)
        except ValueError:
            return "Malformed expiry"
        if not hmac.compare_digest(self._signature(path, expires_ms), sig):
            return "Signature does not match"
        if time.time() * 1000 >= expires_ms:
            return "Request has expired"
        return None
