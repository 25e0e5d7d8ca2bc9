#!/usr/bin/env bash
# `make run`: start what is missing, run every Procfile process, and on Ctrl-C stop all of it again
# (including the services this run started; services that were already running are left alone).
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${PCLOUD_DATA_DIR:-./var}"
export PCLOUD_STARTED_FILE="$DATA_DIR/started-services"
bash infra/services.sh || exit 1

stop_started() {
  grep -qx secantusdb "$PCLOUD_STARTED_FILE" 2>/dev/null && [ -f "$DATA_DIR/secantusdb.pid" ] \
    && kill "$(cat "$DATA_DIR/secantusdb.pid")" 2>/dev/null && echo "run: stopped secantusdb"
  grep -qx redis "$PCLOUD_STARTED_FILE" 2>/dev/null && redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 \
    && echo "run: stopped redis"
  grep -qx rabbitmq "$PCLOUD_STARTED_FILE" 2>/dev/null && rabbitmqctl -q stop >/dev/null 2>&1 \
    && echo "run: stopped rabbitmq"
  rm -f "$PCLOUD_STARTED_FILE"
}
trap stop_started EXIT
trap 'exit 130' INT TERM
source infra/demo.sh  # demo sign-in (local Google stand-in) when no real provider is configured, on loopback only
.venv/bin/honcho -f Procfile start
