#!/usr/bin/env bash
# Create (or update) the RabbitMQ user of one NAS device, allowed exactly what the device protocol needs:
#   - consume its own queue device.<serial> (and declare/bind it, with binding key device.<serial> only)
#   - publish to pcloud.device-events, with routing keys event.<serial>.* only (topic authorisation)
# and nothing else: no other queue, no other exchange, no other serial.
#
#   infra/rabbitmq/add-device-user.sh SERIAL [VHOST] [PASSWORD]
#
# VHOST defaults to "/", PASSWORD to a fresh random one. Prints the device's AMQP URL (keep it secret).
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
ctl() { rabbitmqctl -q "$@"; }

if ctl list_users | cut -f1 | grep -qx "$user"; then
  ctl change_password "$user" "$password"
else
  ctl add_user "$user" "$password"
fi
ctl set_user_tags "$user"
# configure: only its own queue. write: publish to the events exchange, bind its own queue.
# read: consume its own queue, bind from the devices exchange.
ctl set_permissions -p "$vhost" "$user" "^$queue\$" "^(pcloud\\.device-events|$queue)\$" "^($queue|pcloud\\.devices)\$"
# topic authorisation: which routing keys it may publish with / bind with
ctl set_topic_permissions -p "$vhost" "$user" pcloud.device-events "^event\\.$serial\\.[a-z.]+\$" "^\$"
ctl set_topic_permissions -p "$vhost" "$user" pcloud.devices "^\$" "^$queue\$"

enc_vhost=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$vhost")
echo "amqp://$user:$password@${PCLOUD_AMQP_HOST:-127.0.0.1:5672}/$enc_vhost"
