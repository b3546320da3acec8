"""Atomic file writes: a temporary file in the same folder, renamed over the target, so a reader never sees a
half-written report, results table, config or checkpoint, and a failed write leaves the old file in place."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_open(path):
    """A binary file handle whose contents replace `path` when the block ends without an error."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be read by others
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path, data: str | bytes) -> None:
    with atomic_open(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
