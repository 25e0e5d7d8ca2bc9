"""runtime.amqp.AmqpPublisher against the real broker: what closes a channel never breaks the shared publisher."""

from __future__ import annotations

import pytest

from devices import broker
from runtime import amqp
from runtime.errors import Unavailable
from tests.fixtures.pairing import broker_queue_type, unique_serial


@pytest.fixture
def publisher(settings):
    made = amqp.AmqpPublisher(settings.amqp_url)
    yield made
    made.close_quietly()


def _device_declares(url: str, serial: str, queue_type: str) -> None:
    connection = amqp.connect(url)
    try:
        broker.declare_exchanges(connection.channel())  # what the agent does at connect, before its queue
        broker.declare_own_queue(connection, serial, queue_type)
    finally:
        connection.close()


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_device_queues_of_either_type_are_used_as_they_are(publisher, settings, queue_type):
    serial = unique_serial("A")
    _device_declares(settings.amqp_url, serial, queue_type)
    connection = (publisher.ping(), publisher._connection)[1]

    for _ in range(3):
        publisher.publish_to_device(serial, {"type": "unpaired"})

    assert broker_queue_type(settings.amqp_url, f"device.{serial}") == queue_type
    assert len(amqp.fetch_messages(settings.amqp_url, f"device.{serial}")) == 3
    assert publisher._connection is connection  # no channel was closed by the broker, nothing reconnected


def test_a_channel_closed_by_the_broker_is_replaced_on_the_same_connection(publisher, settings):
    serial = unique_serial("A")
    publisher.ensure_device_queue(serial)
    connection = publisher._connection

    with pytest.raises(amqp.PublishError):  # 404 NOT_FOUND closes the publishing channel
        publisher.publish("pcloud.no-such-exchange", "x", {"type": "nothing"})
    with pytest.raises(Unavailable):  # a passive check of a missing queue answers 404 on a scratch channel
        publisher.queue_depth(f"device.{unique_serial('NONE')}")
    # a queue declared with other arguments would answer 406 to a redeclare: the server never redeclares
    _device_declares(settings.amqp_url, (quorum := unique_serial("Q")), "quorum")
    publisher.publish_to_device(quorum, {"type": "unpaired"})

    publisher.publish_to_device(serial, {"type": "unpaired"})
    assert publisher.queue_depth(f"device.{serial}") == 1
    assert publisher._connection is connection
    assert publisher._channel.is_open


def test_a_device_first_creates_the_exchanges_it_needs(fresh_vhost):
    """The demo NAS may start before any server process: its hello must not meet NOT_FOUND - no exchange."""
    sender = broker.EventSender(fresh_vhost)
    try:
        sender.send("FIRST-1", "hello", model="M", firmware="1")
    finally:
        sender.close()
    # the exchanges are the server's own (same arguments), so the server's topology declaration agrees
    server = amqp.AmqpPublisher(fresh_vhost)
    try:
        server.ping()
        server.publish_to_device("FIRST-1", {"type": "unpaired"})
    finally:
        server.close_quietly()
    assert broker_queue_type(fresh_vhost, "device.FIRST-1") == "classic"
