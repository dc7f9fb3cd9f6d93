"""Signed but unstorable input gets a 4xx, alone: its concurrent neighbours in the same
group-commit batch are stored and answered 200, on every backend."""

from __future__ import annotations

import asyncio
import json

import pytest

from ichido.config import Settings

from tests.support import asgi_client, event_id_of, in_process_app, make_event, post_async, run_async

BAD = {
    "created_2_63": ("value_out_of_range", lambda doc: doc.update(created=2**63)),
    "created_below_int64": ("value_out_of_range", lambda doc: doc.update(created=-(2**63) - 1)),
    "nul_in_id": ("invalid_characters", lambda doc: doc.update(id="evt_nul\x00")),
    "nul_in_type": ("invalid_characters", lambda doc: doc.update(type="charge.\x00")),
    "newline_in_id": ("invalid_characters",
                      lambda doc: doc.update(id="evt_x\nERROR ichido: forged line")),
    "long_type": ("field_too_long", lambda doc: doc.update(type="t" * 1000)),
}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_an_unstorable_event_is_refused_alone_and_its_neighbours_are_stored(
        settings: Settings, bad: str) -> None:
    code, damage = BAD[bad]
    doc = json.loads(make_event())
    damage(doc)
    poison = json.dumps(doc).encode()
    good = [make_event() for _ in range(30)]
    app = in_process_app(settings)

    async def scenario() -> list:
        async with asgi_client(app) as client:
            answers = await asyncio.gather(*(post_async(client, body)
                                             for body in [*good[:15], poison, *good[15:]]))
        await app.shutdown()
        return answers

    answers = run_async(scenario)
    refused = answers.pop(15)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, code), refused.text
    assert [a.status_code for a in answers] == [200] * 30
    stats = app.inbox.stats()
    assert stats["unique"] == 30
    assert all(app.inbox.get(event_id_of(body)) is not None for body in good)
