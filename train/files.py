"""Atomic file writes: a temporary file in the same folder, renamed over the target, so a reader never sees a
half-written report, results table, config or checkpoint, and a failed write leaves the old file in place."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import tempfile

log = logging.getLogger(__name__)


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


_TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # what atomic_open's mkstemp names look like


def remove_stale_temps(folder) -> list[pathlib.Path]:
    """Delete the temporary files that writes killed mid-way (`atomic_open`) left in `folder`; returns them.
    Call it when a run starts, before anything writes into the folder."""
    folder = pathlib.Path(folder)
    stale = [p for p in folder.iterdir() if p.is_file() and _TEMP.fullmatch(p.name)] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
        log.warning("removed %s, a partial file left by an interrupted write", p)
    return stale


def output_folder(path, argument: str) -> pathlib.Path:
    """`path` as a folder to write into (created if missing); a clear error when it names a file."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{argument} {path}: exists and is not a folder; name a folder (it is created if missing)")
    path.mkdir(parents=True, exist_ok=True)
    return path
