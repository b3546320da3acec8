"""`memgym presets [models|hardware]`: the shipped presets with their key numbers and sources."""

from __future__ import annotations

from .. import presets
from . import dumps


def run(args) -> int:
    kinds = presets.KINDS if args.kind is None else (args.kind,)
    tables = {k: presets.rows(k) for k in kinds}
    if args.json:
        print(dumps(tables))
    else:
        print("\n\n".join(presets.format_rows(k, r) for k, r in tables.items()))
    return 0
