"""Sub-commands beyond `estimate` (each imports its heavy dependencies lazily)."""


def add_commands(sub) -> None:
    """Register the sub-commands that exist so far."""
