#!/usr/bin/env bash
# Installs everything turnkit and its tests need; safe to run again (it skips what is present).
#   system: coturn (reference peer + turnutils), nftables/iproute2/conntrack (NAT lab), chromium
#           and firefox-esr (browsers as TURN clients; TURNKIT_NO_CHROMIUM=1 skips both),
#           libnss3-tools (certutil: a test CA in a fresh Firefox profile), make, openssl,
#           clang/llvm/libbpf-dev (building the eBPF ChannelData offload), ethtool (its tests)
#           systemd (only `systemd-analyze verify` of packaging/systemd/*.service)
#   python: .venv with `pip install -e .[dev]`; .venv/build-floor with exactly the oldest
#           setuptools pyproject.toml declares (tests/packaging builds the wheel with it, offline)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v turnserver >/dev/null 2>&1 || need_apt+=(coturn)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v conntrack >/dev/null 2>&1 || need_apt+=(conntrack)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)  # the fleet tests
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
# the kernel offload (turn_relay/offload): built from C source with clang against libbpf's headers,
# loaded through libbpf.so.1; its tests switch veth checksum offloads with ethtool
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v llc >/dev/null 2>&1 || need_apt+=(llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
[ -f /usr/include/linux/bpf.h ] || need_apt+=(linux-libc-dev)
command -v ethtool >/dev/null 2>&1 || need_apt+=(ethtool)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
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
# the eBPF object: compiled here from the package's C source into the user's cache
if command -v clang >/dev/null 2>&1; then
  .venv/bin/python -m turn_relay.offload.build >/dev/null || echo "bootstrap: offload build failed" >&2
fi

# The declared build-system floor, e.g. "setuptools>=77.0.1" -> 77.0.1, in a venv of its own.
floor=$(.venv/bin/python -c 'import re, tomllib; r = tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]; print(next(re.fullmatch(r"setuptools>=([\w.]+)", x).group(1) for x in r if x.startswith("setuptools")))')
floor_stamp=.venv/build-floor/.setuptools-$floor
if [ ! -f "$floor_stamp" ]; then
  echo "bootstrap: .venv/build-floor with setuptools==$floor"
  rm -rf .venv/build-floor
  "$PY" -m venv .venv/build-floor
  .venv/build-floor/bin/pip install -q "setuptools==$floor" >/dev/null
  touch "$floor_stamp"
fi
