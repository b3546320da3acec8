"""Progress for long commands, on a terminal and off it.

On a terminal: a tqdm bar redrawn in place. Elsewhere (a log file, CI, a pipe): the same tqdm bar written as
one plain line every `NON_TTY_INTERVAL_S` seconds (and at the end), so a captured log shows that the command
is alive and how far it got. `enabled=False` (the CLI's `--quiet` / `--no-progress`) draws nothing.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading

from tqdm import tqdm

NON_TTY_INTERVAL_S = 15.0


class LineStream:
    """A file for tqdm that turns its carriage-return redraws into newline-terminated lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, s: str) -> None:
        line = s.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def bar(total=None, desc: str = "", enabled: bool = True, initial: int = 0, unit: str = "step",
        unit_scale: bool = True, stream=None):
    """A tqdm bar (a disabled one when `enabled` is False): in place on a TTY, periodic lines elsewhere."""
    stream = sys.stderr if stream is None else stream
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if tty:
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale, file=stream,
                    dynamic_ncols=True, disable=not enabled)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale, file=LineStream(stream),
                mininterval=NON_TTY_INTERVAL_S, maxinterval=NON_TTY_INTERVAL_S, ncols=100, ascii=True,
                disable=not enabled)


@contextlib.contextmanager
def heartbeat(desc: str, enabled: bool = True, stream=None, tick_s: float = 1.0):
    """Show elapsed time while the body runs (for work with no natural step count: a jitted sweep, an
    evaluation): a bar of seconds, ticked by a background thread. Yields a function `stage(text)` that names
    the part now running."""
    b = bar(None, desc, enabled=enabled, unit="s", unit_scale=False, stream=stream)
    stop = threading.Event()

    def tick():
        while not stop.wait(tick_s):
            b.update(tick_s)

    thread = threading.Thread(target=tick, daemon=True)
    if enabled:
        thread.start()
    try:
        yield lambda text: b.set_postfix_str(text)
    finally:
        stop.set()
        if enabled:
            thread.join()
        b.close()


def fmt(x, spec: str = ".3f") -> str:
    """A figure for the terminal: `format(x, spec)`, or "n/a" where it is missing or not finite."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return format(x, spec) if math.isfinite(x) else "n/a"
