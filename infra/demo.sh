#!/usr/bin/env bash
# Demo sign-in for `make run` (no Google project needed): a local stand-in for Google on loopback.
#   source infra/demo.sh        (infra/run.sh, before the Procfile starts) exports the gateway's settings when
#                               no real provider is configured and PCLOUD_BIND is loopback; otherwise nothing.
#   bash infra/demo.sh serve    (Procfile `demo-google`) runs the stand-in when those settings are exported,
#                               else idles so the other processes keep running.
VENV_PY="${VENV:-.venv}/bin/python"
DEMO_PORT="${PCLOUD_DEMO_GOOGLE_PORT:-8910}"

if [ "${1:-}" = serve ]; then
  if [ "${PCLOUD_DEMO_SIGNIN:-}" = true ] && [ -n "${PCLOUD_GOOGLE_CLIENT_SECRET:-}" ]; then
    exec "$VENV_PY" -m devtools.google --host 127.0.0.1 --port "$DEMO_PORT" \
      --client-id="$PCLOUD_GOOGLE_CLIENT_ID" --client-secret="$PCLOUD_GOOGLE_CLIENT_SECRET"
  fi
  echo "demo-google: not needed (a real provider is configured or the gateway is not on loopback)"
  exec sleep infinity
fi

off=()
case "${PCLOUD_DEMO_SIGNIN:-}" in 0|false|no|off|FALSE|False) off=(--off) ;; esac
if demo_exports="$("$VENV_PY" -m functions.portal.demo plan --port "$DEMO_PORT" "${off[@]}")"; then
  eval "$demo_exports"
fi
unset demo_exports off
