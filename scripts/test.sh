#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian/Ubuntu machine with Rust:
# installs redis-server, openssl and chromium when they are missing (the tests
# start their own private servers on free loopback ports; nothing needs to be
# running), then runs every test of the workspace. Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: redis-server (real servers, started by the
# tests themselves), openssl (a self-signed certificate for the TLS test) and
# chromium (headless, at /usr/bin/chromium: the lms-web dashboard test).
missing=()
command -v "${REDIS_SERVER_BIN:-redis-server}" >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing missing Debian packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"${REDIS_SERVER_BIN:-redis-server}" --version
/usr/bin/chromium --version 2>/dev/null

cargo test --workspace "$@"
