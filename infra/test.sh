#!/usr/bin/env bash
# `make test` after services.sh: the suite gets its own freshly started MongoDB wire server (SecantusDB,
# ephemeral storage) so every run starts from a clean, fast database; it is stopped when the run ends.
# Set PCLOUD_TEST_MONGO_URL (e.g. mongodb://127.0.0.1:27017/) to run against a server of your own instead.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
pid=""
if [ -z "${PCLOUD_TEST_MONGO_URL:-}" ]; then
  port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p var/logs
  "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path :memory: --log-level WARNING \
    --oplog-max-entries 20000 --oplog-retention-seconds 900 >>var/logs/secantusdb-test.log 2>&1 &
  pid=$!
  trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  export PCLOUD_TEST_MONGO_URL="mongodb://127.0.0.1:$port/"
fi
if [ $# -eq 0 ]; then set -- tests; fi
"$VENV/bin/pytest" -n 2 "$@"
status=$?
[ $status -eq 5 ] && { echo "test: pytest collected no tests" >&2; exit 1; }
exit $status
