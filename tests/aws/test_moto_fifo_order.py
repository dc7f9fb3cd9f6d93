"""The local moto's FIFO queues keep a group's order when its messages come back, as SQS does
(``ichido.aws.moto_fixes``). moto kept a message that was visible again among the "in flight"
ones until its receive loop reached it, and skipped the group's earlier messages for it: the
later messages were received first. The FIFO poison test saw its group's later events applied
before the poison's last attempt, whenever a failed message's ``VisibilityTimeout=0`` was read
back in the same clock tick as it was set."""

from __future__ import annotations

import boto3

from tests.aws.conftest import make_queues


def send_group(sqs, url: str, group: str, bodies: list[str]) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group,
                         MessageDeduplicationId=body)


def receive(sqs, url: str, visibility_timeout: int = 30) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                               VisibilityTimeout=visibility_timeout).get("Messages", [])


def bodies(messages: list[dict]) -> list[str]:
    return [message["Body"] for message in messages]


def test_a_group_visible_again_comes_back_in_order(aws: str) -> None:
    """Received with ``VisibilityTimeout=0``, a group's messages are visible again at once (as
    a failed message is once the poller sets it to 0): the next receive starts at its head."""
    sqs = boto3.client("sqs")
    url, _ = make_queues(fifo=True)
    send_group(sqs, url, "A", ["A1", "A2", "A3"])
    assert bodies(receive(sqs, url, visibility_timeout=0)) == ["A1", "A2", "A3"]
    assert bodies(receive(sqs, url)) == ["A1", "A2", "A3"]


def test_a_group_with_a_message_in_flight_gives_nothing_while_others_flow(aws: str) -> None:
    """Its later messages visible again, the group still waits for its head in flight; the
    other groups go on. Once the head is visible again, the group comes back from it."""
    sqs = boto3.client("sqs")
    url, _ = make_queues(fifo=True)
    send_group(sqs, url, "A", ["A1", "A2", "A3"])
    received = receive(sqs, url)
    assert bodies(received) == ["A1", "A2", "A3"]
    send_group(sqs, url, "B", ["B1"])
    sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
        for i, m in enumerate(received[1:])])
    assert bodies(receive(sqs, url)) == ["B1"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"],
                                  VisibilityTimeout=0)
    assert bodies(receive(sqs, url)) == ["A1", "A2", "A3"]
