"""An ichido app for DynamoDB, as a user would deploy it: one effects item per application
(a random sort key, so a second application shows up as a second item) in ``EFFECTS_TABLE``."""

from __future__ import annotations

import os
import uuid

import ichido

app = ichido.App(workers=0)


@app.on("charge.succeeded", "payment_intent.succeeded", "invoice.paid")
def record_effect(event: ichido.Event, tx) -> None:
    tx.put(os.environ["EFFECTS_TABLE"], {"pk": event.id, "sk": uuid.uuid4().hex,
                                         "type": event.type, "attempt": event.attempt})
