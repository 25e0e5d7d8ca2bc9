#!/usr/bin/env bash
# Run one Procfile process in the foreground (what systemd's pcloud@NAME.service starts):
#   infra/procfile-exec.sh web          # exec's the Procfile's `web:` command
#   infra/procfile-exec.sh --print web  # prints it instead
# The demo processes (demo NAS, demo Google sign-in) are refused: they are for `make run` on a laptop only.
set -euo pipefail
cd "$(dirname "$0")/.."
print=""
if [ "${1:-}" = "--print" ]; then print=1; shift; fi
name="${1:?usage: procfile-exec.sh [--print] NAME}"
case "$name" in
  nas|demo-*) echo "procfile-exec: $name is a demo process; it is not run in production" >&2; exit 2 ;;
esac
line=$(grep -E "^${name}:" Procfile | head -n 1 || true)
if [ -z "$line" ]; then echo "procfile-exec: no Procfile line named $name" >&2; exit 2; fi
command="${line#*:}"
command="${command#"${command%%[![:space:]]*}"}"
command="${command#exec }"
if [ -n "$print" ]; then echo "$command"; exit 0; fi
# shellcheck disable=SC2086 # a Procfile command is words, split like the supervisor does
exec $command
