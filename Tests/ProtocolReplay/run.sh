#!/bin/bash
# Starts a fresh local stack in a new temporary folder, replays docs/PROTOCOL.md against it,
# stops it. Usage: Tests/ProtocolReplay/run.sh (after `swift build`). The examples were made on
# `rootcauses up`'s default ports (7401-7403), so those must be free.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
for port in 7401 7402 7403; do
  if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port))!=0)"; then
    echo "port $port is taken: is another stack running?"; exit 2
  fi
done
DIR=$(mktemp -d /tmp/rootcauses-replay.XXXXXX)
cd "$HERE/../.." || exit 2
# the fact sheet examples were run with a cut-down template (PROTOCOL.md §7.3; its SHA-256 is the
# document's template_digest 45132c69…)
ROOTCAUSES_FACTSHEET_TEMPLATE=$HERE/factsheet-cutdown.md \
  nohup .build/debug/rootcauses up --data-dir "$DIR" > "$DIR/up.log" 2>&1 &
UP=$!
echo "rootcauses up: pid $UP"
stop() {
  kill -INT "$UP" 2>/dev/null
  for i in $(seq 1 60); do kill -0 "$UP" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$UP" 2>/dev/null && { echo "up did not stop on SIGINT; SIGTERM"; kill -TERM "$UP"; sleep 5; }
  for i in $(seq 1 20); do pgrep -f -- "$DIR" >/dev/null || break; sleep 0.5; done   # up's watchdog exits within ~1 s
  left=$(pgrep -f -- "$DIR" || true)
  if [ -n "$left" ]; then
    echo "left behind, now stopped: $left"; ps -o pid,args -p $left
    pkill -INT -f -- "$DIR"; sleep 3; pkill -KILL -f -- "$DIR"
  else
    echo "stack stopped; nothing of $DIR left (its logs and the replay's output stay there)"
  fi
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
  kill -0 "$UP" 2>/dev/null || { echo "rootcauses up exited:"; tail -20 "$DIR/up.log"; exit 2; }
  sleep 1
done
[ $ready = 1 ] || { echo "stack not ready after 120 s"; tail -20 "$DIR/up.log"; exit 2; }
echo "stack ready after ~${i}s"
python3 "$HERE/replay.py" --data-dir "$DIR" "$@" 2>&1 | tee "$DIR/replay.txt"
exit "${PIPESTATUS[0]}"
