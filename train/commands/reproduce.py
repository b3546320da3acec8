"""`memgym reproduce PAPER`: a paper's tables beside the simulator's numbers; the paper's environment
descriptor names the functions that compute and format them."""

from __future__ import annotations

from ..progress import heartbeat
from ..reproduce import by_paper, format_result, papers, reproduce
from . import dumps, show_progress


def run(args) -> int:
    d = by_paper(args.paper)
    if d is None:
        raise ValueError(f"reproduce: '{args.paper}' is not available; available: {', '.join(papers())}")
    with heartbeat(f"reproduce {args.paper}", enabled=show_progress(args)):
        result = reproduce(d, bins=args.bins)
    print(dumps(result) if args.json else format_result(d, result))
    return 0
