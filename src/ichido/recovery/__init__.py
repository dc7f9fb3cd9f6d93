"""Nothing Stripe sent is ever lost: the stale-event guard, the reconciler (Events API), replay by
filter, and alerts (issue 13).

This package imports nothing at load time, so the storage roles can take its schema steps
(``recovery.schema``) without an import circle.
"""
