"""A small TensorBoard scalar writer on tensorboard's own event-file writer (no torch, no TensorFlow).

The JAX trainer writes SB3's tag names through it (`rollout/ep_rew_mean`, `time/fps`, `train/*`) so that SB3
and JAX runs of the same experiment plot on the same axes; `env/<metric>` and `baseline/<heuristic>/*` are
written the same way by both trainers.
"""

from __future__ import annotations

import math
import pathlib
import time

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter

from .files import atomic_open


class ScalarWriter:
    """Append scalars to a TensorBoard event file in `logdir` (a new file per writer; TensorBoard reads
    every file of a folder as one run, so a resumed run continues its curve in the same folder)."""

    def __init__(self, logdir):
        pathlib.Path(logdir).mkdir(parents=True, exist_ok=True)
        self.logdir = str(logdir)
        self._writer = EventFileWriter(self.logdir)

    def add_scalar(self, tag: str, value, step: int) -> None:
        value = float(value)
        if not math.isfinite(value):  # e.g. no episode finished in this chunk: write nothing
            return
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def add_scalars(self, scalars: dict, step: int) -> None:
        for tag, value in scalars.items():
            self.add_scalar(tag, value, step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar under `logdir` (recursively) as {tag: [(step, value), ...]} sorted by step; for tests and
    reports."""
    out: dict[str, list[tuple[int, float]]] = {}
    folders = {p.parent for p in pathlib.Path(logdir).rglob("events.out.tfevents.*")}
    for folder in sorted(folders):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {tag: sorted(v) for tag, v in out.items()}


def drop_after(logdir, step: int) -> list[pathlib.Path]:
    """Rewrite every event file under `logdir` without the events past `step` (atomically); returns the files
    changed. A resumed run calls it with the checkpoint's step: what was logged after that checkpoint is
    logged again, so TensorBoard would otherwise show those steps twice."""
    changed = []
    for path in sorted(pathlib.Path(logdir).rglob("events.out.tfevents.*")):
        events = list(EventFileLoader(str(path)).Load())
        keep = [e for e in events if e.step <= step]
        if len(keep) == len(events):
            continue
        with atomic_open(path) as f:
            writer = RecordWriter(f)
            for e in keep:
                writer.write(e.SerializeToString())
        changed.append(path)
    return changed
