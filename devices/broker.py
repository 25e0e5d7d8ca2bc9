"""The NAS agent's link to RabbitMQ: pika and nothing of the server (a device lives outside it).

This is all a connection needs to do for docs/device-protocol.md, written so firmware authors can read it
whole: confirmed, persistent events; one durable queue of the device's own, declared with the type the device
chooses (classic or quorum) and consumed with manual acks; reconnecting with backoff when the broker goes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import pika
from pika.exceptions import AMQPError, ChannelClosedByBroker, NackError, UnroutableError

log = logging.getLogger("nas_agent.broker")

DEVICES_EXCHANGE = "pcloud.devices"
EVENTS_EXCHANGE = "pcloud.device-events"
QUEUE_TYPES = ("classic", "quorum")


class SendError(Exception):
    """The broker did not confirm an event: treat it as not sent and try again later."""


class Reject(Exception):
    """A message this device can never handle: it is nacked without requeue (the broker drops it)."""


def parameters(url: str, timeout: float = 5.0, heartbeat: int = 30) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.socket_timeout = timeout
    params.blocked_connection_timeout = timeout * 6
    params.connection_attempts = 1
    params.heartbeat = heartbeat
    params.stack_timeout = timeout * 2
    return params


def queue_name(serial: str) -> str:
    """The device's own queue; also the routing key the server sends to it with."""
    return f"device.{serial}"


def event_routing_key(serial: str, type_: str) -> str:
    return f"event.{serial}.{type_}"


def declare_exchanges(channel) -> None:
    """Idempotent, same arguments as the server's: whoever connects first creates them."""
    channel.exchange_declare(DEVICES_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)


def declare_own_queue(connection, serial: str, queue_type: str = "classic") -> str:
    """Declare `device.<serial>` durable with our type and bind it to our routing key.

    `classic` is a plain durable declare with no arguments (what CONTRACT §4 describes); `quorum` adds
    `x-queue-type: quorum`. If the queue already exists with other arguments — the server created it first
    (with the broker's default type) to keep a request for us, or an older firmware chose the other type —
    the broker answers 406 and closes that channel: the queue is there all the same, so we use it as it is.
    """
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue type must be one of {QUEUE_TYPES}")
    name = queue_name(serial)
    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else None
    channel = connection.channel()
    try:
        channel.queue_declare(name, durable=True, arguments=arguments)
    except ChannelClosedByBroker as exc:
        if exc.reply_code != 406:
            raise
        log.info("queue %s already exists with other arguments (%s); using it as it is", name, exc.reply_text)
    finally:
        if channel.is_open:
            channel.close()
    channel = connection.channel()
    try:
        channel.queue_bind(name, DEVICES_EXCHANGE, routing_key=name)
    finally:
        if channel.is_open:
            channel.close()
    return name


class EventSender:
    """Publishes the device's events on a confirmed channel of its own connection; safe across threads."""

    def __init__(self, url: str, declare: bool = True, timeout: float = 5.0):
        self.url = url
        self.declare = declare
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection = None
        self._channel = None

    def _ensure(self):
        if self._connection is None or not self._connection.is_open:
            self.close()
            self._connection = pika.BlockingConnection(parameters(self.url, self.timeout))
        if self._channel is None or not self._channel.is_open:
            channel = self._connection.channel()
            channel.confirm_delivery()
            if self.declare:
                declare_exchanges(channel)
            self._channel = channel
        return self._channel

    def send(self, serial: str, type_: str, **fields) -> None:
        """One event, persistent and confirmed; SendError when the broker did not take it."""
        body = json.dumps({"type": type_, "serial": serial, **fields}, separators=(",", ":")).encode()
        props = pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
                                     message_id=uuid.uuid4().hex, timestamp=int(time.time()))
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._ensure().basic_publish(EVENTS_EXCHANGE, event_routing_key(serial, type_), body, props)
                    return
                except (NackError, UnroutableError) as exc:
                    raise SendError(f"broker refused {type_}: {exc.__class__.__name__}") from exc
                except (AMQPError, OSError) as exc:
                    if not isinstance(exc, ChannelClosedByBroker):
                        self.close()
                    if attempt == 2:
                        raise SendError(f"{type_} not sent: {exc!r}") from exc

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (AMQPError, OSError) as exc:
                log.debug("closing a broken connection: %s", exc)


def consume_own_queue(url: str, serial: str, handle, stop: threading.Event, queue_type: str | None = "classic",
                      reconnect_max: float = 5.0, prefetch: int = 10) -> None:
    """Consume `device.<serial>` until `stop` is set, acking each message after `handle(message)` returned.

    `queue_type=None` means the queue is provisioned (infra/rabbitmq): only check that it is there. A Reject
    drops the message, a SendError (the broker is away for our answer) requeues it, and a bug in handling
    one message drops that message with a log line instead of killing the device.
    """
    delay = 0.5
    name = queue_name(serial)
    while not stop.is_set():
        connection = None
        try:
            connection = pika.BlockingConnection(parameters(url))
            channel = connection.channel()
            if queue_type is None:
                channel.queue_declare(name, passive=True)
            else:
                declare_exchanges(channel)
                declare_own_queue(connection, serial, queue_type)
            channel.basic_qos(prefetch_count=prefetch)
            delay = 0.5
            log.info("consuming %s", name)
            for method, _props, body in channel.consume(name, inactivity_timeout=0.5):
                if stop.is_set():
                    break
                if method is not None:
                    _handle_one(channel, method, body, handle)
            channel.cancel()
            connection.close()
        except (AMQPError, OSError) as exc:
            log.warning("lost the broker (%r); reconnecting in %.1fs", exc, delay)
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except (AMQPError, OSError):
                    pass
            stop.wait(delay)
            delay = min(delay * 2, reconnect_max)


def _handle_one(channel, method, body: bytes, handle) -> None:
    try:
        message = json.loads(body)
        if not isinstance(message, dict):
            raise Reject("not a JSON object")
        handle(message)
    except (ValueError, Reject) as exc:
        log.warning("dropping message on %s: %s", method.routing_key, exc)
        channel.basic_nack(method.delivery_tag, requeue=False)
    except SendError as exc:
        log.warning("could not answer (%s); the message comes back", exc)
        time.sleep(0.5)
        channel.basic_nack(method.delivery_tag, requeue=True)
    except Exception:  # noqa: BLE001 - one message that trips a bug must not stop the device
        log.exception("dropping message on %s: handling it failed", method.routing_key)
        channel.basic_nack(method.delivery_tag, requeue=False)
    else:
        channel.basic_ack(method.delivery_tag)
