"""Where the ``ichido`` commands print, and how they print a string someone else chose.

An event's id, type, payload and error text come from senders and handlers; printed raw, a
control character in one could move the operator's cursor, rewrite a line already shown or turn
on rich markup. ``shown`` is the one way a command prints such a string.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

# The public API (docs/api.md): what an application may import from here.
__all__ = ["err", "out", "shown"]

out = Console()
err = Console(stderr=True)


def shown(value: object) -> Text:
    """A stored string as the operator's terminal may print it: plain text (no markup), and
    every control or invisible formatting character visible as an escape (no ANSI sequence,
    no bidirectional override, no line break a sender put there)."""
    text = "" if value is None else str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text)
    return Text(text)
