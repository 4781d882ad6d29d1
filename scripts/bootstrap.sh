#!/usr/bin/env bash
# Installs everything turnkit and its tests need; safe to run again (it skips what is present).
#   system: coturn (reference peer + turnutils), nftables/iproute2/conntrack (NAT lab), chromium
#           and firefox-esr (browsers as TURN clients; TURNKIT_NO_CHROMIUM=1 skips both),
#           libnss3-tools (certutil: a test CA in a fresh Firefox profile), make, openssl
#   python: .venv with `pip install -e .[dev]`
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v turnserver >/dev/null 2>&1 || need_apt+=(coturn)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v conntrack >/dev/null 2>&1 || need_apt+=(conntrack)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
# a real browser as a TURN client in tests/interop/test_turn_chromium.py (skipped without it)
[ -x /usr/bin/chromium ] || [ -n "${TURNKIT_NO_CHROMIUM:-}" ] || need_apt+=(chromium fonts-liberation)
# a second, independent WebRTC stack for the group-call tests (tests/interop/test_browser_mesh_*)
[ -x /usr/bin/firefox-esr ] || [ -n "${TURNKIT_NO_CHROMIUM:-}" ] || need_apt+=(firefox-esr)
command -v certutil >/dev/null 2>&1 || [ -n "${TURNKIT_NO_CHROMIUM:-}" ] || need_apt+=(libnss3-tools)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "bootstrap: installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
  # the Debian package enables a coturn service; turnkit only uses its binaries
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now coturn >/dev/null 2>&1 || true; fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.turnkit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: pip install -e .[dev]"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
