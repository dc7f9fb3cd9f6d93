"""Subscriptions: created, renewed by the clock, following their invoices, canceled.

Create (``POST /v1/subscriptions``): ``customer``, ``items[0][price]`` (a recurring price),
``collection_method`` (``charge_automatically``: the customer's or the subscription's
``default_payment_method`` is charged; ``send_invoice`` with ``days_until_due``: konbini, whose
``payment_settings[payment_method_types][]=konbini`` needs ``send_invoice``), optional
``trial_period_days`` / ``trial_end``, ``payment_behavior`` (``allow_incomplete``, the default;
``error_if_incomplete``: a decline is a 402 and nothing is created; ``default_incomplete``: the
first PaymentIntent waits for the client to confirm it).
States (docs.stripe.com/billing/subscriptions/overview): a card subscription starts
``incomplete`` (``customer.subscription.created``) and becomes ``active`` when its first invoice
is paid (``customer.subscription.updated``), or ``incomplete_expired`` 23 hours later; a trial is
``trialing`` with a ¥0 invoice (``customer.subscription.trial_will_end`` three days before it
ends); ``send_invoice`` subscriptions are ``active`` at once. Each period end renews: new
period (``customer.subscription.updated``) and a new invoice. A failed renewal makes it
``past_due``; payment makes it ``active`` again; dunning's end cancels it
(``customer.subscription.deleted``), as do ``DELETE /v1/subscriptions/{id}`` and
``cancel_at_period_end`` at the period's end.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from ichido.emulator import billing_objects, forms, reading
from ichido.emulator.catalog import Catalog
from ichido.emulator.errors import StripeError, invalid
from ichido.emulator.invoices import Invoices
from ichido.emulator.state import Store, snapshot

CREATE_KEYS = {"customer", "items", "collection_method", "days_until_due",
               "default_payment_method", "payment_behavior", "trial_period_days", "trial_end",
               "payment_settings", "metadata", "cancel_at_period_end", "expand", "off_session",
               "description", "trial_settings"}
UPDATE_KEYS = {"cancel_at_period_end", "default_payment_method", "metadata", "expand",
               "description", "trial_end"}
TRIAL_END_BEHAVIORS = ("create_invoice", "pause", "cancel")
INCOMPLETE_FOR = 23 * 3600
TRIAL_WARNING = 3 * 86400
ENDED = ("canceled", "incomplete_expired")
# The list's ``status`` filter (docs.stripe.com/api/subscriptions/list): ``ended`` is both ENDED.
LIST_STATUSES = ("active", "all", "canceled", "ended", "incomplete", "incomplete_expired",
                 "past_due", "paused", "trialing", "unpaid")


def period_end(start: int, recurring: dict[str, Any]) -> int:
    """``start`` plus the price's interval, months clamped as Stripe's billing anchor is."""
    count, interval = recurring["interval_count"], recurring["interval"]
    if interval in ("day", "week"):
        return start + count * (7 if interval == "week" else 1) * 86400
    when = dt.datetime.fromtimestamp(start, dt.timezone.utc)
    months = when.month - 1 + count * (12 if interval == "year" else 1)
    year, month = when.year + months // 12, months % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return int(when.replace(year=year, month=month, day=day).timestamp())


class Subscriptions:
    def __init__(self, store: Store, catalog: Catalog, invoices: Invoices) -> None:
        self.store, self.catalog, self.invoices = store, catalog, invoices
        invoices.listeners.append(self._on_invoice)
        store.due_actions.update(sub_renew=self._due_renew, sub_trial_warning=self._due_warning,
                                 sub_incomplete=self._due_incomplete)

    # -- API -------------------------------------------------------------------------------
    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, CREATE_KEYS)
        cust = self.store.get("customer", forms.text(params, "customer", required=True) or "",
                              "customer")
        price, quantity = self._item(params)
        method, days, types = self._collection(params)
        behavior = forms.text(params, "payment_behavior") or "allow_incomplete"
        if behavior not in ("allow_incomplete", "error_if_incomplete", "default_incomplete"):
            raise invalid(f"Invalid payment_behavior: {behavior}", param="payment_behavior")
        name = forms.text(params, "default_payment_method")
        pm_id = self.catalog.resolve_card(name) if name else None
        now = self.store.clock.now()
        trial = self._trial(params, now)
        if method == "charge_automatically" and not trial and behavior != "default_incomplete" \
                and not (pm_id or cust["invoice_settings"]["default_payment_method"]
                         or cust["default_source"]):
            raise invalid("This customer has no attached payment source or default payment "
                          "method. Please consider adding a default payment method.",
                          code="resource_missing")
        first = (now, trial[1] if trial else period_end(now, price["recurring"]))
        sub = self.store.add(billing_objects.subscription(
            now, customer_id=cust["id"], price_obj=price, quantity=quantity,
            collection_method=method, days_until_due=days, default_payment_method=pm_id,
            payment_method_types=types, metadata=forms.metadata(params), period=first,
            trial=trial))
        sub["cancel_at_period_end"] = forms.boolean(params, "cancel_at_period_end")
        sub["description"] = forms.text(params, "description")
        sub["trial_settings"]["end_behavior"]["missing_payment_method"] = self._end_behavior(
            params)
        if method == "send_invoice":
            sub["status"] = "active"
        self.store.emit("customer.subscription.created", sub)
        inv = self.invoices.draft(sub, 0 if trial else self._amount(sub), "subscription_create",
                                  first)
        sub["latest_invoice"] = inv["id"]
        if behavior == "default_incomplete" and not trial and method == "charge_automatically":
            self._await_confirmation(inv)
        else:
            self.invoices.finalize(inv, sub)
        if behavior == "error_if_incomplete" and sub["status"] == "incomplete":
            raise StripeError(402, "card_error", "Your card was declined.", code="card_declined",
                              decline_code="generic_decline", undo=True)  # nothing stays
        if sub["status"] == "incomplete":
            self.store.schedule(now + INCOMPLETE_FOR, "sub_incomplete", sub["id"])
        if trial and trial[1] - TRIAL_WARNING > now:
            self.store.schedule(trial[1] - TRIAL_WARNING, "sub_trial_warning", sub["id"])
        elif trial:  # a trial shorter than three days is warned of at once, as Stripe does
            self.store.emit("customer.subscription.trial_will_end", sub)
        self.store.schedule(first[1], "sub_renew", sub["id"], str(first[1]))
        return sub

    def retrieve(self, sub_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get("subscription", sub_id, "subscription")

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"customer", "status", "collection_method", "limit",
                                   "starting_after", "ending_before", "expand", "price", "created"})
        status = forms.text(params, "status")
        if status is not None and status not in LIST_STATUSES:
            raise invalid(f"Invalid status: must be one of {', '.join(LIST_STATUSES)}",
                          param="status")
        items = everything = list(reversed(self.store.objects["subscription"].values()))
        if status == "ended":
            items = [s for s in items if s["status"] in ENDED]
        elif status != "all":
            items = [s for s in items if s["status"] == status] if status else \
                [s for s in items if s["status"] not in ENDED]
        for name in ("customer", "collection_method"):
            if params.get(name):
                items = [s for s in items if s[name] == params[name]]
        if params.get("price"):  # every filter applies: none is taken and ignored
            items = [s for s in items if any(i["price"]["id"] == params["price"]
                                             for i in s["items"]["data"])]
        bounds = reading.created_bounds(params)
        items = [s for s in items if all(reading.COMPARE[op](s["created"], v)
                                         for op, v in bounds)]
        return reading.page(items, params, "/v1/subscriptions", "subscription", everything)

    def update(self, sub_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, UPDATE_KEYS)
        sub = self._live(sub_id)
        before = snapshot(sub)
        if "cancel_at_period_end" in params:
            at_end = forms.boolean(params, "cancel_at_period_end")
            sub.update(cancel_at_period_end=at_end,
                       cancel_at=sub["current_period_end"] if at_end else None,
                       canceled_at=self.store.clock.now() if at_end else None)
        name = forms.text(params, "default_payment_method")
        if name:
            sub["default_payment_method"] = self.catalog.resolve_card(name)
        if "metadata" in params:
            sub["metadata"] = {**sub["metadata"], **forms.metadata(params)}
        if "description" in params:
            sub["description"] = forms.text(params, "description")
        if "trial_end" in params:
            return self._end_trial(sub, before, forms.text(params, "trial_end") or "")
        self.store.emit_update("customer.subscription.updated", sub, before)
        return sub

    def _end_trial(self, sub: dict[str, Any], before: dict[str, Any],
                   value: str) -> dict[str, Any]:
        """``trial_end=now`` (docs.stripe.com/billing/subscriptions/trials): the trial ends
        and the first paid period starts; with no payment method, ``trial_settings[end_behavior]
        [missing_payment_method]`` decides: ``pause`` (``customer.subscription.paused``),
        ``cancel``, or ``create_invoice`` (the invoice waits for a payment method)."""
        if value != "now":
            raise invalid("The emulator ends a trial with trial_end=now only.",
                          param="trial_end")
        if sub["status"] != "trialing":
            raise invalid("This subscription is not trialing.", param="trial_end")
        now = self.store.clock.now()
        sub.update(trial_end=now)
        behavior = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
        if not self.invoices._card(sub) and behavior != "create_invoice":
            if behavior == "cancel":
                return self._end(sub, "cancellation_requested")
            sub.update(status="paused", pause_collection=None)
            self.store.emit_update("customer.subscription.updated", sub, before)
            self.store.emit("customer.subscription.paused", sub)
            return sub
        self.store.emit_update("customer.subscription.updated", sub, before)
        sub.update(current_period_end=now)
        self._due_renew(sub["id"], str(now))
        return sub

    def cancel(self, sub_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """``DELETE /v1/subscriptions/{id}``: ends now."""
        forms.check_known(params, {"expand", "invoice_now", "prorate", "cancellation_details"})
        return self._end(self._live(sub_id), "cancellation_requested")

    # -- following invoices and the clock ---------------------------------------------------
    def _on_invoice(self, inv: dict[str, Any], what: str) -> None:
        sub = self.store.objects["subscription"].get(inv["subscription"] or "")
        if sub is None or sub["status"] in ENDED:
            return
        if what == "paid" and sub["status"] in ("incomplete", "past_due"):
            self._move(sub, status="active")
        elif what == "failed" and sub["collection_method"] == "charge_automatically" \
                and sub["status"] in ("active", "trialing"):
            self._move(sub, status="past_due")
        elif what == "overdue" and sub["status"] == "active":
            self._move(sub, status="past_due")
        elif what == "lapsed" and sub["status"] != "incomplete":
            self._end(sub, "payment_failed")

    def _due_renew(self, sub_id: str, token: str) -> None:
        sub = self.store.get("subscription", sub_id)
        if sub["status"] in ENDED or str(sub["current_period_end"]) != token:
            return
        if sub["cancel_at_period_end"]:
            self._end(sub, "cancellation_requested")
            return
        if sub["status"] in ("incomplete", "paused"):
            return  # never started (it expires instead), or paused at its trial's end
        start = sub["current_period_end"]
        end = period_end(start, sub["items"]["data"][0]["price"]["recurring"])
        before = snapshot(sub)
        sub.update(current_period_start=start, current_period_end=end)
        sub["items"]["data"][0].update(current_period_start=start, current_period_end=end)
        if sub["status"] == "trialing":
            sub["status"] = "active"
        inv = self.invoices.draft(sub, self._amount(sub), "subscription_cycle", (start, end))
        sub["latest_invoice"] = inv["id"]
        self.store.emit_update("customer.subscription.updated", sub, before)
        self.invoices.finalize_later(inv)
        self.store.schedule(end, "sub_renew", sub_id, str(end))

    def _due_warning(self, sub_id: str, token: str) -> None:
        sub = self.store.get("subscription", sub_id)
        if sub["status"] == "trialing":
            self.store.emit("customer.subscription.trial_will_end", sub)

    def _due_incomplete(self, sub_id: str, token: str) -> None:
        sub = self.store.get("subscription", sub_id)
        if sub["status"] == "incomplete":
            self._end(sub, "payment_failed", status="incomplete_expired")

    # -- transitions -----------------------------------------------------------------------
    def _move(self, sub: dict[str, Any], **change: Any) -> None:
        before = snapshot(sub)
        sub.update(change)
        self.store.emit_update("customer.subscription.updated", sub, before)

    def _end(self, sub: dict[str, Any], reason: str, status: str = "canceled") -> dict[str, Any]:
        now = self.store.clock.now()
        sub.update(status=status, ended_at=now, canceled_at=sub["canceled_at"] or now)
        sub["cancellation_details"]["reason"] = reason
        self.store.emit("customer.subscription.deleted", sub)
        return sub

    def _await_confirmation(self, inv: dict[str, Any]) -> None:
        """``default_incomplete``: finalize, open the PaymentIntent, do not charge."""
        inv.update(status="open")
        inv["status_transitions"]["finalized_at"] = self.store.clock.now()
        self.store.emit("invoice.finalized", inv)
        self.invoices._intent(inv, ["card"])

    # -- inputs ----------------------------------------------------------------------------
    def _item(self, params: dict[str, Any]) -> tuple[dict[str, Any], int]:
        items = params.get("items")
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            raise invalid("The emulator takes exactly one item: items[0][price].",
                          param="items")
        forms.check_known(items[0], {"price", "quantity", "metadata"}, "items[0]")
        price = self.store.get("price", forms.text(items[0], "price", required=True,
                                                   param="items[0][price]") or "",
                               "items[0][price]")
        if price["recurring"] is None:
            raise invalid("The price specified is set to `type=one_time` but this field only "
                          "accepts prices with `type=recurring`.", param="items[0][price]")
        quantity = forms.integer(items[0], "quantity", param="items[0][quantity]") or 1
        if not 1 <= quantity <= 10_000 or price["unit_amount"] * quantity > forms.MAX_AMOUNT:
            raise invalid("Invalid items[0][quantity].", param="items[0][quantity]")
        return price, quantity

    def _collection(self, params: dict[str, Any]) -> tuple[str, int | None, list[str] | None]:
        method = forms.text(params, "collection_method") or "charge_automatically"
        if method not in ("charge_automatically", "send_invoice"):
            raise invalid(f"Invalid collection_method: {method}", param="collection_method")
        days = forms.integer(params, "days_until_due")
        if method == "send_invoice" and days is None:
            raise invalid("Missing required param: days_until_due.", param="days_until_due",
                          code="parameter_missing")
        if days is not None and (method != "send_invoice" or not 0 <= days <= 1095):
            raise invalid("days_until_due is 0 to 1095, with collection_method=send_invoice "
                          "only.", param="days_until_due")
        settings = forms.mapping(params, "payment_settings")
        forms.check_known(settings, {"payment_method_types"}, "payment_settings")
        types = forms.strings(settings, "payment_method_types") or None
        for kind in types or ():
            if kind not in ("card", "konbini"):
                raise invalid(f"Invalid payment_method_types: {kind}",
                              param="payment_settings[payment_method_types]")
        if types and "konbini" in types and method != "send_invoice":
            raise invalid("konbini cannot be charged automatically: use collection_method="
                          "send_invoice.", param="payment_settings[payment_method_types]")
        return method, days, types

    @staticmethod
    def _end_behavior(params: dict[str, Any]) -> str:
        settings = forms.mapping(params, "trial_settings")
        forms.check_known(settings, {"end_behavior"}, "trial_settings")
        end = forms.mapping(settings, "end_behavior", "trial_settings[end_behavior]")
        forms.check_known(end, {"missing_payment_method"}, "trial_settings[end_behavior]")
        behavior = forms.text(end, "missing_payment_method") or "create_invoice"
        if behavior not in TRIAL_END_BEHAVIORS:
            raise invalid(f"Invalid missing_payment_method: must be one of "
                          f"{', '.join(TRIAL_END_BEHAVIORS)}",
                          param="trial_settings[end_behavior][missing_payment_method]")
        return behavior

    @staticmethod
    def _trial(params: dict[str, Any], now: int) -> tuple[int, int] | None:
        days = forms.integer(params, "trial_period_days")
        end = forms.integer(params, "trial_end")
        if days is not None and end is not None:
            raise invalid("You may only specify one of trial_end and trial_period_days.",
                          param="trial_end")
        if days is not None:
            if not 0 <= days <= 730:
                raise invalid("trial_period_days is 0 to 730.", param="trial_period_days")
            return (now, now + days * 86400) if days else None
        if end is not None:
            if not now < end <= now + 730 * 86400:
                raise invalid("trial_end must be in the future, within two years.",
                              param="trial_end")
            return now, end
        return None

    @staticmethod
    def _amount(sub: dict[str, Any]) -> int:
        item = sub["items"]["data"][0]
        return int(item["price"]["unit_amount"] * item["quantity"])

    def _live(self, sub_id: str) -> dict[str, Any]:
        sub = self.store.get("subscription", sub_id, "subscription")
        if sub["status"] in ENDED:
            raise invalid(f"A canceled subscription can only update its cancellation_details "
                          f"and metadata ({sub_id} is {sub['status']}).")
        return sub
