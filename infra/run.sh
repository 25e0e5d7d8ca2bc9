#!/usr/bin/env bash
# `make run`: start what is missing, run every Procfile process under supervisord (a process that dies is
# restarted, the others keep serving), and on Ctrl-C stop all of it again (including the services this run
# started; services that were already running are left alone). Each process logs to $DATA_DIR/logs/NAME.log;
# this terminal shows them all, prefixed with the process name, plus supervisord's own starts and exits.
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
# the gateway proxies /events/v1/stream to the Procfile's `stream` process (asyncio: no gateway thread per stream)
export PCLOUD_FUNCTION_STREAM_URL="${PCLOUD_FUNCTION_STREAM_URL:-http://${PCLOUD_STREAM_BIND:-127.0.0.1:8001}}"
source infra/demo.sh  # demo sign-in (local Google stand-in) when no real provider is configured, on loopback only

LOG_DIR="$DATA_DIR/logs"
conf=$(.venv/bin/python -m runtime.supervise --procfile Procfile --state-dir "$DATA_DIR/supervisor" \
  --log-dir "$LOG_DIR") || exit 1
# follow every process's log here; `tail -F` names the file before each chunk, awk turns that into a prefix
tail -n 0 -F "$LOG_DIR"/*.log 2>/dev/null > >(awk '
  /^==> .* <==$/ { name = $2; sub(/.*\//, "", name); sub(/\.log$/, "", name); next }
  NF { printf "%-12s | %s\n", name, $0; fflush() }') &
follower=$!
trap 'kill $follower 2>/dev/null; stop_started' EXIT
echo "run: supervising $(grep -c '^\[program:' "$conf") processes; status: .venv/bin/supervisorctl -c $conf status"
.venv/bin/supervisord -c "$conf" &
supervisor=$!
# Ctrl-C (SIGINT reaches supervisord too) or a TERM to this script: supervisord stops every process, then we
# stop the services this run started (EXIT trap)
trap 'kill -TERM $supervisor 2>/dev/null; wait $supervisor; exit 130' INT TERM
wait $supervisor
