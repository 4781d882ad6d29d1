#!/usr/bin/env bash
# The main job on an embedded default: a TURN relay and a STUN server (RFC 5780 mode) on loopback,
# then rtccheck against both. Everything stays on 127.0.0.0/8 and is stopped at the end.
#   TURNKIT_DEMO_PORT   relay port (default 3478); the STUN server uses PORT+2 and PORT+3
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
BIN=.venv/bin
PORT=${TURNKIT_DEMO_PORT:-3478}
STUN_PORT=$((PORT + 2))
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# a throwaway REST secret, only in a file readable by us
umask 077
head -c 24 /dev/urandom | base64 > "$work/rest-secret"

echo "demo: turn-relay on 127.0.0.1:$PORT (UDP+TCP), stun-server on 127.0.0.1/127.0.0.2:$STUN_PORT"
# default peer policy: loopback peers are refused, yet relay-to-relay data (how rtccheck pushes data
# through one relay) works, because a relay's own relay addresses are always allowed
$BIN/turn-relay serve --listen 127.0.0.1 --port "$PORT" --secret-file "$work/rest-secret" \
  >"$work/relay.log" 2>&1 &
pids+=($!)
$BIN/stun-server --listen "127.0.0.1:$STUN_PORT" --alternate 127.0.0.2 >"$work/stun.log" 2>&1 &
pids+=($!)

# wait until both answer a Binding request (at most 10 s)
answers() {
  $BIN/python - "$@" <<'PY'
import socket, sys
from stun_server.wire import Message, MessageClass, Method, encode, parse
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        request = Message(Method.BINDING, MessageClass.REQUEST)
        sock.sendto(encode(request), (host, int(port)))
        reply = parse(sock.recv(2048))
        assert reply.transaction_id == request.transaction_id
PY
}
for _ in $(seq 50); do
  if answers "127.0.0.1:$PORT" "127.0.0.1:$STUN_PORT" 2>/dev/null; then break; fi
  sleep 0.2
done

echo "demo: credentials a calling app would get (turn-relay credentials):"
$BIN/turn-relay credentials --user alice --ttl 600 --secret-file "$work/rest-secret" \
  --url "turn:127.0.0.1:$PORT?transport=udp" --url "turn:127.0.0.1:$PORT?transport=tcp"
echo
echo "demo: rtccheck against them"
set +e
$BIN/rtccheck all \
  "stun:127.0.0.1:$STUN_PORT" \
  "turn:127.0.0.1:$PORT?transport=udp" "turn:127.0.0.1:$PORT?transport=tcp" \
  --secret-file "$work/rest-secret" --require relay-udp,relay-tcp
rc=$?
set -e
echo "demo: rtccheck exit code $rc (0 = every check passed)"
exit "$rc"
