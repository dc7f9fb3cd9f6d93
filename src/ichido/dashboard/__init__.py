"""The operator page: see, search and fix stored events from a browser.

It is off unless ``ICHIDO_DASHBOARD_TOKEN`` is set. It reads through the inbox interface the CLI
uses (plus short, indexed SQL reads where that interface has nothing yet), never writes except
for an operator's action, and never renders a secret. Nothing is imported at load time
(``ichido.schema`` lists ``dashboard.schema``; Jinja2 loads only when the page is served).
"""

from __future__ import annotations

from typing import Any


def create_dashboard(*args: Any, **kwargs: Any) -> Any:
    """The dashboard's ASGI app: see ``ichido.dashboard.app.create_dashboard``."""
    from ichido.dashboard.app import create_dashboard as create

    return create(*args, **kwargs)
