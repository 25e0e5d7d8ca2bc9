"""The device-events listener process (`python -m functions.pairing.listener`, Procfile `listener:`).

Consumes `pcloud.device-events` with manual acks. A message that can never be handled (not JSON, unknown
type, a `serial` that differs from its routing key) is dead-lettered with a log line; a message that meets
a dependency outage is requeued. Beside the consumer, a sweeper thread times out pairing sessions a few
times a second, so `failed`/`expired` happen even when nobody polls.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from pymongo.errors import PyMongoError
from redis import RedisError

from functions.pairing.service import SERIAL_RE, BadMessage, PairingService
from runtime.amqp import EVENTS_QUEUE, Consumer, Reject, from_mqtt, run_consumer
from runtime.clients import Clients
from runtime.daemon import stop_on_signals
from runtime.errors import Unavailable
from runtime.settings import Settings

log = logging.getLogger(__name__)

SWEEP_EVERY = 0.25
WORKERS = 8  # threads handling messages; each device's messages stay in order
DEVICE_TYPES = ("hello", "pair.waiting", "pair.confirmed", "pair.rejected", "packages.report",
                "package.configure.ack", "offline")


class DeviceEventsConsumer(Consumer):
    """`event.<serial>.<type>` messages from devices; the routing key is what the broker vouches for."""

    queue = EVENTS_QUEUE
    transient_errors = (Unavailable, PyMongoError, RedisError)

    def __init__(self, service: PairingService):
        self.service = service

    def shard(self, routing_key: str) -> str:
        """One device's messages are handled in order; different devices in parallel."""
        return routing_key.split(".", 2)[1] if routing_key.count(".") >= 2 else routing_key

    def inline(self, routing_key: str) -> bool:
        """Answers that only touch Redis skip the queue behind other devices' database work.

        Overtaking is harmless: a session only moves forward (an early pair.waiting after pair.confirmed
        changes nothing), and a device sends pair.waiting before pair.confirmed anyway.
        """
        return routing_key.endswith((".pair.waiting", ".pair.rejected"))

    def consume(self, message: dict, properties, routing_key: str) -> None:
        prefix, _, rest = routing_key.partition(".")
        serial, _, rtype = rest.partition(".")
        if prefix != "event" or not SERIAL_RE.match(serial) or rtype not in DEVICE_TYPES:
            raise Reject(f"routing key {routing_key!r} is not event.<serial>.<known type>")
        if message.get("type") != rtype:
            raise Reject(f"type {message.get('type')!r} does not match the routing key")
        if message.get("serial") != serial:
            raise Reject(f"serial {message.get('serial')!r} does not match the routing key")
        if rtype == "hello":
            transport = "mqtt" if from_mqtt(properties) or message.get("transport") == "mqtt" else "amqp"
            self.service.hello(serial, message.get("model"), message.get("firmware"), transport)
        elif rtype == "offline":
            if self.service.went_offline(serial):
                log.info("device %s went offline", serial)
        elif rtype == "pair.waiting":
            self.service.on_waiting(serial, message.get("session_id"))
        elif rtype == "pair.confirmed":
            self.service.on_confirmed(serial, message.get("session_id"))
        elif rtype == "pair.rejected":
            self.service.on_rejected(serial, message.get("session_id"), message.get("reason"))
        else:
            self._packages(serial, rtype, message)

    def _packages(self, serial: str, rtype: str, message: dict) -> None:
        """Package Setting messages; a report that breaks the types or a forged/stale ack is dead-lettered."""
        try:
            if rtype == "packages.report":
                count = self.service.packages.on_report(serial, message.get("packages"))
                log.info("device %s reports %d packages", serial, count)
            else:
                state = self.service.packages.on_ack(serial, message.get("id"), message.get("ok"),
                                                     message.get("reason"))
                log.info("device %s: change %s %s", serial, message.get("id"), state)
        except BadMessage as exc:
            raise Reject(f"{rtype} from {serial} refused: {exc}") from exc


def sweep_loop(service: PairingService, stop: threading.Event, every: float = SWEEP_EVERY) -> None:
    while not stop.is_set():
        try:
            service.sweep_deadlines()
        except Exception as exc:  # noqa: BLE001 - Redis/MongoDB away: the next sweep catches up
            log.warning("pairing deadline sweep failed: %s", exc)
        stop.wait(every)


class Announcer:
    """Writes the outbox events that follow a session change in a thread of their own.

    A pair.waiting then costs the message handler only Redis work, so a slow database does not hold up the
    person watching the app; the events are written moments later (push turns them into notifications).
    """

    def __init__(self):
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="pairing-announcer", daemon=True)
        self.thread.start()

    def __call__(self, fn) -> None:
        self.queue.put(fn)

    def _run(self) -> None:
        while True:
            fn = self.queue.get()
            if fn is None:
                return
            for attempt in range(1, 6):
                try:
                    fn()
                    break
                except (PyMongoError, Unavailable) as exc:
                    log.warning("writing a pairing event failed (%s), attempt %d", exc, attempt)
                    time.sleep(0.2 * attempt)
            else:
                log.error("gave up writing a pairing event after 5 attempts")

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)


def run(settings: Settings, stop: threading.Event, workers: int = WORKERS) -> None:
    """Consume and sweep until `stop` is set (tests run this in a thread)."""
    clients = Clients(settings)
    announcer = Announcer()
    try:
        clients.ensure_indexes()
        service = PairingService.from_clients(clients)
        service.defer = announcer
        sweeper = threading.Thread(target=sweep_loop, args=(service, stop), name="pairing-sweeper", daemon=True)
        sweeper.start()
        consumer = DeviceEventsConsumer(service)
        # a small prefetch keeps a backlog in the broker, where the sweeper can see it (BrokerBacklog)
        consumer.prefetch = max(4, workers * 4)
        run_consumer(settings.amqp_url, consumer, stop, workers=workers)
        sweeper.join(timeout=5)
    finally:
        announcer.close()  # what was changed is also announced before we go
        clients.close()


def main(argv: list[str] | None = None) -> None:
    import argparse

    from runtime.logs import configure_logging
    from runtime.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m functions.pairing.listener")
    parser.add_argument("--workers", type=int, default=WORKERS, help="threads handling device messages")
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level)
    stop = stop_on_signals()
    log.info("pairing listener running with %d workers", args.workers)
    run(settings, stop, workers=max(1, args.workers))


if __name__ == "__main__":
    main()
