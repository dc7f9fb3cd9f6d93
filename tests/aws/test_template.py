"""deploy/template.yaml: cfn-lint passes (SAM translated by cfn-lint's own translator), and
what the code relies on is really in it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from ichido.queue.streams import FILTER_PATTERNS
from tests.support import ROOT

TEMPLATE = ROOT / "deploy" / "template.yaml"

pytest.importorskip("cfnlint")


def lint(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from cfnlint.runner import main;"
                           " sys.exit(main())", str(path)], capture_output=True, text=True,
                          timeout=300)


def test_cfn_lint_passes_on_the_template() -> None:
    done = lint(TEMPLATE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_would_catch_a_broken_template(tmp_path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("ReportBatchItemFailures",
                                                   "ReportBatchItemFailure"))
    assert lint(broken).returncode != 0


def test_the_mapping_filters_are_the_workers_own() -> None:
    text = TEMPLATE.read_text()
    patterns = [json.loads(p) for p in re.findall(r"- Pattern: '(.+)'", text)]
    assert patterns == FILTER_PATTERNS


def test_no_secret_in_plain_text() -> None:
    text = TEMPLATE.read_text()
    assert "whsec_" not in text.replace("(whsec_...;", "")
    assert "STRIPE_WEBHOOK_SECRET" not in text  # the secret comes from Secrets Manager
    assert "ICHIDO_WEBHOOK_SECRET_ID: !Ref WebhookSecretArn" in text


def test_both_mappings_report_batch_item_failures() -> None:
    text = TEMPLATE.read_text()
    assert text.count("FunctionResponseTypes: [ReportBatchItemFailures]") == 2


def test_large_bodies_have_their_bucket() -> None:
    """Every function knows the bucket; the receiver may put there, the worker read."""
    text = TEMPLATE.read_text()
    assert "ICHIDO_BODY_BUCKET: !Ref BodyBucket" in text
    receiver, worker = text.split("  WorkerFunction:")[0], text.split("  WorkerFunction:")[1]
    assert "Action: s3:PutObject" in receiver.split("  ReceiverFunction:")[1]
    assert "Action: s3:GetObject" in worker.split("  SqsMapping:")[0]
    assert "sqs:GetQueueAttributes" in receiver.split("  ReceiverFunction:")[1]


def test_the_worker_may_move_a_dead_event_and_read_stripes_key() -> None:
    """Thin events on AWS: ``event_expired`` goes to the DLQ from the worker itself, and the
    fetch stage's API key comes from Secrets Manager, granted to the worker alone."""
    text = TEMPLATE.read_text()
    receiver, worker = text.split("  WorkerFunction:")[0], text.split("  WorkerFunction:")[1]
    worker = worker.split("  SqsMapping:")[0]
    assert "Action: sqs:SendMessage\n                Resource: !GetAtt DeadLetterQueue.Arn" in worker
    assert "Resource: !Ref StripeApiKeySecretArn" in worker
    assert "StripeApiKeySecretArn" not in receiver.split("  ReceiverFunction:")[1]
    assert ("ICHIDO_STRIPE_API_KEY_SECRET_ID: !If [HasApiKey, !Ref StripeApiKeySecretArn, "
            "!Ref AWS::NoValue]") in text
