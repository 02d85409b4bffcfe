"""Check the output location before anything is uploaded or submitted.

A target the run cannot write would otherwise be found at collect, after the jobs were paid for:
an fsspec backend that is not installed (``s3://`` without ``s3fs``), an unknown protocol, a file
where a folder is expected, or a folder this process may not write. ``check_target`` opens the
target's filesystem, creates the folder and writes and removes one small file, so each of those
fails here, naming the target and the fix.
"""

from __future__ import annotations

import uuid

import fsspec

from scenario_upscale.errors import InvalidTarget

_PROBE = ".scenario-upscale-write-check"


def check_target(target: str) -> None:
    """Raise ``InvalidTarget`` unless outputs can be written into ``target``.

    Example:
        >>> check_target("foo://out")
        Traceback (most recent call last):
        ...
        scenario_upscale.errors.InvalidTarget: target 'foo://out': unknown protocol 'foo://'; \
give a local folder or an fsspec URL (s3://, gs://, az://, memory://, ...)
    """
    protocol = target.split("://", 1)[0] + "://" if "://" in target else ""
    try:
        fs, path = fsspec.core.url_to_fs(target)
    except ImportError as error:
        raise InvalidTarget(
            f"target {target!r}: the storage backend for {protocol} is not installed ({error}); "
            "install it into this environment (e.g. `scripts/uv add s3fs` for s3://) and run "
            "again"
        ) from None
    except ValueError:
        raise InvalidTarget(
            f"target {target!r}: unknown protocol {protocol!r}; give a local folder or an fsspec "
            "URL (s3://, gs://, az://, memory://, ...)"
        ) from None
    if fs.isfile(path):
        raise InvalidTarget(
            f"target {target!r} is a file; give a folder: outputs are written inside it"
        )
    try:
        fs.makedirs(path, exist_ok=True)
        # One name per check: two runs on one target at once must not remove each other's.
        probe = f"{path.rstrip('/')}/{_PROBE}-{uuid.uuid4().hex}"
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except OSError as error:
        raise InvalidTarget(
            f"target {target!r} cannot be written ({type(error).__name__}: {error}); give a "
            "folder this run may create and write into"
        ) from None
