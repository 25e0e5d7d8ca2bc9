"""The NAS agent's link over MQTT (paho-mqtt), for small devices: the same protocol as devices/broker.py.

RabbitMQ's MQTT plugin maps topics onto routing keys (`/` ↔ `.`), so docs/device-protocol.md "MQTT" is the AMQP
protocol with slashes: events are published QoS 1 to `event/<serial>/<type>`, messages for the device arrive on
`device/<serial>` (subscribed QoS 1 in a persistent session, client id `device-<serial>`, so what is sent while
the device is away waits in the broker), and a last will on `event/<serial>/offline` tells the server at once
when the connection is lost. Messages are acked (PUBACK) only after they were handled. Nothing of the server
is imported (a device lives outside it).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from devices.broker import Reject, SendError

log = logging.getLogger("nas_agent.mqtt")

QOS = 1


def event_topic(serial: str, type_: str) -> str:
    """`event/<serial>/<type>` — RabbitMQ turns it into routing key `event.<serial>.<type>` (a `.` in the type
    stays a `.`: `event/S/pair.waiting` is `event.S.pair.waiting`)."""
    return f"event/{serial}/{type_}"


def device_topic(serial: str) -> str:
    return f"device/{serial}"


def client_id(serial: str) -> str:
    """Fixed per device: the broker keeps the session (and its queue) under it; a device user may use only it."""
    return f"device-{serial}"


class MqttLink:
    """One MQTT connection for everything: events out (`send`), messages in (`run`), the last will."""

    def __init__(self, url: str, serial: str, timeout: float = 5.0, keepalive: int = 30,
                 reconnect_max: float = 5.0):
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("the MQTT URL must be mqtt://USER:PASSWORD@HOST:PORT (mqtts:// for TLS)")
        self.serial = serial
        self.timeout = timeout
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.keepalive = keepalive
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.connected = threading.Event()
        self.refused: str | None = None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id(serial), clean_session=False,
                             protocol=mqtt.MQTTv311, manual_ack=True)
        if parts.username:
            # RabbitMQ reads "VHOST:USER" as a user in a vhost
            client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            client.tls_set()
        offline = json.dumps({"type": "offline", "serial": serial}, separators=(",", ":"))
        client.will_set(event_topic(serial, "offline"), offline, qos=QOS)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(reconnect_max)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        self._started = False

    # ----------------------------------------------------------------------------------- callbacks

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.warning("broker refused the MQTT connection: %s", reason_code)
            return
        client.subscribe(device_topic(self.serial), qos=QOS)
        self.connected.set()
        log.info("consuming device.%s over MQTT (%s:%d)", self.serial, self.host, self.port)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        log.warning("lost the MQTT broker (%s); paho reconnects", reason_code)

    def _on_message(self, _client, _userdata, message) -> None:
        # handled in the agent's thread, not paho's: handling publishes (and waits for) our answers
        self.inbox.put(message)

    # -------------------------------------------------------------------------------------- the API

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
            self.client.loop_start()

    def send(self, serial: str, type_: str, **fields) -> None:
        """One event, QoS 1, waited for until the broker's PUBACK; SendError when it did not come."""
        self.start()
        if not self.connected.wait(self.timeout):
            raise SendError(f"{type_} not sent: not connected ({self.refused or 'connecting'})")
        body = json.dumps({"type": type_, "serial": serial, **fields}, separators=(",", ":"))
        info = self.client.publish(event_topic(serial, type_), body, qos=QOS)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise SendError(f"{type_} not sent: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise SendError(f"{type_} not sent: {exc}") from exc
        if not info.is_published():
            raise SendError(f"{type_} not confirmed within {self.timeout}s")

    def run(self, handle, stop: threading.Event) -> None:
        """Handle messages for the device until `stop`; each is acked after `handle(message)` returned.

        A Reject or a bug drops the message (acked: MQTT has no nack); a SendError (our answer did not go out)
        leaves it unacked: the broker delivers it again when the connection (which paho re-establishes) is new.
        """
        self.start()
        while not stop.is_set():
            try:
                message = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if self._handle_one(message, handle):
                self.client.ack(message.mid, message.qos)
            else:
                stop.wait(0.5)

    def _handle_one(self, message, handle) -> bool:
        try:
            body = json.loads(message.payload)
            if not isinstance(body, dict):
                raise Reject("not a JSON object")
            handle(body)
        except (ValueError, Reject) as exc:
            log.warning("dropping message on %s: %s", message.topic, exc)
        except SendError as exc:
            log.warning("could not answer (%s); the message comes back", exc)
            return False
        except Exception:  # noqa: BLE001 - one message that trips a bug must not stop the device
            log.exception("dropping message on %s: handling it failed", message.topic)
        return True

    def close(self) -> None:
        """A clean disconnect (the broker then does not send the will: say `offline` before, if you mean it)."""
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False
