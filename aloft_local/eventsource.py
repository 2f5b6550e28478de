"""The SQS event source mapping, locally: what Lambda does for the `worker` function.

Threads long-poll the work queue, hand each batch to the function as an SQS event,
and delete the messages only when the invocation succeeded; a failed or timed-out
invocation leaves them to come back after the queue's visibility timeout, and the
queue's redrive policy moves a message that keeps failing to the dead-letter queue.
`drain` does one pass of the same in the caller's thread (tests).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("aloft.sqs")
WAIT_SECONDS = 5  # long polling (Lambda's pollers wait 20 s; a shorter wait keeps the local endpoint's threads free)


def sqs_event(messages: list[dict], queue_arn: str, region: str = "us-east-1") -> dict:
    """The event Lambda's SQS event source hands the function."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
        "awsRegion": region} for m in messages]}


class QueueSource:
    """One queue and the function that consumes it."""

    def __init__(self, sqs, queue_url: str, invoke: Callable[[dict], bool], batch_size: int = 1):
        self.sqs = sqs
        self.queue_url = queue_url
        self.invoke = invoke
        self.batch_size = max(1, min(10, batch_size))
        self.arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def receive(self, wait_seconds: int) -> list[dict]:
        reply = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                         WaitTimeSeconds=wait_seconds, AttributeNames=["All"])
        return reply.get("Messages", [])

    def deliver(self, messages: list[dict]) -> bool:
        """Invoke the function with one batch; delete the batch if it succeeded."""
        ok = self.invoke(sqs_event(messages, self.arn))
        if ok:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return ok


def drain(source: QueueSource, limit: int) -> int:
    """Deliver the messages visible now, up to `limit`; how many were delivered."""
    delivered = 0
    while delivered < limit:
        messages = source.receive(0)
        if not messages:
            break
        source.deliver(messages)
        delivered += len(messages)
    return delivered


class EventSourceMapping:
    """`threads` pollers for one queue, as long as the stack runs."""

    def __init__(self, source: QueueSource, threads: int):
        self.source = source
        self.threads = max(1, threads)
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._delivering = 0
        self._idle = threading.Condition()

    def start(self) -> None:
        for n in range(self.threads):
            thread = threading.Thread(target=self._poll, name=f"sqs-poller-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self.source.receive(WAIT_SECONDS)
                if messages and not self._stop.is_set():
                    with self._idle:
                        self._delivering += 1
                    try:
                        self.source.deliver(messages)
                    finally:
                        with self._idle:
                            self._delivering -= 1
                            self._idle.notify_all()
            except Exception:  # the queue or the endpoint hiccuped: try again shortly
                if self._stop.is_set():
                    return  # the stack is going away with its endpoint
                log.exception("polling the work queue failed")
                self._stop.wait(1.0)

    def stop(self, timeout: float = 10) -> None:
        """Let deliveries in progress finish; a poller still waiting on an empty queue
        is not waited for (it delivers nothing once stopped; the threads are daemons)."""
        self._stop.set()
        with self._idle:
            self._idle.wait_for(lambda: self._delivering == 0, timeout=timeout)
