"""``ichido orders …``, ``ichido fees …`` and ``ichido demo``: thin commands over the shop's
library. ``ichido.cli`` finds them by name when they are asked for, so the core imports none of
this."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, Optional

import typer
from rich.table import Table
from rich.text import Text

from ichido.config import Settings
from ichido.console import out, shown
from ichido.shop.settings import ShopSettings

orders_cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Inspect shop orders.")
fees_cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Stripe fees: quote, audit a catalogue, report.")

PricingOpt = typer.Option(None, "--pricing", help="Your contract's pricing file (else "
                          "ICHIDO_PRICING, else Stripe Japan's public rates).")


@contextlib.contextmanager
def _reading(database_url: str | None) -> Iterator[Any]:
    from ichido.db import open_database
    from ichido.outbox import OUTBOX_SCHEMA
    from ichido.shop.schema import SHOP_SCHEMA

    settings = Settings.from_env(database_url=database_url)
    database = open_database(settings, steps=[*OUTBOX_SCHEMA, *SHOP_SCHEMA])
    try:
        with database.reading() as tx:
            yield tx
    finally:
        database.close()


def _pricing(path: str | None):
    from ichido.shop.fees import load_pricing

    return load_pricing(path or ShopSettings.from_env().pricing_path)


@orders_cli.command("list")
def orders_list(limit: int = typer.Option(50, min=1), as_json: bool = typer.Option(False, "--json"),
                database_url: Optional[str] = typer.Option(None, "--database-url")) -> None:
    """Recent orders, newest first."""
    from ichido.shop import order_view

    with _reading(database_url) as tx:
        rows = [order_view.to_json(tx, order_id) for order_id in order_view.recent(tx, limit)]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("order", "product", "method", "amount", "status", "entitlement", "shipment",
                  "refunded")
    for row in rows:
        assert row is not None
        # buyers and clients chose some of these strings: text, never markup (ichido.console)
        table.add_row(shown(row["id"]), shown(row["product"]), shown(row["payment_method"]),
                      f"¥{row['amount']:,}", shown(row["status"]), _entitlement(row),
                      shown((row["shipment"] or {}).get("status", "-")),
                      f"¥{sum(r['amount'] for r in row['refunds']):,}")
    out.print(table)


@orders_cli.command("show")
def orders_show(order_id: str, as_json: bool = typer.Option(False, "--json"),
                database_url: Optional[str] = typer.Option(None, "--database-url")) -> None:
    """One order with its voucher, entitlement, shipment and refunds."""
    from ichido.shop import order_view

    with _reading(database_url) as tx:
        order = order_view.to_json(tx, order_id)
    if order is None:
        out.print(Text.assemble("no order ", shown(order_id)))
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(order))
    else:
        out.print_json(data=order, ensure_ascii=True)


def _entitlement(row: dict) -> str:
    entitlement = row["entitlement"]
    if entitlement is None:
        return "-"
    return "revoked" if entitlement["revoked_at"] else "granted"


@fees_cli.command("quote")
def fees_quote(amount: int = typer.Option(..., min=1, help="Price in yen."),
               method: Optional[str] = typer.Option(None, help="One method (card, konbini, "
                                                    "paypay, customer_balance); else all."),
               max_share: Optional[str] = typer.Option(None, help="Highest fee share allowed "
                                                       "(else ICHIDO_MAX_FEE_SHARE)."),
               pricing: Optional[str] = PricingOpt,
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Stripe's fee on one price, the net and the share the fee takes: for one method, or for
    every method with the cheapest non-card one within the limit named."""
    table = _pricing(pricing)
    if method is not None:
        quote = table.quote(amount, method)
        if as_json:
            print(json.dumps(quote.to_json()))
            return
        out.print(Text.assemble(shown(method), f" on ¥{amount:,}: fee ¥{quote.fee:,}, net"
                                f" ¥{quote.net:,}, fee share {float(quote.fee_share):.1%}",
                                "" if table.rule(method).confirmed else " (unconfirmed rate)"))
        return
    limit = max_share or str(ShopSettings.from_env().max_fee_share)
    comparison = table.compare(amount, limit)
    if as_json:
        print(json.dumps(comparison.to_json()))
        return
    _print_comparison(comparison, table)


def _print_comparison(comparison: Any, table: Any) -> None:
    allowed = comparison.allowed()
    grid = Table("method", "fee", "net", "share", "rate", "verdict",
                 title=f"fees on ¥{comparison.amount:,} (limit {float(comparison.max_share):.0%})")
    for quote in comparison.quotes:
        rule = table.rule(quote.method)
        verdict = ("ok" if quote.method in allowed else
                   "OVER" if comparison.accepted(quote.method) else "amount not accepted")
        others = "".join(f"; other figure ¥{o.fee(comparison.amount):,}"
                         for o in rule.other_figures)
        grid.add_row(quote.method, f"¥{quote.fee:,}", f"¥{quote.net:,}",
                     f"{float(quote.fee_share):.1%}",
                     rule.formula() + ("" if rule.confirmed else " (unconfirmed)") + others,
                     verdict)
    out.print(grid)
    found = comparison.suggestion()
    out.print(f"cheapest method other than card within the limit: {found.method} (¥{found.fee:,})"
              if found else "no method other than card is within the limit")


@fees_cli.command("rates")
def fees_rates(pricing: Optional[str] = PricingOpt,
               as_json: bool = typer.Option(False, "--json")) -> None:
    """The fee rules in use, each with its source, its date and whether it is confirmed."""
    table = _pricing(pricing)
    if as_json:
        print(json.dumps({"origin": table.origin,
                          "methods": {m: r.to_json() for m, r in table.rules.items()}}))
        return
    grid = Table("method", "rate", "confirmed", "as of", "source", title=f"fee rules ({table.origin})")
    for method, rule in table.rules.items():
        for n, figure in enumerate((rule, *rule.other_figures)):
            grid.add_row(method if n == 0 else "  other figure", figure.formula(),
                         "yes" if figure.confirmed else "UNCONFIRMED", figure.as_of,
                         shown(figure.source))
    out.print(grid)


@fees_cli.command("audit")
def fees_audit(catalog: str = typer.Argument(..., help="The catalogue TOML file."),
               max_share: str = typer.Option("0.2", help="Highest fee share allowed."),
               pricing: Optional[str] = PricingOpt,
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Every product × method with its fee; exit 1 naming each one above the limit, with a
    method to offer instead."""
    from ichido.shop.catalog import audit, load_catalog, suggest

    products, table = load_catalog(catalog), _pricing(pricing)
    rows = audit(products, table, max_share)
    offenders = [row for row in rows if row.over_limit]
    advice = {pid: suggest(products.get(pid), table, max_share)
              for pid in dict.fromkeys(row.product_id for row in offenders)}
    if as_json:
        print(json.dumps({"max_share": max_share, "rows": [row.to_json() for row in rows],
                          "offenders": [f"{r.product_id}/{r.method}" for r in offenders],
                          "suggestions": [s.to_json() for s in advice.values()]}))
    else:
        grid = Table("product", "price", "method", "fee", "share", "verdict",
                     title=f"fee audit (limit {float(max_share):.0%})")
        for row in rows:
            verdict = Text("OVER", style="red") if row.over_limit else Text("ok")
            per = f"/{row.interval}" if row.interval else ""  # a plan pays the fee each period
            grid.add_row(shown(row.product_id), f"¥{row.price:,}{per}", shown(row.method),
                         f"¥{row.fee:,}", f"{float(row.fee_share):.1%}", verdict)
        out.print(grid)
        for row in offenders:
            out.print(Text.assemble((shown(row.product_id).plain, "red"), " (", shown(row.name),
                                    f"): {row.method} takes {float(row.fee_share):.1%} of"
                                    f" ¥{row.price:,}; {advice[row.product_id].text()}"))
    if offenders:
        raise typer.Exit(1)


@fees_cli.command("report")
def fees_report(since: Optional[str] = typer.Option(None, help="Only charges from this date "
                                                    "(YYYY-MM-DD, UTC) on."),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Real fees per method from Stripe's balance transactions (STRIPE_API_KEY, STRIPE_API_BASE)."""
    import datetime as dt

    from ichido.shop.app import stripe_client
    from ichido.shop.report import fetch_charges, totals

    client = stripe_client(ShopSettings.from_env())
    start = None
    if since:
        day = dt.date.fromisoformat(since)
        start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
    rows = totals(fetch_charges(client, start))
    if as_json:
        print(json.dumps({"since": since, "methods": [row.to_json() for row in rows]}))
        return
    table = Table("method", "count", "gross", "fees", "net", "fee share", "refunded", "kept",
                  title="Stripe fees by payment method")
    for row in rows:
        j = row.to_json()
        table.add_row(shown(row.method), str(row.count), f"¥{row.gross:,}", f"¥{row.fees:,}",
                      f"¥{row.net:,}", f"{j['fee_share']:.1%}", f"¥{row.refunded:,}",
                      f"¥{j['kept']:,}")
    out.print(table)


def demo(duplicate_rate: float = typer.Option(0.3, min=0, max=1, help="Share of deliveries "
                                              "sent twice."),
         reorder_window: float = typer.Option(0.3, min=0, help="Seconds within which one "
                                              "object's events are shuffled.")) -> None:
    """Emulator + shop on SQLite, a konbini/card/refund story with chaos; exit 1 unless every
    effect happened exactly once."""
    from ichido.shop.demo import run_demo

    raise typer.Exit(run_demo(duplicate_rate, reorder_window, out))
