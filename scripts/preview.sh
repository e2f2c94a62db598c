#!/usr/bin/env bash
# Local preview on the embedded default: a collector on SQLite with a development CA, this
# machine enrolled through the real agent over mutual-TLS gRPC on loopback, one scan
# delivered, the findings printed. The collector is left running; the query commands to use
# are printed at the end. Re-running replaces the previous preview.
#
# Everything lives under $SIGHTLINE_PREVIEW_DIR (default: .preview/ in the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${SIGHTLINE_PREVIEW_DIR:-$PWD/.preview}"
PORT="${SIGHTLINE_PREVIEW_PORT:-8443}"

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
if ! command -v cc >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq gcc >/dev/null
fi

echo "==> Building sightline-server and sightline-agent"
cargo build --workspace --bins --quiet
BIN="$PWD/target/debug"

if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
  echo "==> Stopping the previous preview collector"
  kill -TERM "$(cat "$DIR/server.pid")"
  for _ in $(seq 50); do kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null || break; sleep 0.1; done
fi
rm -rf "$DIR"
mkdir -p "$DIR"

echo "==> Starting the collector on 127.0.0.1:$PORT (data dir $DIR/data)"
nohup "$BIN/sightline-server" serve --dev --data-dir "$DIR/data" --listen "127.0.0.1:$PORT" \
  --http "127.0.0.1:$((PORT + 1))" --export-dir "$DIR/ocsf" \
  >"$DIR/server.log" 2>&1 &
echo $! >"$DIR/server.pid"
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  if ! kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then cat "$DIR/server.log" >&2; exit 1; fi
  sleep 0.1
done

echo "==> Enrolling this machine with a one-time token"
TOKEN="$("$BIN/sightline-server" token create --data-dir "$DIR/data" --ttl 10m)"
"$BIN/sightline-agent" enroll --server "https://127.0.0.1:$PORT" --token "$TOKEN" \
  --ca "$DIR/data/ca.pem" --state-dir "$DIR/agent"

echo "==> Scanning this machine and delivering the signed batch"
"$BIN/sightline-agent" run --once --state-dir "$DIR/agent" --root / 2>>"$DIR/agent.log"

echo
echo "==> What the agent found on this machine (fingerprints under the org key)"
"$BIN/sightline-agent" scan --state-dir "$DIR/agent" --root / 2>>"$DIR/agent.log"
echo
echo "==> What the collector holds"
"$BIN/sightline-server" devices --data-dir "$DIR/data"
echo
"$BIN/sightline-server" connectors --data-dir "$DIR/data"

DEVICE="$("$BIN/sightline-server" devices --json --data-dir "$DIR/data" | sed -n 's/.*"device_id": "\(dev_[0-9a-f]*\)".*/\1/p' | head -n1)"
API_TOKEN="$("$BIN/sightline-server" api-token create --role viewer --name preview --data-dir "$DIR/data")"
ADMIN_TOKEN="$("$BIN/sightline-server" api-token create --role admin --name preview --data-dir "$DIR/data")"
cat <<EOT

The collector is still running (pid $(cat "$DIR/server.pid"), log $DIR/server.log).
Dashboard: https://127.0.0.1:$((PORT + 1))/ui/ (dev CA $DIR/data/ca.pem; sign in with
  viewer $API_TOKEN
  admin  $ADMIN_TOKEN)
OCSF events: $DIR/ocsf/*.jsonl. Metrics: curl --cacert $DIR/data/ca.pem -H "Authorization: Bearer $API_TOKEN" https://127.0.0.1:$((PORT + 1))/metrics
Try:
  $BIN/sightline-server devices    --data-dir $DIR/data [--json]
  $BIN/sightline-server connectors --data-dir $DIR/data [--json]
  $BIN/sightline-server device $DEVICE --data-dir $DIR/data [--json]
  $BIN/sightline-server triage --device $DEVICE --at now --data-dir $DIR/data [--json]
  curl --cacert $DIR/data/ca.pem -H "Authorization: Bearer $API_TOKEN" https://127.0.0.1:$((PORT + 1))/api/v1/devices
  $BIN/sightline-agent  run --once --state-dir $DIR/agent        # scan and deliver again
  $BIN/sightline-agent  run --state-dir $DIR/agent --root /      # the daemon: watch, sample, resync (Ctrl-C stops)
  $BIN/sightline-agent  scan --root agent/tests/fixtures/macos --no-processes   # a fixture laptop
Stop it with: kill \$(cat $DIR/server.pid)
EOT
