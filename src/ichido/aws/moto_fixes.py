"""Where moto's answers differ from AWS's in a way the local layout leans on, moto is put right
here; applied only in the process running the local moto server (``start_moto``), as
``moto_speedups`` is. ichido on AWS never imports this.

FIFO order once a group's messages are visible again (moto 5.2, ``SQSBackend.receive_message``):
moto keeps a received message among the "in flight" ones until a receive loop reaches it and
sees it visible again. Its loop takes the in-flight groups before it starts and skips their
messages, but recounts them when it meets such a message, having skipped that group's earlier
ones: the group's later messages were received first. It happened whenever a group's messages
were all visible again before a receive (their timeout ended, or a receive with
``VisibilityTimeout=0``), and when a poller set a failed message's timeout to 0 in the same clock
tick as moto then read it (moto's ``visible`` is ``now > visible_at``). On AWS the group comes
back from its head. Here a message visible again leaves the in-flight set before any receive
reads it: when the in-flight groups are taken, and when the visible messages are listed, so a
receive never recounts them and a group in flight when it started gives nothing in it.
"""

from __future__ import annotations

from typing import Any

moto_messages: Any = None  # moto's own ``Queue.messages``, once replaced


def apply() -> None:
    """Patch moto's SQS queues in this process (once; later calls do nothing)."""
    global moto_messages
    if moto_messages is not None:
        return
    from moto.sqs import models as sqs

    moto_messages = sqs.Queue.messages
    setattr(sqs.Queue, "messages", property(visible_messages))
    setattr(sqs.Queue, "pending_message_groups", property(groups_in_flight))


def release_visible(queue: Any) -> None:
    """Take the messages that are visible again out of the queue's in-flight set: their
    receiver gave them back (a timeout of 0) or let their timeout end."""
    pending = queue._pending_messages
    for message in [m for m in pending if m.visible]:
        pending.discard(message)


def groups_in_flight(queue: Any) -> set[str]:
    """The FIFO groups with a message received and not yet visible again."""
    release_visible(queue)
    return {m.group_id for m in list(queue._pending_messages) if m.group_id is not None}


def visible_messages(queue: Any) -> list[Any]:
    """moto's visible, undelayed messages, none of them left in the in-flight set."""
    messages = moto_messages.fget(queue)
    for message in messages:
        queue._pending_messages.discard(message)
    return messages
