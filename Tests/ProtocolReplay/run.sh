#!/bin/bash
# Start a fresh local stack in /tmp/docrun, replay docs/PROTOCOL.md against it, stop it.
# Usage: Tests/ProtocolReplay/run.sh     (after `swift build`; output also in /tmp/protocol-replay.txt)
set -u
DIR=/tmp/docrun
HERE=$(cd "$(dirname "$0")" && pwd)
if ss -ltn | grep -qE ':(7401|7402|7403)\b'; then echo "ports 7401-7403 are taken: is another stack running?"; exit 2; fi
rm -rf "$DIR"
cd "$HERE/../.." || exit 2
# the fact sheet examples were run with a cut-down template (PROTOCOL.md §7.3; its SHA-256 is the
# document's template_digest 45132c69…)
ROOTCAUSES_FACTSHEET_TEMPLATE=$HERE/factsheet-cutdown.md \
  nohup .build/debug/rootcauses up --data-dir "$DIR" > /tmp/docrun.log 2>&1 &
UP=$!
echo "rootcauses up: pid $UP"
stop() {
  kill -INT "$UP" 2>/dev/null
  for i in $(seq 1 60); do kill -0 "$UP" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$UP" 2>/dev/null && { echo "up did not stop on SIGINT; SIGTERM"; kill -TERM "$UP"; sleep 5; }
  for i in $(seq 1 20); do pgrep -f -- "$DIR" >/dev/null || break; sleep 0.5; done   # up's watchdog exits within ~1 s
  left=$(pgrep -f -- "$DIR" || true)
  if [ -n "$left" ]; then echo "left behind (pids): $left"; ps -o pid,args -p $left; else echo "stack stopped; nothing of $DIR left"; fi
}
trap stop EXIT
ready=0
for i in $(seq 1 120); do
  if [ -s "$DIR/admin.token" ] && python3 - <<'PY' 2>/dev/null
import socket, json, sys
for port in (7401, 7402, 7403):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(b'{"op":"ready","id":1}\n')
    if not json.loads(s.makefile().readline()).get("ready"): sys.exit(1)
PY
  then ready=1; break; fi
  kill -0 "$UP" 2>/dev/null || { echo "rootcauses up exited:"; tail -20 /tmp/docrun.log; exit 2; }
  sleep 1
done
[ $ready = 1 ] || { echo "stack not ready after 120 s"; tail -20 /tmp/docrun.log; exit 2; }
echo "stack ready after ~${i}s"
python3 "$HERE/replay.py" --data-dir "$DIR" "$@" 2>&1 | tee /tmp/protocol-replay.txt
exit "${PIPESTATUS[0]}"
