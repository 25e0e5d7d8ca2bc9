"""runtime.amqp.run_consumer with workers: parallel across shards, in order within one, every message acked."""

from __future__ import annotations

import threading
import time
import uuid

from runtime import amqp
from tests.fixtures.pairing import wait_until


class Recorder(amqp.Consumer):
    prefetch = 20

    def __init__(self, name: str):
        self.queue = name
        self.exchange = name
        self.seen: dict[str, list[int]] = {}
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def setup(self, channel) -> None:
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=False, auto_delete=False)
        channel.queue_declare(self.queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(self.queue, self.exchange, routing_key="#")

    def consume(self, message, properties, routing_key):
        if message.get("poison"):
            raise amqp.Reject("poison")
        time.sleep(0.01)  # long enough that shards overlap
        with self.lock:
            self.seen.setdefault(routing_key, []).append(message["n"])
            self.threads.add(threading.current_thread().name)


def test_workers_keep_each_shard_in_order_and_ack_everything(worker_vhost):
    name = f"test-workers-{uuid.uuid4().hex[:8]}"
    consumer = Recorder(name)
    connection = amqp.connect(worker_vhost)
    consumer.setup(connection.channel())
    connection.close()
    publisher = amqp.AmqpPublisher(worker_vhost, declare=False)
    keys = ["a", "b", "c", "d", "e", "f"]
    for n in range(10):
        for key in keys:
            publisher.publish(name, key, {"n": n})
    publisher.publish(name, "poison", {"n": 0, "poison": True})
    stop = threading.Event()
    runner = threading.Thread(target=amqp.run_consumer, args=(worker_vhost, consumer, stop),
                              kwargs={"workers": 3}, daemon=True)
    runner.start()
    try:
        wait_until(lambda: sum(len(v) for v in consumer.seen.values()) == 60, what="all 60 messages")
        assert all(consumer.seen[key] == list(range(10)) for key in keys)  # in order within a shard
        assert len(consumer.threads) > 1  # and shards ran on more than one worker
    finally:
        stop.set()
        runner.join(timeout=10)
    assert amqp.fetch_messages(worker_vhost, name) == []  # all acked (the poison one dropped), none left
    publisher.close_quietly()
    connection = amqp.connect(worker_vhost)
    channel = connection.channel()
    channel.queue_delete(name)
    channel.exchange_delete(name)
    connection.close()
