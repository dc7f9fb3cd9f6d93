"""Thin events (``"object": "v2.core.event"``): Stripe's notifications that carry only ids.

The door reads them (``notification``), the worker completes them by fetching what they point
to before the handlers' transaction (``fetch``), and a change that arrives both as a snapshot
and as its thin twin is applied once (``twins``). The schema they share is in ``schema``.
"""
