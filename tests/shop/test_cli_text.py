"""The shop's commands print what others wrote (catalogue names, ids typed or stored) as text:
never rich markup, never a raw escape sequence (the same rule as ``ichido events``, through
``ichido.console.shown``)."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_cli

HOSTILE_ID = "poster-[/]-\x1b[31mred"
HOSTILE_NAME = "Poster [bold red]x[/bold red] \x1b]0;owned\x07 \u202eevil"


def toml_string(value: str) -> str:
    """A TOML basic string: control characters as \\uXXXX escapes."""
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in value) + '"'


def test_fees_audit_prints_catalogue_strings_as_text(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        f"[[products]]\nid = {toml_string(HOSTILE_ID)}\nname = {toml_string(HOSTILE_NAME)}\n"
        'price = 300\nkind = "video_ticket"\nmethods = ["konbini"]\n', encoding="utf-8")
    done = run_cli("fees", "audit", str(catalog), "--max-share", "0.2",
                   env={"COLUMNS": "300"})
    assert done.returncode == 1, done.stdout + done.stderr  # the offender, not a crash
    assert "Traceback" not in done.stderr and "MarkupError" not in done.stderr
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in done.stdout
    assert "poster-[/]-\\x1b[31mred" in done.stdout
    assert "Poster [bold red]x[/bold red] \\x1b]0;owned\\x07 \\u202eevil" in done.stdout


def test_orders_show_of_an_unknown_hostile_id_says_so_as_text(tmp_path: Path) -> None:
    done = run_cli("orders", "show", "ord_[/]\x1b[2J",
                   database_url=f"sqlite:///{tmp_path / 'shop.db'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "no order ord_[/]\\x1b[2J" in done.stdout and "\x1b" not in done.stdout
