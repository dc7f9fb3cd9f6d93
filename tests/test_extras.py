"""A missing extra is one line naming the extra to install, never an ImportError traceback:
from the CLI and from the library API, with the optional library hidden in a subprocess
(``sys.modules[name] = None`` makes every import of it fail, as if it were not installed).
The example shop and the local Stripe are sibling distributions (packages/), not extras: their
line names the distribution and how to install it from a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# (extra, the library hidden, the environment that asks for it, an ichido command that reaches it)
CASES = [
    ("postgres", "psycopg", {"ICHIDO_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
     ["migrate"], "ICHIDO_DATABASE_URL is postgresql://… but psycopg is not installed"),
    ("postgres", "psycopg_pool", {"ICHIDO_DATABASE_URL": "postgres://postgres@127.0.0.1:1/none"},
     ["stats"], "ICHIDO_DATABASE_URL is postgres://… but psycopg_pool is not installed"),
    ("redis", "redis", {"ICHIDO_REDIS_URL": "redis://127.0.0.1:1/0"},
     ["serve", "--port", "0"], "ICHIDO_REDIS_URL is set but redis is not installed"),
    ("dashboard", "jinja2", {"ICHIDO_DASHBOARD_TOKEN": "t" * 32},
     ["dashboard", "--port", "0"], "ICHIDO_DASHBOARD_TOKEN is set but jinja2 is not installed"),
    ("aws", "boto3", {"ICHIDO_DATABASE_URL": "dynamodb://none"},
     ["migrate"], "ICHIDO_DATABASE_URL is dynamodb://… but boto3 is not installed"),
    ("aws", "boto3", {"ICHIDO_QUEUE_URL": "http://127.0.0.1:1/queue"},
     ["events", "list"], "ICHIDO_QUEUE_URL or ICHIDO_AWS_LAYOUT is set but boto3 is not installed"),
    ("aws-local", "moto", {},
     ["aws", "local"], "ichido aws local starts a moto server but moto is not installed"),
    # The applications, as the core wheel without its siblings leaves them (the README's set-up
    # installs them all): every command of theirs, whatever its arguments, is one line.
    ("shop", "ichido.shop", {}, ["demo"],
     "ichido demo runs the example shop but ichido.shop is not installed"),
    ("shop", "ichido.shop", {}, ["orders", "list", "--json"],
     "ichido orders runs the example shop but ichido.shop is not installed"),
    ("shop", "ichido.shop", {}, ["fees", "quote", "--amount", "300", "--method", "konbini"],
     "ichido fees runs the example shop's fee guard but ichido.shop is not installed"),
    ("emulator", "ichido.emulator", {}, ["emulator", "--port", "0"],
     "ichido emulator runs the local Stripe but ichido.emulator is not installed"),
    ("emulator", "ichido.emulator", {}, ["demo", "--help"],
     "ichido demo runs the local Stripe but ichido.emulator is not installed"),
]


# What the line ends with: the extra, or for an application its sibling distribution.
INSTALL = {
    "shop": "pip install ichido-shop (from a checkout of ichido: "
            "pip install ./packages/ichido-emulator ./packages/ichido-shop)",
    "emulator": "pip install ichido-emulator (from a checkout of ichido: "
                "pip install ./packages/ichido-emulator)",
}


def install(extra: str) -> str:
    return INSTALL.get(extra, f"pip install 'ichido[{extra}]'")


def run_without(library: str, code: str, env: dict[str, str],
                tmp_path) -> subprocess.CompletedProcess:
    hide = f"import sys; sys.modules[{library!r}] = None\n"
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("ICHIDO_", "STRIPE_"))}
    environment.update(env, STRIPE_WEBHOOK_SECRET="whsec_" + "x" * 24,
                       ICHIDO_DATABASE_URL=env.get("ICHIDO_DATABASE_URL",
                                                   f"sqlite:///{tmp_path}/ichido.db"))
    return subprocess.run([sys.executable, "-c", hide + textwrap.dedent(code)], env=environment,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("extra, library, env, command, reason", CASES,
                         ids=[f"{case[0]}-{case[1]}-{case[3][0]}" for case in CASES])
def test_the_cli_names_the_missing_extra_in_one_line(extra, library, env, command, reason,
                                                      tmp_path) -> None:
    done = run_without(library, f"""
        sys.argv = ["ichido", *{command!r}]
        from ichido.cli import main
        main()
    """, env, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error [missing_extra] {reason}: {install(extra)}"], lines


LIBRARY_CASES = [case for case in CASES if case[3][0] in ("migrate", "serve", "dashboard")]


@pytest.mark.parametrize("extra, library, env, command, reason", LIBRARY_CASES,
                         ids=[f"{case[0]}-{case[1]}" for case in LIBRARY_CASES])
def test_the_library_raises_missing_extra_naming_it(extra, library, env, command, reason,
                                                    tmp_path) -> None:
    done = run_without(library, """
        import ichido
        from ichido.dashboard.mount import Dashboard
        from ichido.extras import MissingExtra
        try:
            app = ichido.App()
            app.install(Dashboard())  # as `ichido serve` does; off without a token
            app.start()
        except MissingExtra as exc:
            print(exc.code, exc.message, sep="|")
        else:
            print("no error")
    """, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"missing_extra|{reason}: {install(extra)}"


def test_every_extra_that_require_names_is_declared_in_pyproject() -> None:
    import tomllib
    from pathlib import Path

    from ichido.extras import EXTRAS, SIBLINGS

    root = Path(__file__).parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())
    extras = declared["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)
    assert "psycopg" not in str(declared["project"]["dependencies"])
    # Each application the CLI can name is a distribution built from packages/, providing the
    # subpackage the CLI imports; the message's paths are those projects.
    for name, (module, how) in SIBLINGS.items():
        project = tomllib.loads((root / "packages" / f"ichido-{name}" / "pyproject.toml")
                                .read_text())
        assert project["project"]["name"] == f"ichido-{name}"
        assert project["tool"]["setuptools"]["packages"][0] == module
        assert f"pip install ichido-{name} " in how and f"./packages/ichido-{name}" in how


def test_help_lists_an_application_that_is_not_installed_with_its_extra(tmp_path) -> None:
    done = run_without("ichido.shop", """
        sys.argv = ["ichido", "--help"]
        from ichido.cli import main
        main()
    """, {"COLUMNS": "160"}, tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {line.split()[1]: line for line in done.stdout.splitlines()
              if line.startswith("│ ") and len(line.split()) > 2}
    for command in ("orders", "fees", "demo"):
        assert "Not installed: pip install ichido-shop " in listed[command], listed[command]
    assert "Not installed" not in listed["emulator"] and "Not installed" not in listed["serve"]
