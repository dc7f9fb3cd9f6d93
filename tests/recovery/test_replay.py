"""Replay by filter: paged, resumable, cancellable, recorded, and once."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from ichido.event import parse_delivery
from ichido.inbox import EventFilter
from ichido.queue.base import Status
from ichido.recovery import replay as replays
from ichido.recovery.reconcile import recovery_counts
from tests.support import ROOT, cli_env, effect_counts, in_process_app, make_event, record_effect


def ichido(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ichido", *args], cwd=ROOT,
                          env=cli_env(database_url), capture_output=True, text=True, timeout=120)


def stored(app, bodies: list[bytes]) -> list[str]:
    app.inbox.accept([parse_delivery(b) for b in bodies])
    app.worker().drain()
    return [orjson.loads(b)["id"] for b in bodies]


def test_a_handler_added_later_replays_its_ignored_events_once(settings, database_url) -> None:
    app = in_process_app(settings)
    wanted = stored(app, [make_event("invoice.paid") for _ in range(2100)])  # three pages
    others = stored(app, [make_event("customer.created") for _ in range(5)])
    assert app.inbox.count(EventFilter(statuses=(Status.IGNORED,))) == 2105

    app.on("invoice.paid")(record_effect)  # the operator ships the new handler
    done = ichido(database_url, "replay", "--status", "ignored", "--type", "invoice.paid",
                  "--json", "--actor", "ops@test")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["state"] == "done" and report["requeued"] == 2100
    app.worker().drain()
    assert effect_counts(app.database) == {event_id: 1 for event_id in wanted}
    assert {app.inbox.get(i).status for i in others} == {Status.IGNORED}

    again = orjson.loads(ichido(database_url, "replay", "--status", "ignored", "--type",
                                "invoice.paid", "--json").stdout)
    assert again["matched"] == 0  # they are processed now: nothing to replay twice
    app.worker().drain()
    assert set(effect_counts(app.database).values()) == {1}
    [last, first] = replays.history(app.inbox)[:2]
    assert first.actor == "ops@test" and first.filter["types"] == ["invoice.paid"]
    assert recovery_counts(app.database)["replayed"] == 2100
    app.inbox.close()


def test_processed_events_need_force_and_say_what_it_means(settings, database_url) -> None:
    app = in_process_app(settings)
    app.on("invoice.paid")(record_effect)
    ids = stored(app, [make_event("invoice.paid") for _ in range(3)])
    refused = ichido(database_url, "replay", "--status", "processed")
    assert refused.returncode == 2 and "force_required" in refused.stderr
    assert "outbox" in refused.stderr
    forced = ichido(database_url, "replay", "--status", "processed", "--force", "--json")
    assert orjson.loads(forced.stdout)["requeued"] == 3
    app.worker().drain()
    assert effect_counts(app.database) == {i: 2 for i in ids}  # what --force means, shown
    app.inbox.close()


def test_a_cancelled_job_resumes_after_its_last_page(settings) -> None:
    app = in_process_app(settings)
    ids = stored(app, [make_event("charge.succeeded") for _ in range(35)])  # ignored
    job = replays.Replay.start(app.inbox, EventFilter(statuses=(Status.IGNORED,)),
                               page_size=10, actor="test")
    pages = []

    def after_page(record) -> None:
        pages.append(record.requeued)
        if len(pages) == 2:
            replays.cancel(app.inbox, record.id)  # as `ichido replay --cancel` would

    record = job.run(progress=after_page)
    assert record.state == "cancelled" and record.requeued == 20
    assert app.inbox.count(EventFilter(statuses=(Status.RETRYING,))) == 20

    resumed = replays.Replay.resume(app.inbox, record.id, page_size=10)
    assert resumed.total() == 35
    final = resumed.run()
    assert final.state == "done" and final.requeued == 35 and final.matched == 35
    assert app.inbox.count(EventFilter(statuses=(Status.RETRYING,))) == 35
    assert replays.load(app.inbox, record.id).requeued == 35
    with pytest.raises(replays.ReplayError):
        replays.Replay.resume(app.inbox, record.id)
    assert len(ids) == 35
    app.inbox.close()


def test_dry_run_and_filters(settings) -> None:
    app = in_process_app(settings)
    stored(app, [make_event("charge.succeeded", object_id="ch_1", created=1_000 + n)
                 for n in range(6)] + [make_event("charge.succeeded", object_id="ch_2")])
    where = EventFilter(statuses=(Status.IGNORED,), object_id="ch_1", since=1_002, until=1_005)
    record = replays.Replay.start(app.inbox, where, dry_run=True).run()
    assert record.matched == 3 and record.requeued == 0
    assert app.inbox.count(EventFilter(statuses=(Status.IGNORED,))) == 7
    with pytest.raises(replays.ReplayError):
        replays.Replay.start(app.inbox, EventFilter(statuses=(Status.PENDING,)))
    app.inbox.close()


@pytest.mark.parametrize("dry_run", [True, False])
def test_two_runs_of_one_job_at_once_count_every_event_once(settings, dry_run: bool) -> None:
    """``ichido replay --resume`` typed twice (or a page's job resumed from the CLI while it
    still runs): two runs page one job at once. Each page is counted by the run whose commit
    moved the job past it, the other run goes on from there: ``matched`` is exact."""
    import threading

    from ichido.schema import open_inbox

    app = in_process_app(settings)
    total = 300
    stored(app, [make_event("charge.succeeded") for _ in range(total)])  # ignored
    job = replays.Replay.start(app.inbox, EventFilter(statuses=(Status.IGNORED,)),
                               dry_run=dry_run, page_size=7, actor="test")
    stores = [open_inbox(settings) for _ in range(2)]  # two processes' own connections
    runs = [replays.Replay.resume(store, job.record.id, page_size=7) for store in stores]
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(replay: replays.Replay) -> None:
        try:
            start.wait(30)
            replay.run()
        except BaseException as exc:  # shown by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures and not any(t.is_alive() for t in threads), failures
    final = replays.load(app.inbox, job.record.id)
    assert final.state == "done"
    assert final.matched == total
    assert final.requeued == (0 if dry_run else total)
    assert recovery_counts(app.database)["replayed"] == (0 if dry_run else total)
    assert app.inbox.count(EventFilter(statuses=(Status.RETRYING,))) == (0 if dry_run else total)
    for store in stores:
        store.close()
    app.inbox.close()
