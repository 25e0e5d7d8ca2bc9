"""The reference NAS bot: what a NAS box (or a Raspberry Pi) runs to be paired with a PCloud account.

    python -m devices.nas_agent --serial DEMO-NAS-1            # SIGUSR1 is the button
    kill -USR1 <pid>                                           # "press" it

It speaks the device protocol of docs/device-protocol.md over RabbitMQ and nothing else (AMQP, or MQTT with
`--mqtt-url mqtt://USER:PASSWORD@HOST:PORT` through the broker's MQTT plugin, devices/mqtt_link.py): says `hello` at
start and every 30 s, consumes its own durable queue `device.<serial>` (classic by default, `--queue-type
quorum` for a broker cluster; a queue that already exists is used as it is; acking after handling), "blinks"
(a log line and `<state-dir>/<serial>.led`) on `pair.request`, answers `pair.waiting`, and on a button
press before `expires_at` answers `pair.confirmed`. It runs two demo packages (devices/packages.py) whose
typed settings it reports (`packages.report`) and changes on `package.configure`, answering
`package.configure.ack`. When RabbitMQ goes away it reconnects with backoff;
its queue is durable and pending pairings are kept in `<state-dir>/<serial>.json`, so neither is lost.
On a Raspberry Pi, `--gpio-button PIN` / `--gpio-led PIN` use gpiozero for a real button and LED.
The broker side is devices/broker.py; nothing of the server is imported (a device lives outside it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from devices.broker import QUEUE_TYPES, EventSender, Reject, SendError, consume_own_queue
from devices.mqtt_link import MqttLink
from devices.packages import PackageState

log = logging.getLogger("nas_agent")

FIRMWARE = "pcloud-nas-agent/1.2"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class NasAgent:
    """One device: its queue consumer, its heartbeat, its button, its LED (a file unless on a Pi)."""

    def __init__(self, serial: str, amqp_url: str, state_dir: Path, model: str = "PCloud Reference NAS",
                 heartbeat_seconds: float = 30.0, auto_press: float | None = None, declare_queue: bool = True,
                 reconnect_max: float = 5.0, queue_type: str = "classic", packages: bool = True,
                 mqtt_url: str | None = None):
        self.serial = serial
        self.amqp_url = amqp_url
        self.state_dir = Path(state_dir)
        self.model = model
        self.heartbeat_seconds = heartbeat_seconds
        self.auto_press = auto_press
        self.declare_queue = declare_queue
        self.reconnect_max = reconnect_max
        self.queue_type = queue_type
        # a provisioned device user may not declare exchanges; a development device creates what it needs
        self.link = MqttLink(mqtt_url, serial, reconnect_max=reconnect_max) if mqtt_url else None
        self.publisher = self.link or EventSender(amqp_url, declare=declare_queue)
        self.stop = threading.Event()
        self.button = threading.Event()
        self._lock = threading.Lock()
        self.led_hook = None  # a callable(state) for real hardware
        self.pending: dict[str, dict] = {}  # session_id -> {"expires_at", "user", "pressed"}
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._load_state()
        self.packages = PackageState(self.state_dir / f"{serial}.packages.json") if packages else None
        self.report_due = threading.Event()  # a packages.report to send with the next heartbeat
        if self.packages is not None:
            self.report_due.set()

    # ---------------------------------------------------------------------------------------- state

    @property
    def state_file(self) -> Path:
        return self.state_dir / f"{self.serial}.json"

    @property
    def led_file(self) -> Path:
        return self.state_dir / f"{self.serial}.led"

    def _load_state(self) -> None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        for sid, item in (data.get("pending") or {}).items():
            expires = _parse_time(item.get("expires_at"))
            if expires and expires > _now():
                self.pending[sid] = item
        for sid, item in self.pending.items():
            log.info("resuming pending pairing %s (press the button before %s)", sid, item.get("expires_at"))
            self._led(f"blinking {sid}")

    def _save_state(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pending": self.pending}))
        os.replace(tmp, self.state_file)

    def _led(self, state: str) -> None:
        tmp = self.led_file.with_suffix(".led.tmp")
        tmp.write_text(state + "\n")
        os.replace(tmp, self.led_file)
        if self.led_hook:
            self.led_hook(state)

    # ------------------------------------------------------------------------------------- protocol

    def send(self, type_: str, **fields) -> None:
        """Publish one event (confirmed, persistent); SendError when the broker did not take it."""
        self.publisher.send(self.serial, type_, **fields)

    def handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "pair.request":
            sid = message.get("session_id")
            expires = _parse_time(message.get("expires_at"))
            if not isinstance(sid, str) or expires is None:
                raise Reject("pair.request without session_id or expires_at")
            if expires <= _now():
                log.info("pair.request %s arrived after it expired; rejecting", sid)
                self.send("pair.rejected", session_id=sid, reason="expired")
                return
            user = message.get("user") or {}
            with self._lock:
                known = self.pending.get(sid)
                if known is None:
                    self.pending[sid] = {"expires_at": message["expires_at"], "user": user, "pressed": False}
            # answer first (a person is watching the app), then persist: the request is acked only after both,
            # so a crash in between means a redelivery, never a lost pairing
            self.send("pair.waiting", session_id=sid)
            with self._lock:
                self._save_state()
            log.info("LED blinking: %s wants to pair (session %s) - press the button", user.get("name") or "someone",
                     sid)
            self._led(f"blinking {sid}")
            if known is not None and known.get("pressed"):
                self.button.set()  # a redelivered request after a press we could not send yet
            elif self.auto_press is not None:
                timer = threading.Timer(self.auto_press, self.press)
                timer.daemon = True
                timer.start()
        elif kind == "pair.completed":
            sid = message.get("session_id")
            with self._lock:
                self.pending.pop(sid, None)
                self._save_state()
            log.info("paired (session %s)", sid)
            self._led("paired")
        elif kind == "unpaired":
            log.info("unpaired by the owner")
            self._led("unpaired")
        elif kind == "package.configure" and self.packages is not None:
            self._configure(message)
        else:
            raise Reject(f"unknown message type {kind!r}")

    def _configure(self, message: dict) -> None:
        """Apply a settings change (all or nothing), ack it by id, then report the packages as they now are."""
        change_id = message.get("id")
        if not isinstance(change_id, str) or not change_id:
            raise Reject("package.configure without id")
        expires = _parse_time(message.get("expires_at"))
        with self._lock:
            ack, changed = self.packages.apply(change_id, message.get("package"), message.get("settings"),
                                               expired=expires is None or expires <= _now())
        self.send("package.configure.ack", id=change_id, **ack)
        log.info("package.configure %s for %s: %s", change_id, message.get("package"),
                 "applied" if ack["ok"] else ack.get("reason"))
        if changed:
            try:
                self.send_report()
            except SendError as exc:  # the ack went out; the heartbeat sends the report when it can
                log.warning("packages.report not sent (%s); retrying with the next hello", exc)

    def send_report(self) -> None:
        """packages.report: every package with its declared settings and current values."""
        self.report_due.clear()
        try:
            with self._lock:
                packages = self.packages.report()
            self.send("packages.report", packages=packages)
        except SendError:
            self.report_due.set()
            raise

    def press(self) -> None:
        """The button (SIGUSR1, a GPIO callback, or auto-press)."""
        self.button.set()

    def _confirm_pending(self) -> bool:
        """Send pair.confirmed for every pressed, unexpired session; False if the broker was away."""
        now = _now()
        with self._lock:
            for sid, item in list(self.pending.items()):
                expires = _parse_time(item.get("expires_at"))
                if expires is None or expires <= now:
                    log.info("session %s expired before the press; the server says so too", sid)
                    self.pending.pop(sid)
                    continue
                item["pressed"] = True
            self._save_state()
            todo = [sid for sid, item in self.pending.items() if item.get("pressed") and not item.get("sent")]
        if not self.pending:
            self._led("off")
        ok = True
        for sid in todo:
            try:
                self.send("pair.confirmed", session_id=sid)
            except SendError as exc:
                log.warning("could not send pair.confirmed for %s (%s); retrying", sid, exc)
                ok = False
                continue
            with self._lock:
                if sid in self.pending:
                    self.pending[sid]["sent"] = True
                    self._save_state()
            log.info("button pressed: confirmed session %s", sid)
        return ok

    # ---------------------------------------------------------------------------------------- loops

    def _button_loop(self) -> None:
        delay = 0.5
        while not self.stop.is_set():
            if not self.button.wait(0.5):
                continue
            if self._confirm_pending():
                self.button.clear()
                delay = 0.5
            else:
                self.stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max)

    def _heartbeat_loop(self) -> None:
        delay = 0.5
        while not self.stop.is_set():
            try:
                self.send("hello", model=self.model, firmware=FIRMWARE)
                if self.report_due.is_set():
                    self.send_report()
                delay = 0.5
                self.stop.wait(self.heartbeat_seconds)
            except SendError as exc:
                log.warning("hello not sent (%s); retrying in %.1fs", exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max)

    def run(self) -> None:
        """Until stop is set: heartbeat and button threads, and the queue consumer in this thread."""
        threads = [threading.Thread(target=self._heartbeat_loop, name=f"hello-{self.serial}", daemon=True),
                   threading.Thread(target=self._button_loop, name=f"button-{self.serial}", daemon=True)]
        for t in threads:
            t.start()
        if not self.led_file.exists():
            self._led("off")
        try:
            if self.link is not None:
                self.link.run(self.handle, self.stop)
            else:
                consume_own_queue(self.amqp_url, self.serial, self.handle, self.stop,
                                  queue_type=self.queue_type if self.declare_queue else None,
                                  reconnect_max=self.reconnect_max)
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=5)
            try:  # stopping cleanly: offline now rather than after 90 s of silence (a lost MQTT link: its will)
                self.send("offline")
            except SendError as exc:
                log.info("offline not sent (%s); the server notices the silence", exc)
            self.publisher.close()


def _gpio(agent: NasAgent, button_pin: int | None, led_pin: int | None) -> None:
    """Real hardware on a Raspberry Pi (gpiozero is only needed there)."""
    if button_pin is None and led_pin is None:
        return
    import gpiozero  # noqa: PLC0415 - optional, Pi only

    if button_pin is not None:
        button = gpiozero.Button(button_pin)
        button.when_pressed = agent.press
    if led_pin is not None:
        led = gpiozero.LED(led_pin)
        agent.led_hook = lambda state: led.blink() if state.startswith("blinking") else (
            led.on() if state == "paired" else led.off())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serial", action="append", required=True, help="device serial (repeat to run several)")
    parser.add_argument("--amqp-url", help="broker URL (default: PCLOUD_AMQP_URL)")
    parser.add_argument("--state-dir", help="LED and pending-pairing files (default: $PCLOUD_DATA_DIR/nas)")
    parser.add_argument("--model", default="PCloud Reference NAS")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="seconds between hellos")
    parser.add_argument("--auto-press", type=float, default=None, help="press the button this long after a request")
    parser.add_argument("--no-declare", action="store_true", help="queue is provisioned (infra/rabbitmq)")
    parser.add_argument("--queue-type", choices=QUEUE_TYPES, default="classic",
                        help="the type this device declares its queue with (an existing queue is used as it is)")
    parser.add_argument("--mqtt-url", help="speak MQTT instead of AMQP: mqtt://USER:PASSWORD@HOST:PORT "
                        "(RabbitMQ's MQTT plugin; USER may be VHOST:USER)")
    parser.add_argument("--no-packages", action="store_true", help="run no demo packages (report none)")
    parser.add_argument("--gpio-button", type=int, default=None)
    parser.add_argument("--gpio-led", type=int, default=None)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s nas %(threadName)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    # the same variables as the server's, read here directly: the agent imports nothing of the server
    url = args.amqp_url or os.environ.get("PCLOUD_AMQP_URL") or DEFAULT_AMQP_URL
    state_dir = Path(args.state_dir) if args.state_dir else Path(os.environ.get("PCLOUD_DATA_DIR") or "var") / "nas"
    agents = [NasAgent(serial, url, state_dir, args.model, args.heartbeat, args.auto_press, not args.no_declare,
                       queue_type=args.queue_type, packages=not args.no_packages, mqtt_url=args.mqtt_url)
              for serial in args.serial]
    if len(agents) == 1:
        _gpio(agents[0], args.gpio_button, args.gpio_led)

    def stop_all(*_):
        for agent in agents:
            agent.stop.set()

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGUSR1, lambda *_: [a.press() for a in agents])
    threads = [threading.Thread(target=a.run, name=f"nas-{a.serial}", daemon=True) for a in agents]
    for t in threads:
        t.start()
    log.info("NAS agent running for %s (pid %d; SIGUSR1 presses the button)", ", ".join(args.serial), os.getpid())
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)


if __name__ == "__main__":
    main()
