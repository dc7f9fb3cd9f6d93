"""The AWS torture: events through the SQS + DynamoDB layout, ``ichido aws local`` processes
killed all along, a poison event in one FIFO message group, then judged.

    python -m bench aws-torture --events 100000 [--hosts 3] [--json] [--seed N] ...

One moto server of the run's own (never killed: it is AWS) holds the queue, its DLQ, ichido's
table and the app's effects table. Each host is an ``ichido aws local --aws-endpoint`` process:
a Function URL receiver and an event-source runner invoking the worker, as one machine's Lambda
environments would; ``kill -9`` of a host loses whatever it was receiving or applying. The
sender (pipeline_sender.py) is Stripe: 30% duplicates, a share of them concurrent at two hosts.
The queue is FIFO (grouped by Stripe object); one event's handler always fails, so it must be
dead-lettered while every other event, its own group's later ones included, is applied once.
The sender waits while the queue holds more than ``--max-backlog`` messages: moto's SQS, even
sped up (``ichido.aws.moto_speedups``), still scans its queue on each receive and delete.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.torture import harness
from bench.torture.chaos import Chaos
from bench.torture.pipeline_plan import Plan
from bench.torture.pipeline_sender import Sender
from bench.torture.services import ROOT, Service, log

APP = "bench.apps:dynamodb_app"
TABLE = "ichido-torture"
EFFECTS = "ichido-torture-effects"
PROBLEMS = ("lost", "double", "missing_effects", "dead", "refused", "gave_up", "poison_applied")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "torture", "AWS_SECRET_ACCESS_KEY": "torture",
           "AWS_DEFAULT_REGION": "us-east-1"}


class AwsFleet:
    """moto (never killed) and the hosts that are (each both receiver and worker)."""

    def __init__(self, logs: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
        from ichido.testing import free_port

        self.moto_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.moto_port}"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("ICHIDO_", "STRIPE_", "AWS_"))}
        self.env = {**base, **AWS_ENV, **env, "AWS_ENDPOINT_URL": self.endpoint,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                base.get("PYTHONPATH")])),
                    "ICHIDO_DATABASE_URL": f"dynamodb://{TABLE}", "EFFECTS_TABLE": EFFECTS}
        self.moto_log = open(logs / "moto.log", "ab")
        self.moto: subprocess.Popen[bytes] | None = None
        self.hosts: list[Service] = []
        self.sqs: Any = None
        self.queue_url = ""
        self.ports: list[int] = []
        for n in range(args.hosts):
            port = free_port()
            self.hosts.append(Service(
                ["aws", "local", "--aws-endpoint", self.endpoint, "--port", str(port),
                 "--app", APP, "--fifo", "--max-receive-count", str(args.max_receive_count),
                 "--retry-after", "1"], env=self.env, cwd=ROOT, new_session=True,
                ready_text="webhook URL:", name=f"host-{n}", log_path=logs / f"host-{n}.log"))
            self.ports.append(port)
        # What chaos.py picks its victims from: every host is both.
        self.receivers = self.workers = self.services = self.hosts

    def start_servers(self) -> None:
        """moto, and the effects table (ichido's own table and queues: the first host)."""
        self.moto = subprocess.Popen(
            [sys.executable, "-c", "import sys, threading; from ichido.aws.local import "
             "start_moto; start_moto(int(sys.argv[1])); threading.Event().wait()",
             str(self.moto_port)], env=self.env, stdout=self.moto_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        client = self.boto3("dynamodb")
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_table(
                    TableName=EFFECTS, BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                               {"AttributeName": "sk", "KeyType": "RANGE"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                          {"AttributeName": "sk", "AttributeType": "S"}])
                return
            except Exception:  # noqa: BLE001 - moto still starting
                if time.monotonic() > deadline or self.moto.poll() is not None:
                    raise
                time.sleep(0.2)

    def start_services(self) -> None:
        self.hosts[0].start_and_wait()  # creates the queues and ichido's table
        for host in self.hosts[1:]:
            host.start_and_wait()

    def boto3(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="torture", aws_secret_access_key="torture")

    def queue_backlog(self) -> int:
        """Messages on the queue, visible or in flight (one client for every count: making
        a boto3 client costs more CPU than the count)."""
        if self.sqs is None:
            sqs = self.boto3("sqs")
            self.queue_url = sqs.get_queue_url(QueueName="ichido-events.fifo")["QueueUrl"]
            self.sqs = sqs
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in attributes["Attributes"].values())

    def dead_letters(self) -> int:
        sqs = self.boto3("sqs")
        url = sqs.get_queue_url(QueueName="ichido-dead.fifo")["QueueUrl"]
        return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])

    def scan(self, table: str, attributes: str) -> Any:
        paginator = self.boto3("dynamodb").get_paginator("scan")
        names = {"ExpressionAttributeNames": {"#s": "status"}} if "#s" in attributes else {}
        for page in paginator.paginate(TableName=table, ProjectionExpression=attributes,
                                       **names):
            yield from page["Items"]

    def close(self) -> None:
        for host in self.hosts:
            host.stop(30)
        if self.moto is not None:
            self.moto.kill()
            self.moto.wait(30)
        self.moto_log.close()


class AwsTorture:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="ichido-aws-torture-"))
        (self.tmp / "logs").mkdir()
        self.plan = Plan(args.events, duplicate_rate=args.duplicate_rate,
                         concurrent_share=args.concurrent_share, seed=args.seed,
                         run=uuid.uuid4().hex[:8])
        # A poison early in a group of three (one PaymentIntent's events): its later group-mates
        # must wait behind it, then apply once it is dead-lettered.
        self.poison = random.Random(args.seed).randrange(args.events // 3) * 3
        secret = f"whsec_torture_{uuid.uuid4().hex}"
        env = {**harness.process_env(args, secret),
               "BENCH_POISON": self.plan.event_id(self.poison)}
        self.fleet = AwsFleet(self.tmp / "logs", args, env)
        self.chaos = Chaos(self.fleet, harness.faults(args), random.Random(args.seed),
                           total=int(args.events * (1 + self.plan.late_rate)))
        self.sender = Sender(self.plan, self.fleet.ports, secret, self.chaos, lanes=args.lanes,
                             pace=self.pace if args.max_backlog else None)
        self.chaos.progress = self.sender.progress
        self.running = threading.Event()
        self.backlog = self.backlog_peak = 0  # messages on the queue, as last counted

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.fleet.start_servers()
        self.fleet.start_services()
        log(f"{self.plan.events:,} events, {len(self.fleet.hosts)} hosts (receiver + worker "
            f"each), FIFO, poison {self.plan.event_id(self.poison)}, seed {self.args.seed}")
        self.running.set()
        chaos = threading.Thread(target=self.chaos.run, args=(self.running,), daemon=True)
        chaos.start()
        threading.Thread(target=self.count_backlog, daemon=True).start()
        try:
            asyncio.run(self.sender.run())
        finally:
            self.running.clear()
        chaos.join(300)
        self.fleet.start_services()
        log(f"every event sent ({self.sender.progress()}); letting the workers finish")
        settled = self.settle(self.args.settle_timeout)
        result = self.judge(time.monotonic() - started, settled)
        self.chaos.add_figures(result, error_counts_as="refused")
        return result

    def count_backlog(self) -> None:
        """Twice a second, while the sender runs: what ``pace`` holds the lanes back by."""
        while self.running.is_set():
            try:
                self.backlog = self.fleet.queue_backlog()
            except Exception as exc:  # noqa: BLE001 - the next count will do
                log(f"could not count the queue: {exc!r}")
            self.backlog_peak = max(self.backlog_peak, self.backlog)
            time.sleep(0.5)

    async def pace(self) -> None:
        """Stripe, held back while more than ``--max-backlog`` messages wait on the queue: moto's
        SQS scans every message of the queue on each receive and delete, so a backlog in the
        tens of thousands would slow it to a few events per second (SQS on AWS does not mind)."""
        while self.backlog > self.args.max_backlog and self.running.is_set():
            await asyncio.sleep(0.1)

    def settle(self, timeout: float) -> bool:
        """Until the queue is empty (visible and in flight), quiet for 3 s."""
        deadline, quiet_since = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            backlog = self.fleet.queue_backlog()
            now = time.monotonic()
            if backlog:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > 3:
                return True
            time.sleep(1)
        return False

    def stats(self) -> dict[str, int]:
        """``ichido stats --json``, as an operator reads it."""
        done = subprocess.run([sys.executable, "-m", "ichido", "stats", "--json"], cwd=ROOT,
                              env=self.fleet.env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"ichido stats failed: {done.stdout}{done.stderr}")
        return json.loads(done.stdout)

    def judge(self, seconds: float, settled: bool) -> dict[str, Any]:
        plan, poison = self.plan, self.plan.event_id(self.poison)
        statuses: dict[int, str] = {}
        for item in self.fleet.scan(TABLE, "pk, sk, #s"):
            if item["sk"]["S"] == "event" and item["pk"]["S"].startswith("evt_"):
                statuses[plan.index_of(item["pk"]["S"])] = item["status"]["S"]
        effects: Counter = Counter()
        for item in self.fleet.scan(EFFECTS, "pk"):
            effects[plan.index_of(item["pk"]["S"])] += 1
        answered = self.sender.answered
        lost = [i for i in range(plan.events)
                if answered[i] and i != self.poison and statuses.get(i) != "processed"]
        missing = [i for i, s in statuses.items() if s == "processed" and not effects[i]]
        doubles = [i for i, n in effects.items() if n > 1]
        dead = [i for i, s in statuses.items() if s == "dead" and i != self.poison]
        stats = self.stats()
        counts = self.sender.counts
        problems = [f"lost {plan.event_id(i)} ({statuses.get(i)})" for i in lost[:20]]
        problems += [f"applied {effects[i]} times: {plan.event_id(i)}" for i in doubles[:20]]
        problems += [f"no effect for {plan.event_id(i)}" for i in missing[:20]]
        problems += [f"dead: {plan.event_id(i)}" for i in dead[:20]]
        problems += self.sender.refusals
        # On SQS the DLQ is where a dead letter lives. The worker marks the poison dead on its
        # last receive, unless that receive's host was killed mid-attempt: then SQS moves it
        # on the next receive without the worker seeing it, and its item still says retrying.
        dead_letters = self.fleet.dead_letters()
        if statuses.get(self.poison) not in ("dead", "retrying") or dead_letters != 1:
            problems.append(f"the poison {poison} is {statuses.get(self.poison)} with "
                            f"{dead_letters} message(s) in the DLQ, not dead-lettered alone")
        return {
            "events": plan.events, "hosts": len(self.fleet.hosts), "seed": self.args.seed,
            "deliveries": counts["attempts"],
            "duplicate_copies_sent": counts["concurrent_copies"] + counts["late_copies"],
            "concurrent_copies": counts["concurrent_copies"], "late_copies": counts["late_copies"],
            "retried_deliveries": counts["retries"], "refused": counts["refused"],
            "gave_up": counts["gave_up"], "unanswered": plan.events - sum(answered),
            "received": stats["received"], "unique": stats["unique"],
            "duplicates_cache": stats["duplicates_cache"],
            "duplicates_durable": stats["duplicates_durable"], "processed": stats["processed"],
            "poison": poison, "poison_status": statuses.get(self.poison),
            "poison_applied": effects[self.poison], "dead_letters": dead_letters,
            "lost": len(lost), "double": len(doubles), "missing_effects": len(missing),
            "dead": len(dead), "settled": settled, "backlog_peak": self.backlog_peak,
            "seconds": round(seconds, 1),
            "events_per_second": round(plan.events / seconds, 1) if seconds else None,
            "problems": problems[:60],
        }

    def close(self) -> None:
        self.running.clear()
        with self.chaos.held():
            self.fleet.close()
            if not self.args.keep:
                shutil.rmtree(self.tmp, ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench aws-torture", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="unique events")
    parser.add_argument("--hosts", type=int, default=3,
                        help="ichido aws local processes (receiver and worker each)")
    parser.add_argument("--lanes", type=int, default=24, help="deliveries under way at once")
    parser.add_argument("--duplicate-rate", type=float, default=0.3)
    parser.add_argument("--concurrent-share", type=float, default=0.35)
    parser.add_argument("--max-receive-count", type=int, default=3,
                        help="receives before SQS moves a message to the DLQ")
    parser.add_argument("--max-backlog", type=int, default=300,
                        help="the sender waits while the queue holds more messages than this "
                             "(moto's SQS slows down as its queue grows); 0: never waits")
    harness.add_run_flags(parser, kill_every=20.0, settle_timeout=1800.0,
                          receivers_help="(unused: see --hosts)")
    args = harness.parse_run_flags(parser, argv, "events")
    if args.events < 3 or args.hosts < 2:
        parser.error("--events must be at least 3 and --hosts at least 2")
    args.no_redis_flush = args.no_pg_restart = True  # no Redis or PostgreSQL here
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    torture = AwsTorture(args)
    result = harness.run_to_the_end(torture.run, torture.close)
    if result is None:
        return 130
    ok = (result["settled"] and not any(result[k] for k in PROBLEMS)
          and not result["problems"])
    kills = sum(result["kills"].values())
    print(f"ichido aws torture (seed {result['seed']}): {result['events']:,} events, "
          f"{result['deliveries']:,} deliveries ({result['duplicate_copies_sent']:,} duplicate "
          f"copies, {result['concurrent_copies']:,} of them concurrent) to {result['hosts']} "
          f"hosts on SQS FIFO + DynamoDB, in {result['seconds']} s "
          f"({result['events_per_second']} events/s)")
    print(f"  faults: kill -9 of a host {kills} times; the poison {result['poison']}: "
          f"{result['poison_status']}, applied {result['poison_applied']} times, "
          f"{result['dead_letters']} message(s) in the DLQ; "
          f"{result['retried_deliveries']:,} deliveries retried")
    print(f"  duplicates caught: {result['duplicates_cache']:,} by the seen tier, "
          f"{result['duplicates_durable']:,} by DynamoDB; the queue held at most "
          f"{result['backlog_peak']:,} messages")
    harness.verdict(result, problems=PROBLEMS, ok=ok, as_json=args.json,
                    ok_line="nothing lost, nothing applied twice, the poison alone dead")
    return 0 if ok else 1
