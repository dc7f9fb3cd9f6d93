"""The ``ichido`` command, run as a user runs it (``python -m ichido …`` in a subprocess), over a
store prepared in-process with the library."""

from __future__ import annotations

import orjson
import pytest

from ichido import App, Event
from ichido.config import Settings
from ichido.event import parse_delivery
from tests.support import (
    cli_json,
    event_id_of,
    in_process_app,
    json_of,
    make_event,
    record_effect,
    run_cli,
    run_cli_many,
    settle_intake,
    wait_until,
)

DAY = 86_400.0
BROKEN_APP = "tests.apps.broken_schema:app"  # one schema step with invalid SQL


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The CLI never opens the seen tier, so the PostgreSQL + Redis run would repeat the
    PostgreSQL one exactly; skip it to keep the suite quick (SQLite and PostgreSQL still run)."""
    if settings.redis_url:
        pytest.skip("the CLI never uses the seen tier: the postgres run covers this store")
    return settings


def accept(app: App, *bodies: bytes, cache_hits: int = 0) -> list[str]:
    app.inbox.accept([parse_delivery(body) for body in bodies], cache_hits=cache_hits)
    return [event_id_of(body) for body in bodies]


def shift_received_at(app: App, seconds: float, *event_ids: str) -> None:
    """Age (or order) events by moving ``received_at``; plain SQL that every backend takes
    (once SQLite's intake is settled into the events table, as any claim would)."""
    settle_intake(app)
    with app.database.transaction() as tx:
        for event_id in event_ids:
            tx.execute("UPDATE ichido_events SET received_at = received_at + ? WHERE id = ?",
                       (seconds, event_id))


def failing(event: Event, tx) -> None:
    raise RuntimeError(f"downstream refused {event.id}")


def mixed_store(settings: Settings) -> tuple[App, dict[str, str]]:
    """One event in each state: processed, ignored, retrying (far in the future) and dead."""
    dying = in_process_app(settings, max_attempts=1)
    dying.on("test.always_fails")(failing)
    [dead] = accept(dying, make_event("test.always_fails"))
    dying.worker().drain()

    app = in_process_app(settings, max_attempts=5, retry_base_seconds=5000.0,
                         retry_cap_seconds=5000.0)
    app.on("charge.succeeded")(record_effect)
    app.on("invoice.paid")(failing)
    app.on("test.always_fails")(failing)
    processed, ignored, retrying = accept(app, make_event("charge.succeeded"),
                                          make_event("customer.created"),
                                          make_event("invoice.paid"))
    app.worker().drain()
    ids = {"processed": processed, "ignored": ignored, "retrying": retrying, "dead": dead}
    assert {state: app.inbox.get(i).status for state, i in ids.items()} == {
        state: state for state in ids}
    return app, ids


def test_events_list_json_shows_stored_events_newest_first(settings: Settings) -> None:
    app, ids = mixed_store(settings)
    [ids["newer_charge"]] = accept(app, make_event("charge.succeeded"))
    order = [ids["dead"], ids["processed"], ids["ignored"], ids["newer_charge"], ids["retrying"]]
    for offset, event_id in enumerate(order):  # distinct receipt times, oldest first
        shift_received_at(app, offset - 100.0, event_id)

    everything, ignored, filtered = (json_of(done) for done in run_cli_many(
        ["events", "list", "--json"],
        ["events", "list", "--status", "ignored", "--json"],
        ["events", "list", "--type", "charge.succeeded", "--limit", "1", "--json"],
        database_url=settings.database_url))

    assert [row["id"] for row in everything] == list(reversed(order))
    by_id = {row["id"]: row for row in everything}
    assert by_id[ids["retrying"]]["status"] == "retrying"
    assert by_id[ids["retrying"]]["type"] == "invoice.paid"
    assert by_id[ids["retrying"]]["attempts"] == 1
    assert "downstream refused" in by_id[ids["retrying"]]["last_error"][0]
    assert by_id[ids["processed"]]["last_error"] is None
    assert [row["id"] for row in ignored] == [ids["ignored"]]
    assert [row["id"] for row in filtered] == [ids["newer_charge"]]


def test_events_show_json_has_payload_attempts_and_failures(settings: Settings) -> None:
    app = in_process_app(settings)

    @app.on("invoice.paid")
    def flaky(event: Event, tx) -> None:
        if event.attempt <= 2:
            raise RuntimeError(f"planned failure on attempt {event.attempt}")

    body = make_event("invoice.paid", object_id="in_show_1")
    [event_id] = accept(app, body)
    worker = app.worker()
    wait_until(lambda: worker.run_once() == 0 and app.inbox.get(event_id).status == "processed",
               interval=0.005, message="the event processed")

    shown, unknown = run_cli_many(["events", "show", event_id, "--json"],
                                  ["events", "show", "evt_does_not_exist"],
                                  database_url=settings.database_url)
    shown = json_of(shown)
    assert shown["id"] == event_id and shown["status"] == "processed"
    assert shown["type"] == "invoice.paid" and shown["object_id"] == "in_show_1"
    assert shown["attempts"] == 3
    assert shown["payload"] == orjson.loads(body)
    assert [f["attempt"] for f in shown["failures"]] == [1, 2]
    assert "planned failure on attempt 1" in shown["failures"][0]["error"]
    assert shown["finished_at"] is not None
    assert unknown.returncode != 0 and "evt_does_not_exist" in unknown.stderr


def test_dlq_list_shows_dead_events_and_retry_requeues_one(settings: Settings) -> None:
    app, ids = mixed_store(settings)
    url = settings.database_url
    dead, neither, not_dead = run_cli_many(["dlq", "list", "--json"], ["dlq", "retry"],
                                           ["dlq", "retry", ids["processed"]], database_url=url)
    assert [row["id"] for row in json_of(dead)] == [ids["dead"]]
    assert "downstream refused" in json_of(dead)[0]["last_error"][0]
    assert neither.returncode != 0
    assert not_dead.returncode != 0 and "requeued 0" in not_dead.stdout

    done = run_cli("dlq", "retry", ids["dead"], database_url=url)
    assert done.returncode == 0 and "requeued 1" in done.stdout
    record = app.inbox.get(ids["dead"])
    assert (record.status, record.attempts) == ("retrying", 1)
    assert [f[0] for f in record.failures] == [1]
    assert app.inbox.get(ids["processed"]).status == "processed"
    assert app.inbox.list(status="dead") == []


def test_dlq_retry_keeps_the_attempt_history(settings: Settings) -> None:
    """A new round of attempts (its own budget) that does not forget the old ones: after a
    retry that fails again, ``events show`` lists both failures and counts both attempts."""
    app = in_process_app(settings, max_attempts=1)
    app.on("test.always_fails")(failing)
    [dead] = accept(app, make_event("test.always_fails"))
    app.worker().drain()
    url = settings.database_url
    assert run_cli("dlq", "retry", dead, database_url=url).returncode == 0
    app.worker().drain()  # the handler runs again (a fresh budget) and fails again

    shown = cli_json("events", "show", dead, database_url=url)
    assert (shown["status"], shown["attempts"]) == ("dead", 2)
    assert [f["attempt"] for f in shown["failures"]] == [1, 2]
    assert all(f"downstream refused {dead}" in f["error"] for f in shown["failures"])


def test_stats_json_has_integer_counts(settings: Settings) -> None:
    app, ids = mixed_store(settings)
    duplicate = app.inbox.get(ids["processed"]).body
    accept(app, parse_delivery(duplicate).body, cache_hits=2)
    stats = cli_json("stats", database_url=settings.database_url)
    expected = {"received": 7, "unique": 4, "duplicates_cache": 2, "duplicates_durable": 1,
                "processed": 2, "ignored": 1, "retrying": 1, "dead": 1}
    assert {key: stats[key] for key in expected} == expected
    assert all(type(stats[key]) is int for key in expected)
    assert stats == app.inbox.stats()


def test_prune_removes_old_finished_events_but_keeps_dead_ones_and_counts(
        settings: Settings) -> None:
    app, ids = mixed_store(settings)
    [recent] = accept(app, make_event("charge.succeeded"))
    app.worker().drain()
    shift_received_at(app, -31 * DAY, *ids.values())
    before = app.inbox.stats()
    url = settings.database_url

    done = run_cli("prune", "--older-than", "30d", database_url=url)
    assert done.returncode == 0, done.stderr
    assert "pruned 2" in done.stdout

    assert app.inbox.get(ids["processed"]).body == b""  # a tombstone: the id stays
    assert app.inbox.get(ids["ignored"]).body == b""
    shown = cli_json("events", "show", ids["processed"], database_url=url)
    assert (shown["status"], shown["payload"]) == ("processed", None)
    assert app.inbox.get(ids["dead"]).status == "dead"
    assert app.inbox.get(ids["retrying"]).status == "retrying"
    assert app.inbox.get(recent).status == "processed"
    after = app.inbox.stats()
    assert before["processed"] == after["processed"] == 3
    assert before["ignored"] == after["ignored"] == 1
    for key in ("received", "unique", "dead", "retrying"):
        assert after[key] == before[key]


def test_an_unusable_database_url_is_a_clear_error() -> None:
    for done in run_cli_many(["stats", "--json", "--database-url", "mysql://localhost/ichido"],
                             ["stats", "--json", "--database-url", "sqlite:///:memory:"]):
        assert done.returncode == 2, done.stderr
        assert "error" in done.stderr and "Traceback" not in done.stderr


def test_prune_refuses_a_window_shorter_than_stripes_retry_period(database_url: str) -> None:
    """Tombstones keep dedupe whatever the window; the refusal keeps the bodies of Stripe's
    automatic retry window, which ``events show``, replays and the reconciler work from."""
    refused = run_cli("prune", "--older-than", "24h", database_url=database_url)
    assert refused.returncode != 0
    assert "window_too_short" in refused.stderr + refused.stdout


def test_migrate_with_a_broken_app_step_prints_one_line_naming_the_step(
        settings: Settings) -> None:
    done = run_cli("migrate", "--app", BROKEN_APP, database_url=settings.database_url)
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one clear line, not a traceback
    assert "[migration_failed] migration step test_broken v1 failed on " in lines[0], lines[0]
    assert "schema is up to date" not in done.stdout
