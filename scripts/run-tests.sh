#!/usr/bin/env bash
# Runs the whole test suite (every tier: unit, interop, natlab). Exit 5 (no tests collected) fails.
#
# As root, pytest runs in a fresh network namespace that holds only loopback (`unshare -n`), so no
# test can reach a real STUN/TURN/DNS server whatever a product default says; the NAT lab builds its
# own namespaces from there. Set TURNKIT_TEST_HOST_NETWORK=1 to run in the current namespace.
set -uo pipefail
cd "$(dirname "$0")/.."
cmd=(.venv/bin/python -m pytest "$@")
if [ "$(id -u)" = 0 ] && [ -z "${TURNKIT_TEST_HOST_NETWORK:-}" ] && command -v unshare >/dev/null 2>&1 \
   && unshare -n true 2>/dev/null; then
  echo "run-tests: isolated network namespace (loopback only)"
  unshare -n bash -c 'ip link set lo up && exec "$@"' run-tests "${cmd[@]}"
  rc=$?
else
  "${cmd[@]}"
  rc=$?
fi
if [ "$rc" = 5 ]; then echo "run-tests: pytest collected no tests; failing" >&2; exit 1; fi
exit "$rc"
