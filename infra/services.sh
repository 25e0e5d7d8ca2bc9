#!/usr/bin/env bash
# Make sure MongoDB (SecantusDB), Redis and RabbitMQ answer on loopback.
# Uses running ones; else starts installed ones; else installs Debian's packages when root.
# SecantusDB (GPL) runs as its own process from the venv; it is never imported by PCloud.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${PCLOUD_DATA_DIR:-./var}"
MONGO_PORT="${PCLOUD_EMBEDDED_MONGO_PORT:-27017}"
VENV="${VENV:-.venv}"
STARTED="${PCLOUD_STARTED_FILE:-$DATA_DIR/started-services}"
mkdir -p "$DATA_DIR/logs" "$DATA_DIR/mongo"
: >"$STARTED"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # name port seconds
  for _ in $(seq 1 $(( $3 * 5 ))); do port_open "$2" && return 0; sleep 0.2; done
  echo "services: $1 did not come up on 127.0.0.1:$2 within $3s" >&2; return 1
}
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "services: $* missing and I cannot install it here (need root on Debian/Ubuntu)." >&2
    echo "services: start the dependencies with: docker compose -f infra/docker-compose.yml up -d" >&2
    exit 1
  fi
  echo "services: installing $* from Debian's packages" >&2
  [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ] \
    || apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
}

# Redis
if ! port_open 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "${TMPDIR:-/tmp}" --logfile "$(realpath "$DATA_DIR")/logs/redis.log"
  wait_port redis 6379 20
  echo redis >>"$STARTED"
fi

# RabbitMQ, with its MQTT plugin for small devices (docs/device-protocol.md "MQTT"): loopback, no anonymous
# logins. The port is PCLOUD_MQTT_PORT, else 1883, else (another MQTT broker holds 1883) the first free of
# 1884-1899; it goes into rabbitmq.conf so the broker keeps it across restarts.
RABBIT_CONF="${RABBITMQ_CONFIG_FILE:-/etc/rabbitmq/rabbitmq.conf}"
rabbit_mqtt_port() { # the port RabbitMQ's MQTT listener is on, if any
  rabbitmq-diagnostics -q listeners 2>/dev/null | sed -n 's/.*port: \([0-9]*\), protocol: mqtt.*/\1/p' | head -1
}
choose_mqtt_port() {
  if [ -n "${PCLOUD_MQTT_PORT:-}" ]; then echo "$PCLOUD_MQTT_PORT"; return; fi
  for p in 1883 $(seq 1884 1899); do port_open "$p" || { echo "$p"; return; }; done
  echo "services: no free port for MQTT in 1883-1899" >&2; return 1
}
write_mqtt_conf() { # port: replace our lines in rabbitmq.conf (read at the broker's next start)
  [ -w "$(dirname "$RABBIT_CONF")" ] || { echo "services: cannot write $RABBIT_CONF; MQTT port $1 lasts until the broker restarts" >&2; return 0; }
  touch "$RABBIT_CONF"
  sed -i '/# PCloud (infra\/services.sh): MQTT/d; /^mqtt\.listeners\.tcp\.default/d; /^mqtt\.allow_anonymous/d' "$RABBIT_CONF"
  printf '# PCloud (infra/services.sh): MQTT for small devices on loopback, no anonymous logins\nmqtt.listeners.tcp.default = 127.0.0.1:%s\nmqtt.allow_anonymous = false\n' "$1" >>"$RABBIT_CONF"
}
if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  if mqtt_port=$(choose_mqtt_port) && write_mqtt_conf "$mqtt_port" \
      && rabbitmq-plugins enable --offline rabbitmq_mqtt >/dev/null 2>&1; then :; else
    echo "services: could not enable rabbitmq_mqtt (MQTT devices will not connect)" >&2
  fi
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port rabbitmq 5672 60
  echo rabbitmq >>"$STARTED"
elif command -v rabbitmq-plugins >/dev/null && [ -z "$(rabbit_mqtt_port)" ]; then
  # a broker that runs without it: set the listener before the plugin starts (a running broker does not
  # re-read rabbitmq.conf), then enable it
  if mqtt_port=$(choose_mqtt_port) && write_mqtt_conf "$mqtt_port" && rabbitmqctl -q eval "
      ok = case application:load(rabbitmq_mqtt) of ok -> ok; {error, {already_loaded, _}} -> ok end,
      ok = application:set_env(rabbitmq_mqtt, tcp_listeners, [{\"127.0.0.1\", $mqtt_port}]),
      ok = application:set_env(rabbitmq_mqtt, allow_anonymous, false)." >/dev/null 2>&1 \
      && rabbitmq-plugins -q enable rabbitmq_mqtt >/dev/null 2>&1 && wait_port mqtt "$mqtt_port" 30; then
    echo "services: enabled rabbitmq_mqtt on 127.0.0.1:$mqtt_port" >&2
  else
    echo "services: could not enable rabbitmq_mqtt on the running broker (MQTT devices will not connect)" >&2
  fi
fi

# MongoDB wire server: any mongod set through PCLOUD_MONGO_URL wins; else embedded SecantusDB.
if [ -z "${PCLOUD_MONGO_URL:-}" ] && ! port_open "$MONGO_PORT"; then
  [ -x "$VENV/bin/secantusd-py" ] || { echo "services: $VENV/bin/secantusd-py missing: run make install" >&2; exit 1; }
  nohup "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path "$DATA_DIR/mongo" \
    --log-level WARNING --oplog-max-entries 20000 --oplog-retention-seconds 900 >>"$DATA_DIR/logs/secantusdb.log" 2>&1 &
  echo $! >"$DATA_DIR/secantusdb.pid"
  wait_port secantusdb "$MONGO_PORT" 60
  echo secantusdb >>"$STARTED"
fi
echo "services: redis, rabbitmq and mongodb answer on loopback"
