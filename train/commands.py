"""Sub-commands beyond `estimate` (each imports its heavy dependencies lazily)."""


def add_commands(sub) -> None:
    """Register the sub-commands that exist so far."""
    add_reproduce(sub)


def _reproduce(args) -> int:
    import json

    from . import reproduce

    if args.paper != "h2m2":
        raise ValueError(f"reproduce: '{args.paper}' is not available yet; available: h2m2")
    result = reproduce.reproduce_h2m2(bins=args.bins)
    print(json.dumps(result, indent=2) if args.json else reproduce.format_h2m2(result))
    return 0


def add_reproduce(sub) -> None:
    r = sub.add_parser("reproduce", help="the papers' tables beside the simulator's numbers")
    r.add_argument("paper", choices=("h2m2", "hybridserve", "tdmem"))
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--bins", type=int, default=None, help="mapping granularity (default: heads + 1)")
    r.set_defaults(func=_reproduce)
