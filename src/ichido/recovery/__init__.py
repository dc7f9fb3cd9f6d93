"""Nothing Stripe sent is ever lost: the reconciler (Events API), replay by filter, and alerts
(issue 13). The stale-event guard they were built with is the worker's admission check
(``ichido.guard``).

This package imports nothing at load time: ``ichido.schema`` lists its schema steps
(``recovery.schema``) with the other core tables.
"""
