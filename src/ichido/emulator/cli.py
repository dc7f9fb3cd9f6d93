"""``ichido emulator``: flags in, a running local Stripe out. Registered by ``ichido.cli``."""

from __future__ import annotations

from typing import List, Optional

import typer

WEBHOOK_URL = typer.Option([], "--webhook-url", help="Endpoint to send every event to "
                           "(repeat for several).")
WEBHOOK_SECRET = typer.Option([], "--webhook-secret", envvar="STRIPE_WEBHOOK_SECRET",
                              help="Signing secret whsec_… (repeat during a roll: every "
                              "delivery is signed with each).")


def emulator(
    port: int = typer.Option(12111, help="TCP port on 127.0.0.1 (Stripe's stripe-mock uses "
                             "12111 too)."),
    webhook_url: List[str] = WEBHOOK_URL,
    webhook_secret: List[str] = WEBHOOK_SECRET,
    duplicate_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of deliveries "
                                         "sent twice (at once or a little later)."),
    reorder_window: float = typer.Option(0.0, min=0.0, help="Seconds an object's events are "
                                         "held, then sent in random order."),
    delay: float = typer.Option(0.0, min=0.0, help="Extra seconds before every first attempt."),
    fail_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of 2xx answers treated "
                                    "as timeouts, so the event comes again on the retry."),
    time_scale: float = typer.Option(1.0, min=0.0, help="Multiplier for Stripe's retry "
                                     "schedule (0.001: three days in ~4 minutes)."),
    webhook_concurrency: int = typer.Option(32, min=1, help="Webhook requests on the wire at "
                                            "once; the rest wait their turn."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="The only key accepted "
                                          "(default: any sk_test_…)."),
    seed: Optional[int] = typer.Option(None, help="Seed for the chaos, to replay a run."),
    pricing: Optional[str] = typer.Option(None, "--pricing", envvar="ICHIDO_PRICING",
                                          help="Fee rules to charge (the shop's pricing file "
                                          "format: the methods it names replace the "
                                          "emulator's own pricing.toml)."),
    api_version: str = typer.Option("2026-10-28.endive", "--api-version",
                                    help="The account's default Stripe API version: requests "
                                    "without Stripe-Version and events are rendered in it."),
    generation_failure_rate: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of changes whose events Stripe fails to generate "
        "(none stored, listed or sent); the thin health alert names each later."),
    generation_alert_after: float = typer.Option(
        300.0, min=0.0, help="Seconds (emulator clock) from a failed generation to its "
        "v2.core.health.event_generation_failure.resolved alert."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Run a local Stripe (payments, konbini, refunds, billing, Checkout, webhooks) on loopback."""
    from ichido.emulator import Emulator, run

    if webhook_url and not webhook_secret:
        raise typer.BadParameter("a --webhook-url needs a --webhook-secret (whsec_…)",
                                 param_hint="--webhook-secret")
    try:
        emu = Emulator(webhook_urls=webhook_url, webhook_secrets=webhook_secret,
                       api_key=api_key, duplicate_rate=duplicate_rate,
                       reorder_window=reorder_window, delay=delay, fail_rate=fail_rate,
                       time_scale=time_scale, webhook_concurrency=webhook_concurrency,
                       seed=seed, pricing=pricing, api_version=api_version,
                       generation_failure_rate=generation_failure_rate,
                       generation_alert_after=generation_alert_after)
    except ValueError as exc:  # a bad pricing file or version: one line, no traceback
        hint = "--api-version" if "API version" in str(exc) else "--pricing"
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    typer.echo(f"ichido emulator: http://127.0.0.1:{port} "
               f"(stripe.api_base or base_addresses={{'api': ...}}), "
               f"{len(webhook_url)} webhook endpoint(s)", err=True)
    run(emu, port=port, log_level=log_level)
