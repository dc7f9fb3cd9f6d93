"""An application's own part of the operator page: its tabs, and what it knows of an event.

The dashboard knows no application. An application describes what it wants shown as data
(tables, a bar chart of shares, facts, a note) from readers it registers on its ``App``::

    app.dashboard.tab("shop", {"en": "Shop", "ja": "ショップ"})

    @app.dashboard.panel("shop")
    def open_vouchers(view: panels.View) -> list[panels.Section]:
        with view.db.reading() as tx:
            rows = tx.execute("SELECT id, amount, expires_at FROM my_orders ...").fetchall()
        return [panels.Table("Open vouchers", [panels.Column("id", "Order"),
                             panels.Column("expires_at", "Deadline", "time")],
                             [{"id": i, "amount": a, "expires_at": e} for i, a, e in rows])]

    @app.dashboard.event_panel
    def my_order(view: panels.View, event: dict) -> list[panels.Section]:
        ...  # facts about the event's object from the application's own tables

A tab is ``/dashboard/panels/{name}``, listed in the page's navigation. A reader runs in the
thread pool with a read connection of the app's database (``view.db.reading()``), its result
kept ``every`` seconds (many open pages cost one read); one that raises shows its error on the
page, redacted, and never takes the page down. Every value is shown as text (autoescaped);
a ``time`` column is shown in the page's time zone (``ICHIDO_DASHBOARD_TIMEZONE``, else
``app.dashboard.timezone``, the application's own, else UTC); an ``object`` column links to the
events of that Stripe object. Titles are a string, or one per language (``{"en", "ja"}``).

This module imports nothing optional: an application registers its panels whether or not the
``dashboard`` extra is installed, and they are shown only where the page is served.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union

from ichido.errors import ConfigError

__all__ = ["Bars", "Column", "Facts", "Field", "Note", "Panels", "Section", "Table", "Text",
           "View", "time_zone"]

#: a title: one string, or one per language code ("en", "ja"; English is the fallback)
Text = Union[str, Mapping[str, str]]
KINDS = ("text", "number", "time", "object")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class Column:
    """``kind``: ``text``; ``number`` (right-aligned); ``time`` (a Unix timestamp, shown in
    the page's time zone); ``object`` (a Stripe object id, linked to its events)."""

    key: str
    title: Text
    kind: str = "text"

    def __post_init__(self) -> None:
        _check_kind(self.kind)


@dataclass(frozen=True)
class Table:
    title: Text
    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]
    id: str = ""  # the section's HTML id (for links and tests)


@dataclass(frozen=True)
class Bars:
    """One horizontal bar per label, its share from 0 to 1 (a fee share per payment method),
    with a dashed line at ``limit`` and the bars past it marked."""

    title: Text
    bars: Sequence[tuple[str, float, str]]  # (label, share, detail shown beside it)
    limit: float | None = None
    id: str = ""


@dataclass(frozen=True)
class Field:
    label: Text
    value: Any
    kind: str = "text"  # as a column's

    def __post_init__(self) -> None:
        _check_kind(self.kind)


@dataclass(frozen=True)
class Facts:
    """Labelled values (an order's id, amount, status) as a definition list."""

    title: Text
    fields: Sequence[Field]
    id: str = ""


@dataclass(frozen=True)
class Note:
    text: Text
    id: str = ""


Section = Union[Table, Bars, Facts, Note]


@dataclass(frozen=True)
class View:
    """What a reader gets: the app's database (``db.reading()``: a read connection),
    the time of the read, and the page's time zone (for "today" as the operator sees it)."""

    db: Any
    now: float
    zone: dt.tzinfo


PanelReader = Callable[[View], Sequence[Section]]
EventReader = Callable[[View, Mapping[str, Any]], Sequence[Section]]


@dataclass(frozen=True)
class Panel:
    tab: str
    read: PanelReader
    every: float


@dataclass
class Panels:
    """``app.dashboard``: the tabs and panels an application adds to the operator page."""

    tabs: dict[str, Text] = field(default_factory=dict)
    panels: list[Panel] = field(default_factory=list)
    event_panels: list[EventReader] = field(default_factory=list)
    _timezone: str | None = None

    def tab(self, name: str, title: Text) -> None:
        """A tab of its own, ``/dashboard/panels/{name}`` (lower-case letters, digits, ``-``)."""
        if not NAME.match(name):
            raise ConfigError(f"dashboard tab {name!r}: lower-case letters, digits, - and _ only")
        self.tabs[name] = title

    def panel(self, tab: str, *, every: float = 5.0) -> Callable[[PanelReader], PanelReader]:
        """Register a reader of sections shown on ``tab``, in the order registered; its result
        is kept ``every`` seconds (a reader that asks a remote API: minutes)."""
        if tab not in self.tabs:
            raise ConfigError(f"dashboard panel on tab {tab!r}: declare it first with"
                              " app.dashboard.tab(name, title)")

        def register(read: PanelReader) -> PanelReader:
            self.panels.append(Panel(tab, read, float(every)))
            return read
        return register

    def event_panel(self, read: EventReader) -> EventReader:
        """Register a reader of sections shown on an event's page; it gets the stored event as
        Stripe sent it (a dict: ``event["data"]["object"]``). Keep it to indexed reads."""
        self.event_panels.append(read)
        return read

    @property
    def timezone(self) -> str | None:
        """The application's time zone for the page (the shop: ``Asia/Tokyo``), an IANA name;
        ``ICHIDO_DASHBOARD_TIMEZONE`` overrides it."""
        return self._timezone

    @timezone.setter
    def timezone(self, name: str | None) -> None:
        if name is not None:
            time_zone(name, "app.dashboard.timezone")
        self._timezone = name

    def on(self, tab: str) -> list[Panel]:
        return [panel for panel in self.panels if panel.tab == tab]


def time_zone(name: str, setting: str = "ICHIDO_DASHBOARD_TIMEZONE") -> dt.tzinfo:
    """The zone an IANA name names (``UTC``, ``Asia/Tokyo``), or a ``ConfigError`` saying which
    setting holds a name that is not one."""
    if name in ("UTC", "Etc/UTC"):
        return dt.timezone.utc  # no time zone database needed for the default
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"{setting}: {name!r} is not a time zone (an IANA name such as UTC or"
                          " Asia/Tokyo)") from None


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"dashboard column kind {kind!r}: one of {', '.join(KINDS)}")
