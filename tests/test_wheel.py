"""The light core, as a library user gets it: the wheel built from this repository, installed
with no extras in a fresh virtual environment outside it, serves the README's handler example
on SQLite and applies a signed event once; and it brings no PostgreSQL driver, Redis client,
Jinja2 or AWS SDK, nor the example shop or the local Stripe: those are the sibling wheels built
from packages/, which add their subpackages (and their data files) to the installed ichido.

Slow (a build, a venv and an install from the package index): it runs in an xdist group of its
own so that it never holds up the rest of the suite's processes one after another."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib
import zipfile

import httpx
import orjson
import pytest

from tests.support import SECRET, ROOT, free_port, make_event, signed_headers, wait_until

pytestmark = [pytest.mark.xdist_group("wheel"), pytest.mark.timeout(300)]

# The README's "Use it" example, with the table its schema note creates.
HANDLER_EXAMPLE = '''
import ichido

app = ichido.App(schema=[("myshop", 1, [
    "CREATE TABLE paid_orders (payment_intent TEXT, amount INTEGER)"])])

@app.on("payment_intent.succeeded")
def paid(event: ichido.Event, tx) -> None:
    tx.execute("INSERT INTO paid_orders (payment_intent, amount) VALUES (?, ?)",
               (event.object["id"], event.object["amount"]))
'''

# Distribution names that only an extra may bring (compared lower-case, `-` for `_`).
NOT_IN_CORE = {"psycopg", "psycopg-binary", "psycopg-pool", "psycopg2", "psycopg2-binary",
               "redis", "hiredis", "jinja2", "itsdangerous", "boto3", "botocore", "mangum",
               "moto", "aioboto3", "s3transfer"}


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True,
                          timeout=240, **kwargs)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


SIBLINGS = ("ichido-emulator", "ichido-shop")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """The core's wheel and its siblings', by distribution name, built as the README says."""
    work = tmp_path_factory.mktemp("wheels")
    source = work / "source"  # a copy: building in the repository would leave build/ behind
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    shutil.copytree(ROOT / "packages", source / "packages", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", work / "wheels",
        source, *(source / "packages" / name for name in SIBLINGS))
    built = {path.name.split("-")[0].replace("_", "-"): path
             for path in (work / "wheels").glob("*.whl")}
    assert set(built) == {"ichido", *SIBLINGS}, built
    return built


def fresh_venv(path: Path, *wheel_files: Path) -> Path:
    run(sys.executable, "-m", "venv", "--without-pip", path)
    run(sys.executable, "-m", "pip", "--python", path / "bin" / "python", "install", "--quiet",
        *wheel_files)
    return path


@pytest.fixture(scope="module")
def light_venv(wheels: dict[str, Path], tmp_path_factory) -> Path:
    """A venv outside the repository holding the core wheel and only its dependencies."""
    return fresh_venv(tmp_path_factory.mktemp("light") / "venv", wheels["ichido"])


def clean_env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ICHIDO_", "STRIPE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(settings)
    return env


def files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}


def test_the_core_wheel_leaves_out_the_shop_and_the_emulator(wheels: dict[str, Path]) -> None:
    core = files(wheels["ichido"])
    assert "ichido/__init__.py" in core and "ichido/dashboard/templates/base.html" in core
    assert not {name for name in core if name.startswith(("ichido/shop/", "ichido/emulator/"))}


def test_the_sibling_wheels_carry_their_subpackage_and_its_data_files(
        wheels: dict[str, Path]) -> None:
    shop, emulator = files(wheels["ichido-shop"]), files(wheels["ichido-emulator"])
    assert {"ichido/shop/__init__.py", "ichido/shop/cli.py", "ichido/shop/pricing.toml",
            "ichido/shop/catalog.example.toml"} <= shop
    assert {"ichido/emulator/__init__.py", "ichido/emulator/pricing.toml",
            "ichido/emulator/versions/__init__.py",
            "ichido/emulator/versions/stripe_api.json"} <= emulator
    # Every file of the sources, so a subpackage or data file left out of the sibling's
    # pyproject.toml shows here; and only those: never the core's ichido/__init__.py, which
    # uninstalling a sibling would then take away.
    for name, built in (("shop", shop), ("emulator", emulator)):
        sources = {path.relative_to(ROOT / "src").as_posix()
                   for path in (ROOT / "src" / "ichido" / name).rglob("*")
                   if path.is_file() and "__pycache__" not in path.parts}
        assert built == sources, (built ^ sources)
    # Built from one commit, they carry the core's version.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name in SIBLINGS:
        assert f"-{version}-" in wheels[name].name, wheels[name].name


def test_the_core_wheel_says_how_to_install_the_shop(light_venv: Path, tmp_path: Path) -> None:
    done = subprocess.run([light_venv / "bin" / "ichido", "fees", "quote", "--amount", "300"],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error [missing_extra] ichido fees runs the example shop's fee guard but ichido.shop is "
        "not installed: pip install ichido-shop (from a checkout of ichido: pip install "
        "./packages/ichido-emulator ./packages/ichido-shop)"]


def test_the_sibling_wheels_beside_the_core_run_the_shop_and_the_emulator(
        wheels: dict[str, Path], tmp_path: Path) -> None:
    venv = fresh_venv(tmp_path / "venv", *wheels.values())
    ichido = venv / "bin" / "ichido"
    env = clean_env(ICHIDO_DATABASE_URL="sqlite:///shop.db")
    quote = run(ichido, "fees", "quote", "--amount", "300", "--method", "konbini", "--json",
                cwd=tmp_path, env=env).stdout
    quoted = orjson.loads(quote)  # the rates read from the shop's pricing.toml
    assert quoted["method"] == "konbini" and quoted["fee"] > 0 and quoted["currency"] == "jpy"
    run(ichido, "emulator", "--help", cwd=tmp_path, env=env)
    versions = run(venv / "bin" / "python", "-c",
                   "from ichido.emulator import versions; "
                   "print(versions.DEFAULT in versions.supported())",
                   cwd=tmp_path, env=env).stdout.strip()
    assert versions == "True"  # the emulator's API versions, read from its JSON data file


def test_the_core_wheel_installs_no_optional_library(light_venv: Path) -> None:
    listed = run(sys.executable, "-m", "pip", "--python", light_venv / "bin" / "python", "list",
                 "--format=json").stdout
    names = {item["name"].lower().replace("_", "-") for item in orjson.loads(listed)}
    assert "ichido" in names and "stripe" in names
    assert not names & NOT_IN_CORE, names & NOT_IN_CORE
    typed = run(light_venv / "bin" / "python", "-c",
                "import importlib.resources as r; print(r.files('ichido').joinpath('py.typed')"
                ".is_file())").stdout.strip()
    assert typed == "True"  # PEP 561: type checkers read ichido's own annotations


def test_the_core_wheel_names_the_extra_a_setting_needs(light_venv: Path, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ICHIDO_", "STRIPE_", "PYTHON", "VIRTUAL_ENV"))}
    env["ICHIDO_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none"
    done = subprocess.run([light_venv / "bin" / "ichido", "migrate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error [missing_extra] ICHIDO_DATABASE_URL is postgresql://… but psycopg is not "
        "installed: pip install 'ichido[postgres]'"]


def test_the_core_wheel_serves_the_readme_example_and_applies_an_event_once(
        light_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "myshop.py").write_text(HANDLER_EXAMPLE)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ICHIDO_", "STRIPE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(STRIPE_WEBHOOK_SECRET=SECRET, ICHIDO_DATABASE_URL="sqlite:///shop.db")
    ichido = light_venv / "bin" / "ichido"
    run(ichido, "--help", cwd=tmp_path, env=env)  # lists aws, dashboard… without loading them
    port = free_port()
    server = subprocess.Popen([ichido, "serve", "--app", "myshop:app", "--port", str(port),
                               "--workers", "1"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert server.poll() is None, server.communicate()[0].decode()
            try:
                return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, message="ichido serve from the wheel")
        body = make_event(obj={"id": "pi_wheel", "object": "payment_intent", "amount": 1200})
        for _ in range(2):  # a delivery and Stripe's redelivery of the same event
            answer = httpx.post(f"{url}/webhooks/stripe", content=body,
                                headers=signed_headers(body), timeout=30)
            assert answer.status_code == 200, answer.text

        def processed() -> bool:
            stats = orjson.loads(run(ichido, "stats", "--json", cwd=tmp_path, env=env).stdout)
            return stats["processed"] == 1 and stats["pending"] == stats["retrying"] == 0

        wait_until(processed, timeout=60, interval=0.5, message="the event processed")
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = run(light_venv / "bin" / "python", "-c",
               "import sqlite3; print(sqlite3.connect('shop.db').execute("
               "'SELECT payment_intent, amount FROM paid_orders').fetchall())",
               cwd=tmp_path, env=env).stdout.strip()
    assert rows == "[('pi_wheel', 1200)]"
