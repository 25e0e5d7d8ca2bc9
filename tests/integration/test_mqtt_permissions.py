"""MQTT devices' broker users (infra/rabbitmq/add-device-user.sh): own topics only, against the real plugin."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import uuid
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import pika
import pytest

from runtime import amqp
from tests.fixtures.mqtt import vhost_of
from tests.fixtures.pairing import ROOT, unique_serial, wait_until


class Probe:
    """A paho client driven step by step: connect, subscribe and publish, each waited for."""

    def __init__(self, port: int, username: str | None, password: str | None, client_id: str):
        self.port = port
        self.connack = queue.SimpleQueue()
        self.subacks = queue.SimpleQueue()
        self.messages = queue.SimpleQueue()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put(rcs)
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_disconnect = lambda *_: self.disconnected.set()

    def connect(self):
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        return self.connack.get(timeout=10)

    def subscribe(self, topic: str):
        self.client.subscribe(topic, qos=1)
        try:
            return self.subacks.get(timeout=10)[0]
        except queue.Empty:
            return None  # the broker closed the connection instead of answering

    def publish(self, topic: str, body: dict) -> None:
        self.client.publish(topic, json.dumps(body), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_device(fresh_vhost, mqtt_port):
    """Two provisioned devices in a fresh vhost: (serial, mqtt user, password) each."""
    made = []

    def make():
        serial = unique_serial("Q")
        password = uuid.uuid4().hex
        out = subprocess.run(["bash", str(ROOT / "infra/rabbitmq/add-device-user.sh"), serial,
                              vhost_of(fresh_vhost), password], capture_output=True, text=True, timeout=120,
                             check=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                              "PCLOUD_MQTT_PORT": str(mqtt_port)}).stdout.split()
        made.append(serial)
        parts = urlsplit(out[1])
        assert parts.scheme == "mqtt" and parts.port == mqtt_port
        return serial, unquote(parts.username), unquote(parts.password)

    publisher = amqp.AmqpPublisher(fresh_vhost)
    publisher.ping()  # the server's topology, the MQTT bindings included
    yield make, publisher
    publisher.close_quietly()
    for serial in made:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", f"device-{serial}"], capture_output=True, timeout=60)


@pytest.mark.slow  # four rabbitmqctl calls per device user and a vhost
def test_an_mqtt_device_reaches_its_own_topics_and_no_other(mqtt_device, fresh_vhost, mqtt_port):
    make, publisher = mqtt_device
    (serial, user, password), (other, other_user, other_password) = make(), make()
    assert user == f"{vhost_of(fresh_vhost)}:device-{serial}"

    # what the server would receive: a queue on the events exchange (the server's own is bound the same way)
    connection = pika.BlockingConnection(pika.URLParameters(fresh_vhost))
    channel = connection.channel()
    seen = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(seen, amqp.EVENTS_EXCHANGE, routing_key="event.#")

    assert Probe(mqtt_port, None, None, f"device-{serial}").connect().is_failure  # no anonymous logins
    assert Probe(mqtt_port, user, "wrong", f"device-{serial}").connect().is_failure

    device = Probe(mqtt_port, user, password, f"device-{serial}")
    assert not device.connect().is_failure
    assert device.subscribe(f"device/{serial}").value == 1  # granted, QoS 1
    device.publish(f"event/{serial}/hello", {"type": "hello", "serial": serial, "model": "M", "firmware": "1"})
    wait_until(lambda: channel.basic_get(seen, auto_ack=True)[0], what="the hello on the events exchange")

    # the server reaches it through the exchange binding, without any device.<serial> queue
    publisher.publish_to_device(serial, {"type": "unpaired"}, own_queue=False)
    message = device.messages.get(timeout=10)
    assert message.topic == f"device/{serial}" and json.loads(message.payload) == {"type": "unpaired"}
    with pytest.raises(amqp.PublishError):  # nobody of that name subscribed: unroutable, not silently lost
        publisher.publish_to_device(unique_serial("NOBODY"), {"type": "unpaired"}, own_queue=False)
    device.close()

    # refused: another device's topic, everything's events, another device's client id (its session queue),
    # publishing under another serial (RabbitMQ closes the connection for each)
    for creds, client_id, topic in [((user, password), f"device-{serial}", f"device/{other}"),
                                    ((user, password), f"device-{serial}", "event/#"),
                                    ((other_user, other_password), f"device-{serial}", f"device/{serial}")]:
        probe = Probe(mqtt_port, *creds, client_id)
        connack = probe.connect()
        if connack.is_failure:  # the impostor: the session of that client id is not its to resume
            assert creds[0] == other_user, (client_id, topic, connack)
        else:
            answer = probe.subscribe(topic)
            assert answer is None or answer.is_failure, (client_id, topic)
        probe.close()
    intruder = Probe(mqtt_port, other_user, other_password, f"device-{other}")
    assert not intruder.connect().is_failure
    intruder.publish(f"event/{serial}/hello", {"type": "hello", "serial": serial})
    assert intruder.disconnected.wait(10)
    intruder.close()
    assert channel.basic_get(seen, auto_ack=True)[0] is None
    connection.close()
