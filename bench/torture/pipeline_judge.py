"""The pipeline torture's judge: once the store has settled, compare it with what was sent.

- lost: an event some copy of which was answered 2xx, but that is not stored as processed
  (I1 in docs/invariants.md);
- double: an event with more than one row in the effects table, which has no unique
  constraint, so a second application shows (I2, I8);
- missing: a stored, processed event without its effect row;
- dead, refused, gave up, unsettled: anything else that did not end as it should.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import Any, Iterator

import psycopg

from bench.torture.pipeline_plan import Plan
from bench.torture.pipeline_sender import Sender
from bench.torture.services import log


class Judge:
    def __init__(self, database_url: str, plan: Plan) -> None:
        self.url, self.plan = database_url, plan

    def stats(self) -> dict[str, int]:
        from ichido.config import Settings
        from ichido.db import open_database
        from ichido.schema import open_inbox

        settings = Settings(database_url=self.url)
        database = open_database(settings)
        inbox = open_inbox(settings, database)
        try:
            return inbox.stats()
        finally:
            inbox.close()
            database.close()

    def settle(self, timeout: float) -> bool:
        """Wait until nothing is pending, in work or waiting for a retry, quiet for 2 s."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        last_report = 0.0
        while time.monotonic() < deadline:
            try:
                stats = self.stats()
            except Exception as exc:  # noqa: BLE001 - a store still coming back: wait
                log(f"settling: store not answering ({type(exc).__name__})")
                time.sleep(1)
                continue
            open_work = stats["pending"] + stats["processing"] + stats["retrying"]
            now = time.monotonic()
            if now - last_report > 10:
                log(f"settling: {stats['unique']:,} stored, {open_work:,} still to process")
                last_report = now
            if open_work:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > 2:
                return True
            time.sleep(0.5)
        return False

    @contextlib.contextmanager
    def _rows(self, sql: str) -> Iterator[Iterator[tuple]]:
        """The rows of ``sql``, streamed (a million is fine), from either kind of store."""
        if self.url.startswith("sqlite:"):
            from ichido.db.sqlite import path_from_url

            conn = sqlite3.connect(f"file:{path_from_url(self.url)}?mode=ro", uri=True)
            try:
                yield iter(conn.execute(sql))
            finally:
                conn.close()
            return
        with psycopg.connect(self.url) as conn, conn.cursor(name="rows") as cursor:
            cursor.itersize = 20_000
            yield iter(cursor.execute(sql))

    def _ids(self, sql: str) -> bytearray:
        """A flag per event index for the ids ``sql`` returns."""
        flags = bytearray(self.plan.events)
        with self._rows(sql) as rows:
            for (event_id,) in rows:
                flags[self.plan.index_of(event_id)] = 1
        return flags

    def judge(self, sender: Sender, seconds: float, settled: bool) -> dict[str, Any]:
        stats = self.stats()
        processed = self._ids("SELECT id FROM ichido_events WHERE status = 'processed'")
        with_effect = self._ids("SELECT DISTINCT event_id FROM effects")
        with self._rows("SELECT count(*), coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n"
                        " FROM effects GROUP BY event_id HAVING count(*) > 1) AS d") as rows:
            (doubles, extra_rows), = rows
        answered = sender.answered
        lost = [i for i in range(self.plan.events) if answered[i] and not processed[i]]
        missing = [i for i in range(self.plan.events) if processed[i] and not with_effect[i]]
        unanswered = self.plan.events - sum(answered)
        counts = sender.counts
        problems = [f"lost {self.plan.event_id(i)}" for i in lost[:20]]
        problems += [f"no effect for {self.plan.event_id(i)}" for i in missing[:20]]
        problems += sender.refusals
        return {
            "events": self.plan.events,
            "deliveries": counts["attempts"],
            "first_deliveries": counts["units"] + counts["concurrent_copies"],
            "duplicate_copies_sent": counts["concurrent_copies"] + counts["late_copies"],
            "concurrent_copies": counts["concurrent_copies"],
            "late_copies": counts["late_copies"],
            "retried_deliveries": counts["retries"],
            "no_answer": counts["no_answer"],
            "answers_503": counts["status_503"],
            "answered_accepted": counts["answered_accepted"],
            "answered_cache": counts["answered_cache"],
            "answered_durable": counts["answered_durable"],
            "received": stats["received"], "unique": stats["unique"],
            "duplicates_cache": stats["duplicates_cache"],
            "duplicates_durable": stats["duplicates_durable"],
            "processed": stats["processed"], "dead": stats["dead"],
            "lost": len(lost), "double": int(doubles), "double_rows": int(extra_rows),
            "missing_effects": len(missing),
            "unanswered": unanswered, "refused": counts["refused"],
            "gave_up": counts["gave_up"], "settled": settled,
            "seconds": round(seconds, 1),
            "events_per_second": round(self.plan.events / seconds, 1) if seconds else None,
            "problems": problems[:60],
        }
