#!/usr/bin/env bash
# What only the test suite needs beyond `make run`: Debian's chromium and its driver for browser tests, and a Java
# runtime for OpenAPI Generator (the Dart client test).
set -euo pipefail
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test-deps: installing chromium from Debian's packages" >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium chromium-driver >/dev/null
  else
    echo "test-deps: chromium missing; browser tests will be skipped" >&2
  fi
fi
if ! command -v java >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test-deps: installing a Java runtime from Debian's packages" >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq default-jre-headless >/dev/null
  else
    echo "test-deps: java missing; the Dart client generation test will be skipped" >&2
  fi
fi
