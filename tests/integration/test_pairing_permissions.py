"""infra/rabbitmq/add-device-user.sh: a device's broker user can do its part of the protocol and nothing else."""

from __future__ import annotations

import subprocess
import uuid
from urllib.parse import unquote, urlsplit

import pytest
from pika.exceptions import AMQPError

from devices import broker
from runtime import amqp
from runtime.errors import Unavailable
from tests.fixtures.pairing import ROOT, unique_serial


@pytest.fixture
def device_user(fresh_vhost):
    serial = unique_serial("P")
    vhost = unquote(urlsplit(fresh_vhost).path.lstrip("/"))
    password = uuid.uuid4().hex
    out = subprocess.run(["bash", str(ROOT / "infra/rabbitmq/add-device-user.sh"), serial, vhost, password],
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()[0]
    publisher = amqp.AmqpPublisher(fresh_vhost)
    publisher.ping()  # the server side declares the topology, as the gateway and listener do
    yield serial, out, fresh_vhost
    publisher.close_quietly()
    subprocess.run(["rabbitmqctl", "-q", "delete_user", f"device-{serial}"], capture_output=True, timeout=60)


def _refused(fn) -> bool:
    """True when the broker said ACCESS_REFUSED (403), not some other failure."""
    try:
        fn()
    except (AMQPError, Unavailable, broker.SendError) as exc:
        return "ACCESS_REFUSED" in f"{exc!r} {exc.__cause__!r}"
    return False


def _with_channel(url, fn):
    return _with_connection(url, lambda connection: fn(connection.channel()))


def _with_connection(url, fn):
    connection = amqp.connect(url)
    try:
        return fn(connection)
    finally:
        if connection.is_open:
            connection.close()


def test_a_device_user_does_its_part_and_nothing_more(device_user):
    serial, url, server_url = device_user
    assert url.startswith(f"amqp://device-{serial}:")
    other = unique_serial("P")

    # allowed: declare and bind its own queue, publish its own events, read its own queue
    _with_connection(url, lambda conn: broker.declare_own_queue(conn, serial))
    device = broker.EventSender(url, declare=False)
    device.send(serial, "hello")
    server = amqp.AmqpPublisher(server_url)
    server.publish(amqp.DEVICES_EXCHANGE, f"device.{serial}", {"type": "unpaired"}, mandatory=True)
    assert [rk for rk, _ in amqp.fetch_messages(url, f"device.{serial}")] == [f"device.{serial}"]

    # refused: speaking for another serial, the devices exchange, other queues, wider bindings, server queues
    assert _refused(lambda: broker.EventSender(url, declare=False).send(other, "hello"))
    assert _refused(lambda: broker.EventSender(url, declare=True).send(serial, "hello"))  # may not declare exchanges
    assert _refused(lambda: amqp.AmqpPublisher(url, declare=False).publish(
        amqp.DEVICES_EXCHANGE, f"device.{other}", {"type": "unpaired"}))
    server.ensure_device_queue(other)  # the server creates another device's queue
    assert _refused(lambda: amqp.fetch_messages(url, f"device.{other}"))
    assert _refused(lambda: _with_connection(url, lambda conn: broker.declare_own_queue(conn, other)))
    assert _refused(lambda: _with_channel(url, lambda ch: ch.queue_bind(f"device.{serial}", amqp.DEVICES_EXCHANGE,
                                                                        routing_key="device.#")))
    assert _refused(lambda: amqp.fetch_messages(url, amqp.EVENTS_QUEUE))
    assert _refused(lambda: amqp.fetch_messages(url, amqp.DEAD_LETTER_QUEUE))
    assert _refused(lambda: _with_channel(url, amqp.declare_topology))
    # the events the server did get are only the allowed one
    assert [rk for rk, _ in amqp.fetch_messages(server_url, amqp.EVENTS_QUEUE)] == [f"event.{serial}.hello"]
    device.close()
    server.close_quietly()
