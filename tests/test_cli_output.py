"""The operator's terminal is not the sender's to write on: every stored string the CLI
prints is plain text (no rich markup) with control characters made visible. And the CLI's
start-up failures are one line with a code, not a traceback; secrets stay out of ``ps``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ichido import Event
from ichido.config import Settings
from ichido.event import Delivery

from tests.support import ROOT, SECRET, cli_env, in_process_app, run_cli

# What an older version (or another writer) may have stored: the receiver refuses such ids
# now (tests/test_event.py), the CLI must still print them harmlessly.
ANSI_ID = "evt_\x1b[31mred\x1b[0m\x1b]0;owned\x07"
MARKUP_TYPE = "charge.[/]succeeded[bold red]"
ERROR = "boom [/] [link=http://evil]x[/link] \x1b[2J\u202eevil"


def stored(settings: Settings) -> str:
    app = in_process_app(settings, max_attempts=1)

    @app.on(MARKUP_TYPE)
    def explode(event: Event, tx) -> None:
        raise RuntimeError(ERROR)

    body = json.dumps({"id": ANSI_ID, "object": "event", "type": MARKUP_TYPE, "created": 1,
                       "data": {"object": {"id": "pi_1"}}}).encode()
    app.inbox.accept([Delivery(ANSI_ID, MARKUP_TYPE, 1, "pi_1", body)])
    app.worker().drain()
    assert app.inbox.get(ANSI_ID).status == "dead"
    return settings.database_url


@pytest.mark.parametrize("command", [["events", "list"], ["dlq", "list"],
                                     ["events", "show", ANSI_ID]])
def test_stored_markup_and_escape_sequences_are_printed_as_visible_text(
        tmp_path: Path, command: list[str]) -> None:
    url = stored(Settings(database_url=f"sqlite:///{tmp_path / 'hostile.db'}"))
    done = run_cli(*command, database_url=url, env={"COLUMNS": "400"})
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout and "\u202e" not in done.stdout
    assert "\\x1b[31mred" in done.stdout
    assert "charge.[/]succeeded[bold red]" in done.stdout
    if command[:2] == ["events", "show"]:
        assert "boom [/] [link=http://evil]x[/link] \\x1b[2J\\u202eevil" in done.stdout


def test_events_show_json_escapes_control_characters(tmp_path: Path) -> None:
    url = stored(Settings(database_url=f"sqlite:///{tmp_path / 'hostile.db'}"))
    done = run_cli("events", "show", ANSI_ID, "--json", database_url=url)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert json.loads(done.stdout)["id"] == ANSI_ID


# -- start-up: one line with a code ---------------------------------------------------------------

def one_line_error(done: subprocess.CompletedProcess, code: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error [{code}] "), done.stderr
    assert "Traceback" not in done.stderr and "╭" not in done.stderr, done.stderr
    return lines[-1]


@pytest.mark.parametrize("spec", ["no_such_module:app", "tests.apps.effects:no_such_attr",
                                  "tests.support:SECRET"])
def test_a_bad_app_is_one_line_with_a_code(tmp_path: Path, spec: str) -> None:
    done = run_cli("serve", "--port", "0", "--app", spec,
                   database_url=f"sqlite:///{tmp_path / 'x.db'}",
                   env={"STRIPE_WEBHOOK_SECRET": SECRET})
    one_line_error(done, "bad_app")


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv to drop root")
def test_a_read_only_sqlite_file_is_one_line_with_a_code() -> None:
    """Run as nobody (root writes a read-only file anyway), in a directory nobody may enter."""
    where = Path(tempfile.mkdtemp(prefix="ichido-ro-"))
    try:
        where.chmod(0o755)
        path = where / "ro.db"
        assert run_cli("migrate", database_url=f"sqlite:///{path}").returncode == 0
        path.chmod(0o444)
        user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] \
            if os.geteuid() == 0 else []
        env = {**cli_env(f"sqlite:///{path}"), "STRIPE_WEBHOOK_SECRET": SECRET}
        done = subprocess.run([*user, sys.executable, "-m", "ichido", "serve", "--port", "0"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(where)
    assert "cannot write" in one_line_error(done, "read_only_store")


# -- secrets out of ps ------------------------------------------------------------------------

def test_the_secret_flag_warns_and_a_secret_file_is_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    flag = run_cli("serve", "--port", "0", "--secret", "not-a-whsec", database_url=url)
    assert "warning: --secret shows the signing secret" in flag.stderr
    one_line_error(flag, "config_error")  # and it is still checked

    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{SECRET}\nwhsec_the_next_one_0123456789\n")
    settings = Settings.from_env({"STRIPE_WEBHOOK_SECRET_FILE": str(secret_file)})
    assert settings.webhook_secrets == (SECRET, "whsec_the_next_one_0123456789")
    missing = run_cli("serve", "--port", "0", "--secret-file", str(tmp_path / "absent"),
                      database_url=url)
    assert "secret file" in one_line_error(missing, "config_error")
    assert SECRET not in flag.stderr + missing.stderr


def test_both_a_secret_and_a_secret_file_is_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    with pytest.raises(Exception, match="not both"):
        Settings.from_env({"STRIPE_WEBHOOK_SECRET_FILE": str(secret_file),
                           "STRIPE_WEBHOOK_SECRET": SECRET})


@pytest.mark.parametrize("columns", ["20", "60", "120"])
@pytest.mark.parametrize("command", [["dlq", "list"], ["events", "list"]])
def test_listed_ids_are_never_cut_whatever_the_terminal_width(
        tmp_path: Path, command: list[str], columns: str) -> None:
    """An id is what an operator copies into ``dlq retry``: folded or cut with an ellipsis, it
    names another event or none. The other columns fold; the id stays on one line, whole."""
    app = in_process_app(Settings(database_url=f"sqlite:///{tmp_path / 'ids.db'}"),
                         max_attempts=1)

    @app.on("charge.refunded")
    def explode(event: Event, tx) -> None:
        raise RuntimeError("the bank refused the refund " * 5)

    ids = ["evt_" + "long" * 62 + "/end", "evt_short", "evt_a/b?c#d%e-0123456789abcdef"]
    app.inbox.accept([Delivery(i, "charge.refunded", 1, "ch_1", json.dumps(
        {"id": i, "object": "event", "type": "charge.refunded", "created": 1,
         "data": {"object": {"id": "ch_1"}}}).encode()) for i in ids])
    app.worker().drain()
    done = run_cli(*command, database_url=app.settings.database_url, env={"COLUMNS": columns})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for event_id in ids:
        assert any(event_id in line for line in lines), (event_id, done.stdout)
