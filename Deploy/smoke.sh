#!/usr/bin/env bash
# The deployment, end to end, on this machine: builds the images (host-built release binaries
# packed into the Dockerfile's runtime stage), starts Deploy/compose.yaml with podman-compose
# (PostgreSQL, intake, aggregation x3, reporting), submits the sample data through the published
# port, checks the fact sheet against the seed, kills one aggregation container, checks that
# its work moves to the others, and tears everything down. Run by hand (root, podman, network to
# Debian's mirror and PyPI); not part of .ci/run. Prints a summary with times and image sizes.
#
#   Deploy/smoke.sh                 # everything
#   SMOKE_SKIP_BUILD=1 Deploy/smoke.sh   # reuse the .build/release binaries already built
#
# Podman here: rootful, runc, capped rlimits, a local Debian base image (no registry can be
# reached). ../shared/containers/setup-podman.sh prepares all that; CONTAINERS_CONF must name its
# containers.conf (the script runs it when CONTAINERS_CONF is unset and it is there).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${SMOKE_WORK:-/tmp/rootcauses-smoke}
PROJECT=rootcauses-smoke
IMAGE=localhost/rootcauses:0.6.0
PG_IMAGE=localhost/rootcauses-postgres:smoke
BASE=${SMOKE_BASE_IMAGE:-localhost/bookworm-minbase:latest}
mkdir -p "$WORK"
START=$SECONDS
declare -a SUMMARY=()
say() { printf '[smoke +%4ds] %s\n' $((SECONDS - START)) "$*"; }
note() { SUMMARY+=("$*"); say "$*"; }
fail() { say "FAILED: $*"; exit 1; }

if [ -z "${CONTAINERS_CONF:-}" ]; then
  SETUP=$ROOT/../shared/containers/setup-podman.sh
  [ -x "$SETUP" ] || [ -f "$SETUP" ] || fail "set CONTAINERS_CONF (see ../shared/containers/README.md)"
  eval "$(bash "$SETUP" "$WORK/podman" | tail -1)"
fi
export CONTAINERS_CONF
command -v podman >/dev/null || fail "podman is not installed"
if [ ! -x "$WORK/venv/bin/podman-compose" ]; then
  say "installing podman-compose (PyPI) into $WORK/venv"
  python3 -m venv "$WORK/venv" || fail "python3 -m venv"
  "$WORK/venv/bin/pip" install -q podman-compose==1.6.0 || fail "pip install podman-compose"
fi
COMPOSE=("$WORK/venv/bin/podman-compose" -p "$PROJECT" -f "$ROOT/Deploy/compose.yaml")
note "podman $(podman version --format '{{.Client.Version}}'), $("$WORK/venv/bin/podman-compose" --version 2>/dev/null | grep -i 'podman-compose' | head -1)"

# Leave nothing behind, whatever happens.
cleanup() {
  status=$?
  say "tearing down (container logs kept in $WORK/logs)"
  mkdir -p "$WORK/logs"
  for c in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
    podman logs "$c" >"$WORK/logs/$c.log" 2>&1 || true
  done
  "${COMPOSE[@]}" down -v -t 10 >"$WORK/down.log" 2>&1 || true
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
  left=$(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}' | wc -l)
  [ "$left" = 0 ] || say "WARNING: $left containers left"
  if [ $status = 0 ]; then
    echo; echo "== smoke test passed in $((SECONDS - START)) s =="; printf '  %s\n' "${SUMMARY[@]}"
  fi
}
trap cleanup EXIT

# 1. Host-built release binaries (static Swift runtime: the image needs only libpq5).
if [ -z "${SMOKE_SKIP_BUILD:-}" ]; then
  say "building release binaries"
  t=$SECONDS
  # One product per build: SwiftPM builds only the last of several --product flags.
  for p in intake aggregation reporting rootcauses; do
    swift build -c release --static-swift-stdlib --product "$p" >>"$WORK/build.log" 2>&1 \
      || { tail -30 "$WORK/build.log"; fail "swift build"; }
  done
  note "release build: $((SECONDS - t)) s"
fi
BIN=$(swift build -c release --show-bin-path)
mkdir -p Deploy/bin
# Stripped: the symbols are most of a binary's size.
for p in intake aggregation reporting rootcauses; do install -s -m 0755 "$BIN/$p" Deploy/bin/; done
CLI=$ROOT/Deploy/bin/rootcauses

# 2. Images.
t=$SECONDS
podman build -q --network=host -f Deploy/Dockerfile --target runtime-prebuilt \
  --build-arg RUNTIME_BASE="$BASE" -t "$IMAGE" . >"$WORK/image.log" 2>&1 || { tail -30 "$WORK/image.log"; fail "image build"; }
note "image $IMAGE built in $((SECONDS - t)) s: $(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec) (base $(podman image inspect --format '{{.Size}}' "$BASE" | numfmt --to=iec))"
t=$SECONDS
podman build -q --network=host -f Deploy/postgres/Dockerfile --build-arg BASE="$BASE" -t "$PG_IMAGE" . \
  >"$WORK/pg-image.log" 2>&1 || { tail -30 "$WORK/pg-image.log"; fail "postgres image build"; }
note "image $PG_IMAGE built in $((SECONDS - t)) s: $(podman image inspect --format '{{.Size}}' "$PG_IMAGE" | numfmt --to=iec)"
[ "$(podman run --rm "$IMAGE" id -u)" = 10001 ] || fail "the image does not run as uid 10001"
note "runs as uid 10001; dynamic libraries: $(podman run --rm --entrypoint sh "$IMAGE" -c 'ldd /usr/local/bin/intake | wc -l') (ldd lines), none missing: $(podman run --rm --entrypoint sh "$IMAGE" -c 'ldd /usr/local/bin/* | grep -c "not found" || true') missing"

# 3. Compose up, secrets from the environment.
for port in 7401 7403 9401 9403; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then fail "port $port is in use (another stack?)"; fi
done
for v in DB OWNER_DB INTAKE_DB AGGREGATION_DB REPORTING_DB; do export "ROOTCAUSES_${v}_PASSWORD=$(openssl rand -hex 32)"; done
export ROOTCAUSES_IMAGE=$IMAGE ROOTCAUSES_POSTGRES_IMAGE=$PG_IMAGE
t=$SECONDS
"${COMPOSE[@]}" up -d --no-build >"$WORK/up.log" 2>&1 || { tail -30 "$WORK/up.log"; fail "compose up"; }
for address in 127.0.0.1:7401 127.0.0.1:7403; do
  for _ in $(seq 1 120); do
    "$CLI" probe --ready --address "$address" >/dev/null 2>&1 && break
    sleep 1
  done
  "$CLI" probe --ready --address "$address" >/dev/null || fail "$address is not ready"
done
aggregations=$(podman ps --filter "label=io.podman.compose.project=$PROJECT" --filter "label=io.podman.compose.service=aggregation" --format '{{.Names}}' | sort)
[ "$(echo "$aggregations" | wc -l)" = 3 ] || fail "expected 3 aggregation containers, got: $aggregations"
note "compose up to ready (intake and reporting answer 'ready' through the published ports): $((SECONDS - t)) s"
curl -fsS http://127.0.0.1:9401/readyz >/dev/null || fail "/readyz on intake's metrics port"

# 4. An admin key, made in the database by the one-shot provision image.
TOKEN=$("${COMPOSE[@]}" run --rm provision rootcauses keys create --in-database --scope admin --scope read \
  --label smoke 2>"$WORK/key.log" | grep -Eo 'rck_[0-9a-f]{16}_[A-Za-z0-9_-]+' | head -1 || true)
[ -n "$TOKEN" ] || { cat "$WORK/key.log"; fail "no admin key"; }
export ROOTCAUSES_TOKEN=$TOKEN ROOTCAUSES_INTAKE=127.0.0.1:7401 ROOTCAUSES_REPORTING=127.0.0.1:7403

# 5. The sample data through the published port, then its history, then the fact sheet.
t=$SECONDS
"$CLI" submit --quiet Deploy/sample/submissions.ndjson | tee "$WORK/submit.out"
python3 Deploy/smoke_client.py history Deploy/sample/submissions.ndjson Deploy/sample/history.ndjson \
  >"$WORK/history.out" || fail "history"
note "sample submitted through 127.0.0.1:7401 in $((SECONDS - t)) s: $(tail -1 "$WORK/submit.out") (sent again: all duplicate); history up to seq $(cat "$WORK/history.out")"
"$CLI" factsheet --date 2023-02-06 --min-seq "$(cat "$WORK/history.out")" >"$WORK/factsheet.md"
python3 - "$ROOT/Tests/IntegrationTests/Fixtures/root-causes-fact-sheet-2023-02-06.md" "$WORK/factsheet.md" \
  >"$WORK/factcheck.out" <<'PY' || { cat "$WORK/factcheck.out"; fail "fact sheet"; }
# From the lead paragraph on, the fact sheet must say what the seed says, word for word (the
# seed's front matter, title layout, escapes, no-break spaces and end mark aside).
import re, sys
def words(text, start):
    text = text[text.index(start):]
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S).replace("\\", "").replace("\u00a0", " ")
    text = re.sub(r"\*\*([^*]+?): \*\*", r"**\1:** ", text)  # the seed's "**Heading: **Text" glitch
    # The seed ends with the press office's end mark, ###.
    return re.sub(r"\s+", " ", text).strip().removesuffix("###").strip()
start = "Vice President Harris continues"
seed, made = (words(open(p).read(), start) for p in sys.argv[1:3])
if seed != made:
    i = next((i for i, (a, b) in enumerate(zip(seed, made)) if a != b), min(len(seed), len(made)))
    sys.exit("the fact sheet differs from the seed at: ...%s... / ...%s..." % (seed[max(0, i - 60):i + 60], made[max(0, i - 60):i + 60]))
print("fact sheet: %d words, the same as the seed's" % len(seed.split()))
PY
note "fact sheet of 2023-02-06 through reporting's published port: $(tail -1 "$WORK/factcheck.out")"

# 6. Kill one aggregation instance (SIGKILL, no grace; stopped so compose does not restart it)
#    and check that its partitions move: a read that needs every partition past new work answers.
# aggregation's port is not published: ask from inside the intake container.
intake_container=$(podman ps --filter "label=io.podman.compose.project=$PROJECT" --filter "label=io.podman.compose.service=intake" --format '{{.Names}}' | head -1)
status() { podman exec -e ROOTCAUSES_TOKEN="$TOKEN" "$intake_container" rootcauses status --aggregation aggregation:7402; }
t=$SECONDS
for _ in $(seq 1 60); do
  instances=$(status 2>>"$WORK/status.err" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["instances"]))' 2>>"$WORK/status.err" || echo 0)
  [ "$instances" = 3 ] && break; sleep 1
done
[ "$instances" = 3 ] || { tail -5 "$WORK/status.err"; fail "aggregation status shows $instances instances, not 3"; }
note "aggregation status lists 3 live instances (seen after $((SECONDS - t)) s)"
victim=$(echo "$aggregations" | tail -1)
t=$SECONDS
podman stop -t 0 "$victim" >/dev/null
python3 Deploy/smoke_client.py more 200 >"$WORK/after-kill.out" || fail "work did not move"
read -r total waited <"$WORK/after-kill.out"
after=$(status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["instances"]), sum(len(i["partitions"]) for i in d["instances"]))' || true)
note "killed $victim: 200 new submissions all aggregated (firms_supported +$total) $((SECONDS - t)) s after the kill (read waited ${waited} s); now $after (instances, partitions held)"
[ "$(echo "$after" | cut -d' ' -f2)" = 64 ] || fail "partitions held after the kill: $after"
submits=$(curl -fsS http://127.0.0.1:9401/metrics | grep -E '^rootcauses_requests_total\{op="submit",code="ok"\}' || true)
[ -n "$submits" ] || fail "intake's /metrics has no count of accepted submits"
note "intake's /metrics: $submits"
note "total $((SECONDS - START)) s before teardown"
