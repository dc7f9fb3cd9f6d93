"""One API request's writes, kept or undone together: a refused request leaves no trace.

Why: a request that fails half-way (a validation error found late, an emulator bug) must not
leave a stored object behind, as Stripe stores nothing for a refused request. While a journal
is open the store notes every object it adds, a copy of every object a handler fetched (so its
changes can be put back), every transition it scheduled, and holds back the events it emitted;
``commit`` announces the events, ``undo`` puts everything back and announces nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Journal:
    added: list[tuple[str, str]] = field(default_factory=list)
    before: dict[tuple[str, str], bytes] = field(default_factory=dict)
    scheduled: set[int] = field(default_factory=set)
    events: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)  # deleted, as they were

    def touched(self, obj: dict[str, Any]) -> None:
        """Remember ``obj`` as it was before this request first reached it."""
        key = (obj["object"], obj["id"])
        if key not in self.before:
            self.before[key] = orjson.dumps(obj)

    def restore(self, objects: dict[str, dict[str, dict[str, Any]]]) -> None:
        for kind, object_id in reversed(self.added):
            objects[kind].pop(object_id, None)
        for obj in self.removed:
            objects[obj["object"]][obj["id"]] = obj
        for (kind, object_id), saved in self.before.items():
            current = objects[kind].get(object_id)
            if current is not None:  # in place: the store's dict stays the one object
                current.clear()
                current.update(orjson.loads(saved))
