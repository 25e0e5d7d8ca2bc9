"""Everything that touches pika lives here: topology, confirmed publishing, consumers.

Devices are outside our trust boundary and come and go, so their traffic rides RabbitMQ (CONTRACT §4).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import zlib
from functools import partial

import pika
from pika.exceptions import AMQPError, NackError, UnroutableError

from runtime.errors import Unavailable

log = logging.getLogger(__name__)

DEVICES_EXCHANGE = "pcloud.devices"
EVENTS_EXCHANGE = "pcloud.device-events"
EVENTS_QUEUE = "pcloud.device-events.server"
DEAD_LETTER_EXCHANGE = "pcloud.dead-letter"
DEAD_LETTER_QUEUE = "pcloud.dead-letter"


class PublishError(Unavailable):
    """The broker did not confirm a message; the caller must treat it as not sent."""


class Reject(Exception):
    """Raised by a consumer for a message that can never be handled: it goes to the dead-letter queue."""


def parameters(url: str, timeout: float = 5.0, heartbeat: int = 30) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.socket_timeout = timeout
    params.blocked_connection_timeout = timeout * 6
    params.connection_attempts = 1
    params.heartbeat = heartbeat
    params.stack_timeout = timeout * 2
    return params


def connect(url: str, timeout: float = 5.0) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(parameters(url, timeout))
    except AMQPError as exc:
        raise Unavailable(f"amqp: {exc.__class__.__name__}", details={"dependency": "amqp"}) from exc


def declare_device_queue(channel, serial: str) -> str:
    """A device's own durable queue `device.<serial>`, bound to its routing key."""
    name = f"device.{serial}"
    channel.queue_declare(queue=name, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue=name, exchange=DEVICES_EXCHANGE, routing_key=name)
    return name


def declare_topology(channel) -> None:
    """Idempotent: exchanges, the server's events queue and the dead-letter pair."""
    channel.exchange_declare(DEVICES_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)
    channel.queue_declare(
        EVENTS_QUEUE,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE},
    )
    channel.queue_bind(EVENTS_QUEUE, EVENTS_EXCHANGE, routing_key="event.#")


def device_routing_key(serial: str) -> str:
    """Server → device: the routing key (and queue name) of one device."""
    return f"device.{serial}"


def event_routing_key(serial: str, type_: str) -> str:
    """Device → server: `event.<serial>.<type>`; the broker can check the serial part per device user."""
    return f"event.{serial}.{type_}"


class AmqpPublisher:
    """One confirmed channel per process, guarded by a lock (pika's BlockingConnection is not thread-safe).

    `declare=False` is for devices: their broker user may not declare our exchanges, only use them.
    """

    def __init__(self, url: str, timeout: float = 5.0, declare: bool = True):
        self.url = url
        self.timeout = timeout
        self.declare = declare
        self._lock = threading.Lock()
        self._connection = None
        self._channel = None
        self._device_queues: set[str] = set()

    def _ensure(self):
        if self._channel is None or not self._channel.is_open or not self._connection.is_open:
            self.close_quietly()
            self._connection = connect(self.url, self.timeout)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
            if self.declare:
                declare_topology(self._channel)
            self._device_queues.clear()
        return self._channel

    def ensure_device_queue(self, serial: str) -> None:
        """Declare `device.<serial>` once per connection, so a message for an offline device waits for it."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    channel = self._ensure()
                    if serial not in self._device_queues:
                        declare_device_queue(channel, serial)
                        self._device_queues.add(serial)
                    return
                except (AMQPError, OSError) as exc:
                    self.close_quietly()
                    if attempt == 2:
                        raise PublishError(f"amqp: {exc.__class__.__name__}", details={"dependency": "amqp"}) from exc

    def publish(self, exchange: str, routing_key: str, body: dict, message_id: str | None = None,
                mandatory: bool = False) -> str:
        message_id = message_id or uuid.uuid4().hex
        props = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            timestamp=int(time.time()),
        )
        payload = json.dumps(body, separators=(",", ":")).encode()
        with self._lock:
            for attempt in (1, 2):
                try:
                    channel = self._ensure()
                    channel.basic_publish(exchange, routing_key, payload, props, mandatory=mandatory)
                    return message_id
                except (NackError, UnroutableError) as exc:
                    raise PublishError(f"broker refused the message: {exc.__class__.__name__}",
                                       details={"dependency": "amqp"}) from exc
                except (AMQPError, OSError) as exc:
                    self.close_quietly()
                    if attempt == 2:
                        raise PublishError(f"amqp: {exc.__class__.__name__}", details={"dependency": "amqp"}) from exc
        raise AssertionError("unreachable")

    def queue_depth(self, queue: str) -> int:
        """Messages ready in a queue (not those already delivered to a consumer)."""
        with self._lock:
            try:
                channel = self._ensure()
                return channel.queue_declare(queue, passive=True).method.message_count
            except (AMQPError, OSError) as exc:
                self.close_quietly()
                raise Unavailable(f"amqp: {exc.__class__.__name__}", details={"dependency": "amqp"}) from exc

    def ping(self) -> None:
        with self._lock:
            try:
                self._ensure()
                self._connection.process_data_events(0)
            except (AMQPError, OSError) as exc:
                self.close_quietly()
                raise Unavailable(f"amqp: {exc.__class__.__name__}", details={"dependency": "amqp"}) from exc

    def close_quietly(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._device_queues.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (AMQPError, OSError) as exc:
                log.debug("closing a broken AMQP connection: %s", exc)


class Consumer:
    """One class per queue (Zulip style): subclasses set `queue` and implement consume(message)."""

    queue: str = ""
    prefetch: int = 50
    # errors that mean "a dependency is away, try this message again later" (requeued, not dead-lettered)
    transient_errors: tuple[type[BaseException], ...] = (Unavailable,)

    def setup(self, channel) -> None:
        """Declare what this consumer needs; the default declares the shared topology."""
        declare_topology(channel)

    def consume(self, message: dict, properties: pika.BasicProperties, routing_key: str) -> None:
        raise NotImplementedError

    def shard(self, routing_key: str) -> str:
        """Messages with the same shard are handled in order (run_consumer with workers > 1)."""
        return routing_key

    def inline(self, routing_key: str) -> bool:
        """With workers: handle this message at once in the consuming thread (cheap work that must not queue)."""
        return False


def run_consumer(url: str, consumer: Consumer, stop: threading.Event | None = None,
                 reconnect_max: float = 30.0, workers: int = 1) -> None:
    """Consume forever with manual acks; reconnect with backoff when the broker goes away.

    With `workers` > 1, messages are handled by that many threads, each message going to the thread its
    `consumer.shard(routing_key)` picks: different keys proceed in parallel, one key stays in order.
    """
    delay = 0.5
    stop = stop or threading.Event()
    while not stop.is_set():
        connection = pool = None
        try:
            connection = pika.BlockingConnection(parameters(url))
            channel = connection.channel()
            consumer.setup(channel)
            channel.basic_qos(prefetch_count=consumer.prefetch)
            delay = 0.5
            log.info("consuming %s", consumer.queue)
            pool = _WorkerPool(connection, channel, consumer, workers) if workers > 1 else None
            for method, properties, body in channel.consume(consumer.queue, inactivity_timeout=0.5):
                if stop.is_set():
                    break
                if method is None:
                    continue
                if pool is not None and not consumer.inline(method.routing_key):
                    pool.submit(method, properties, body)
                else:
                    _handle(channel, consumer, method, properties, body)
            if pool is not None:
                pool.close(connection)
                pool = None
            try:
                channel.cancel()
                connection.close()
            except AMQPError:
                pass
        except (AMQPError, OSError) as exc:
            log.warning("amqp consumer %s lost its connection (%s); retrying in %.1fs",
                        consumer.queue, exc.__class__.__name__, delay)
            if pool is not None:
                pool.close(None)  # unacked messages come back from the broker
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except (AMQPError, OSError):
                    pass
            stop.wait(delay)
            delay = min(delay * 2, reconnect_max)


class _WorkerPool:
    """Threads that handle messages and hand the ack back to the connection's thread (pika's rule)."""

    def __init__(self, connection, channel, consumer: Consumer, workers: int):
        import queue as queue_mod

        self.connection = connection
        self.channel = channel
        self.consumer = consumer
        self.queues = [queue_mod.SimpleQueue() for _ in range(workers)]
        self.threads = [threading.Thread(target=self._work, args=(q,), name=f"{consumer.queue}-{i}", daemon=True)
                        for i, q in enumerate(self.queues)]
        for thread in self.threads:
            thread.start()

    def submit(self, method, properties, body) -> None:
        index = zlib.crc32(self.consumer.shard(method.routing_key).encode()) % len(self.queues)
        self.queues[index].put((method, properties, body))

    def _work(self, q) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            method, properties, body = item
            outcome = _outcome(self.consumer, method, properties, body)
            tag = method.delivery_tag
            if outcome == "ack":
                done = partial(self.channel.basic_ack, tag)
            else:
                done = partial(self.channel.basic_nack, tag, requeue=outcome == "requeue")
            try:
                self.connection.add_callback_threadsafe(partial(_quietly, done))
            except (AMQPError, OSError) as exc:
                log.debug("connection gone before the ack of %s: %s (the broker redelivers)", tag, exc)

    def close(self, connection) -> None:
        for q in self.queues:
            q.put(None)
        for thread in self.threads:
            thread.join(timeout=10)
        if connection is not None and connection.is_open:
            connection.process_data_events(0)  # send the acks the workers queued last


def _quietly(fn) -> None:
    try:
        fn()
    except (AMQPError, OSError) as exc:
        log.debug("ack on a closed channel: %s", exc)


def _outcome(consumer: Consumer, method, properties, body: bytes) -> str:
    """Handle one message: "ack", "requeue" (a dependency is away) or "drop" (to the dead-letter queue)."""
    try:
        message = json.loads(body)
        if not isinstance(message, dict):
            raise Reject("message is not a JSON object")
        consumer.consume(message, properties, method.routing_key)
    except (ValueError, Reject) as exc:
        log.warning("dead-lettering message %s on %s: %s",
                    getattr(properties, "message_id", None), method.routing_key, exc)
        return "drop"
    except consumer.transient_errors as exc:
        log.warning("requeueing message on %s: %s", method.routing_key, exc)
        time.sleep(0.5)
        return "requeue"
    except Exception:  # noqa: BLE001 - a bug in one message must not kill the consumer; the message is kept
        log.exception("dead-lettering message %s on %s: the consumer failed",
                      getattr(properties, "message_id", None), method.routing_key)
        return "drop"
    return "ack"


def _handle(channel, consumer: Consumer, method, properties, body: bytes) -> None:
    outcome = _outcome(consumer, method, properties, body)
    if outcome == "ack":
        channel.basic_ack(method.delivery_tag)
    else:
        channel.basic_nack(method.delivery_tag, requeue=outcome == "requeue")


def ensure_vhost_url(url: str, vhost: str) -> str:
    """The same broker URL pointed at another vhost (tests isolate by vhost)."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))


def publish_bytes(url: str, exchange: str, routing_key: str, payload: bytes, timeout: float = 5.0) -> None:
    """One confirmed publish of raw bytes on a connection of its own (operators' tools and tests)."""
    connection = connect(url, timeout)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, payload,
                              pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                                   message_id=uuid.uuid4().hex))
    finally:
        connection.close()


def fetch_messages(url: str, queue: str, limit: int = 100, timeout: float = 5.0) -> list[tuple[str, bytes]]:
    """Take up to `limit` messages off a queue (acked): `(routing_key, body)` pairs, e.g. to inspect dead letters."""
    connection = connect(url, timeout)
    found = []
    try:
        channel = connection.channel()
        for _ in range(limit):
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            found.append((method.routing_key, body))
    finally:
        connection.close()
    return found
