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
from pika.exceptions import AMQPError, ChannelClosed, ChannelClosedByBroker, NackError, UnroutableError

from runtime.errors import Unavailable

log = logging.getLogger(__name__)

DEVICES_EXCHANGE = "pcloud.devices"
EVENTS_EXCHANGE = "pcloud.device-events"
EVENTS_QUEUE = "pcloud.device-events.server"
DEAD_LETTER_EXCHANGE = "pcloud.dead-letter"
DEAD_LETTER_QUEUE = "pcloud.dead-letter"
# RabbitMQ's MQTT plugin publishes and subscribes on this exchange (its default; MQTT topic a/b = routing key a.b)
MQTT_EXCHANGE = "amq.topic"
MQTT_QOS_HEADER = "x-mqtt-publish-qos"  # the plugin stamps it on every message an MQTT client published


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


def bind_device_queue(connection, serial: str) -> str:
    """Make sure `device.<serial>` exists and is bound, whatever arguments its owner declared it with.

    The device owns its queue (CONTRACT §4): it may have declared it classic or quorum before we ever saw it,
    and redeclaring it with other arguments makes the broker close the channel (406 PRECONDITION_FAILED).
    So we bind first: `queue.bind` names the queue without restating its arguments, so it never fails on
    them, it is idempotent, and in the usual case (the device declared its queue at connect) it is the only
    round trip. Only when the queue does not exist yet (404) do we create it, with no arguments at all — the
    broker's default type, exactly what a device following §4 literally declares — so a request waits for a
    device that is briefly away. If the device declares it in between with other arguments (406), its
    declaration wins and we bind to that. Every step runs on a channel of its own (a 404/406 closes the
    channel it happened on), never on the caller's confirmed publishing channel.
    """
    name = device_routing_key(serial)
    if _on_scratch_channel(connection, lambda ch: ch.queue_bind(name, DEVICES_EXCHANGE, routing_key=name),
                           tolerate=(404,)):
        return name
    _on_scratch_channel(connection, lambda ch: ch.queue_declare(name, durable=True), tolerate=(406,))
    _on_scratch_channel(connection, lambda ch: ch.queue_bind(name, DEVICES_EXCHANGE, routing_key=name))
    return name


def _on_scratch_channel(connection, fn, tolerate: tuple[int, ...] = ()) -> bool:
    """Run `fn(channel)` on a short-lived channel: True if it worked, False if the broker answered one of the
    `tolerate`d reply codes (which closes only that channel); any other failure is raised."""
    channel = connection.channel()
    try:
        fn(channel)
        return True
    except ChannelClosedByBroker as exc:
        if exc.reply_code in tolerate:
            return False
        raise
    finally:
        if channel.is_open:
            channel.close()


def declare_exchanges(channel) -> None:
    """The two exchanges of the device protocol; idempotent (same arguments as every other declarer)."""
    channel.exchange_declare(DEVICES_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)


def declare_topology(channel) -> None:
    """Idempotent: exchanges, the server's events queue and the dead-letter pair (whoever starts first)."""
    declare_exchanges(channel)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)
    channel.queue_declare(
        EVENTS_QUEUE,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE},
    )
    channel.queue_bind(EVENTS_QUEUE, EVENTS_EXCHANGE, routing_key="event.#")
    # MQTT devices (docs/device-protocol.md "MQTT"): their events reach the events exchange, and what we send
    # to devices reaches their MQTT subscriptions; both are exchange-to-exchange bindings, so the AMQP side of
    # the protocol stays exactly as it was
    channel.exchange_bind(EVENTS_EXCHANGE, MQTT_EXCHANGE, routing_key="event.#")
    channel.exchange_bind(MQTT_EXCHANGE, DEVICES_EXCHANGE, routing_key="device.#")


def from_mqtt(properties) -> bool:
    """Whether a delivered message was published by an MQTT client (through the broker's MQTT plugin)."""
    headers = getattr(properties, "headers", None) or {}
    return MQTT_QOS_HEADER in headers


def device_routing_key(serial: str) -> str:
    """Server → device: the routing key (and queue name) of one device."""
    return f"device.{serial}"


def event_routing_key(serial: str, type_: str) -> str:
    """Device → server: `event.<serial>.<type>`; the broker can check the serial part per device user."""
    return f"event.{serial}.{type_}"


class AmqpPublisher:
    """One confirmed channel per process, guarded by a lock (pika's BlockingConnection is not thread-safe).

    A broker error that closes only the channel (a 404 or 406 answer) leaves the connection up: the next call
    opens a fresh confirmed channel on it, so one bad operation never breaks publishing for everyone else.
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
        if self._connection is None or not self._connection.is_open:
            self.close_quietly()
            self._connection = connect(self.url, self.timeout)
        if self._channel is None or not self._channel.is_open:
            self._channel = None
            channel = self._connection.channel()
            channel.confirm_delivery()
            if self.declare:
                declare_topology(channel)
            self._channel = channel
        return self._channel

    def _recover(self, exc: BaseException) -> None:
        """After a failure: if the broker closed only a channel, keep the connection (and our channel, if
        it was another one that closed); anything else drops the connection."""
        if isinstance(exc, ChannelClosed) and self._connection is not None and self._connection.is_open:
            if self._channel is not None and not self._channel.is_open:
                self._channel = None
        else:
            self.close_quietly()

    def _call(self, fn, error=PublishError):
        """`fn(connection, channel)` under the lock, retried once after recovering the channel or connection."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    channel = self._ensure()
                    return fn(self._connection, channel)
                except (NackError, UnroutableError):
                    raise
                except (AMQPError, OSError) as exc:
                    self._recover(exc)
                    if attempt == 2:
                        raise error(f"amqp: {exc.__class__.__name__}", details={"dependency": "amqp"}) from exc
        raise AssertionError("unreachable")

    def ensure_device_queue(self, serial: str) -> None:
        """`device.<serial>` exists and is bound (see bind_device_queue), checked once per connection."""

        def ensure(connection, _channel):
            if serial not in self._device_queues:
                bind_device_queue(connection, serial)
                self._device_queues.add(serial)

        self._call(ensure)

    def publish_to_device(self, serial: str, body: dict, message_id: str | None = None,
                          own_queue: bool = True) -> str:
        """Confirmed and persistent into the device's own queue; PublishError if it cannot be routed there.

        If the message is unroutable although we had checked the queue on this connection (the device deleted
        and redeclared it meanwhile), the queue is checked again and the message sent once more.
        `own_queue=False` is for MQTT devices: their queue is the broker's MQTT session (subscribed to
        `device/<serial>`), reached through the exchange binding to amq.topic; we never create `device.<serial>`.
        """
        if not own_queue:
            return self.publish(DEVICES_EXCHANGE, device_routing_key(serial), body, message_id=message_id,
                                mandatory=True)
        for attempt in (1, 2):
            self.ensure_device_queue(serial)
            try:
                return self.publish(DEVICES_EXCHANGE, device_routing_key(serial), body, message_id=message_id,
                                    mandatory=True)
            except PublishError as exc:
                if attempt == 2 or not isinstance(exc.__cause__, UnroutableError):
                    raise
                with self._lock:
                    self._device_queues.discard(serial)
        raise AssertionError("unreachable")

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
        try:
            self._call(lambda _conn, channel: channel.basic_publish(exchange, routing_key, payload, props,
                                                                    mandatory=mandatory))
        except (NackError, UnroutableError) as exc:
            raise PublishError(f"broker refused the message: {exc.__class__.__name__}",
                               details={"dependency": "amqp"}) from exc
        return message_id

    def queue_depth(self, queue: str) -> int:
        """Messages ready in a queue (not those already delivered to a consumer); asked on a scratch channel,
        so a missing queue (404) does not close the publishing channel."""
        found = []

        def depth(connection, _channel):
            _on_scratch_channel(connection, lambda ch: found.append(
                ch.queue_declare(queue, passive=True).method.message_count))

        self._call(depth, error=Unavailable)
        return found[0]

    def ping(self) -> None:
        self._call(lambda connection, _channel: connection.process_data_events(0), error=Unavailable)

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
