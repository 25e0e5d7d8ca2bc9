#!/usr/bin/env bash
# Create (or update) the RabbitMQ user of one NAS device, allowed exactly what the device protocol needs:
#   - consume its own queue device.<serial> (and declare/bind it, with binding key device.<serial> only)
#   - publish to pcloud.device-events, with routing keys event.<serial>.* only (topic authorisation)
# and the same over MQTT (RabbitMQ's MQTT plugin, docs/device-protocol.md "MQTT"): client id device-<serial>,
# subscribe to device/<serial> only, publish to event/<serial>/<type> only (topic authorisation on amq.topic)
# and nothing else: no other queue, no other exchange, no other serial, no other topic.
#
#   infra/rabbitmq/add-device-user.sh SERIAL [VHOST] [PASSWORD]
#
# VHOST defaults to "/", PASSWORD to a fresh random one. Prints the device's AMQP URL, then its MQTT URL
# (keep both secret).
# Run as a user allowed to call rabbitmqctl (root or rabbitmq). See infra/rabbitmq/README.md.
set -euo pipefail

serial="${1:?usage: $0 SERIAL [VHOST] [PASSWORD]}"
vhost="${2:-/}"
password="${3:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)}"

# the serial goes into regular expressions and routing keys: the same rule as the server's (no ".", "#", "*")
if ! [[ "$serial" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]]; then
  echo "serial must be 1-64 letters, digits, '-' or '_' (starting with a letter or digit)" >&2
  exit 2
fi

user="device-$serial"
queue="device\\.$serial"
mqtt_queue="mqtt-subscription-device-${serial}qos[01]"  # the MQTT plugin's session queue of client device-SERIAL
ctl() { rabbitmqctl -q "$@"; }

if ctl list_users | cut -f1 | grep -qx "$user"; then
  ctl change_password "$user" "$password"
else
  ctl add_user "$user" "$password"
fi
ctl set_user_tags "$user"
# configure: only its own queue. write: publish to the events exchange, bind its own queue.
# read: consume its own queue, bind from the devices exchange.
# MQTT: its session queue (so only client id device-SERIAL can subscribe), amq.topic (the plugin's exchange).
ctl set_permissions -p "$vhost" "$user" "^($queue|$mqtt_queue)\$" \
  "^(pcloud\\.device-events|$queue|amq\\.topic|$mqtt_queue)\$" "^($queue|pcloud\\.devices|amq\\.topic|$mqtt_queue)\$"
# topic authorisation: which routing keys it may publish with / bind with
ctl set_topic_permissions -p "$vhost" "$user" pcloud.device-events "^event\\.$serial\\.[a-z.]+\$" "^\$"
ctl set_topic_permissions -p "$vhost" "$user" pcloud.devices "^\$" "^$queue\$"
# MQTT topics are routing keys on amq.topic: publish event/SERIAL/…, subscribe device/SERIAL
ctl set_topic_permissions -p "$vhost" "$user" amq.topic "^event\\.$serial\\.[a-z.]+\$" "^$queue\$"

enc_vhost=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$vhost")
echo "amqp://$user:$password@${PCLOUD_AMQP_HOST:-127.0.0.1:5672}/$enc_vhost"
# MQTT has no vhost in its URL: RabbitMQ reads the user name "VHOST:USER"
mqtt_user=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$vhost:$user")
echo "mqtt://$mqtt_user:$password@${PCLOUD_MQTT_HOST:-127.0.0.1:${PCLOUD_MQTT_PORT:-1883}}"
