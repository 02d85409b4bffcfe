"""Resource ids shaped like the real ones (``job_`` + 24 url-safe characters, ...)."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    # Random rather than sequential so clients cannot rely on ordering of ids.
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))
