#!/usr/bin/env bash
# Local preview on the embedded default: a collector on SQLite with a development CA and an
# example policy; this machine and three simulated laptops (the agent's fixture trees: a
# Linux, a macOS and a Windows laptop) enrolled through the real agent over mutual-TLS gRPC
# on loopback, one scan each delivered; example people provisioned through SCIM, one of them
# offboarded; one revocation issued. The dashboard then shows shadow AI, an orphaned
# connector and a revocation in flight. The collector is left running; the dashboard URL and
# the commands to try are printed at the end. Re-running replaces the previous preview.
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

HTTP_PORT=$((PORT + 1))
API="https://127.0.0.1:$HTTP_PORT"
FIXTURES="$PWD/agent/tests/fixtures"

echo "==> Writing an example policy (approved tools; OS accounts matched to people by e-mail local part)"
mkdir -p "$DIR/data"
cat >"$DIR/data/policy.toml" <<'EOP'
# Example policy for the preview: anything not approved here is shadow AI (`unsanctioned`).
stale_after = "7d"

[identity]
rules = ["email_local_part", "user_name"]

[approved]
tools = ["copilot_vscode", "cursor"]
providers = ["github"]
mcp_servers = ["github", "filesystem"]
EOP

echo "==> Starting the collector on 127.0.0.1:$PORT (agents) and $API (dashboard, API, SCIM); data dir $DIR/data"
nohup "$BIN/sightline-server" serve --dev --data-dir "$DIR/data" --listen "127.0.0.1:$PORT" \
  --http "127.0.0.1:$HTTP_PORT" --export-dir "$DIR/ocsf" \
  >"$DIR/server.log" 2>&1 &
echo $! >"$DIR/server.pid"
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then break; fi
  if ! kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then cat "$DIR/server.log" >&2; exit 1; fi
  sleep 0.1
done

echo "==> Enrolling this machine with a one-time token"
TOKEN="$("$BIN/sightline-server" token create --data-dir "$DIR/data" --ttl 10m --name "this machine")"
"$BIN/sightline-agent" enroll --server "https://127.0.0.1:$PORT" --token "$TOKEN" \
  --ca "$DIR/data/ca.pem" --state-dir "$DIR/agent"
echo "==> Scanning this machine and delivering the signed batch"
"$BIN/sightline-agent" run --once --state-dir "$DIR/agent" --root / 2>>"$DIR/agent.log"

# Each simulated laptop: its own device key and state dir, scanning a fixture tree (its
# hostname and users come from the tree), without this machine's processes and sessions.
cat >"$DIR/laptop.toml" <<'EOC'
processes = false
sessions = false
watch = false
EOC
for os in linux macos windows; do
  echo "==> Enrolling the simulated $os laptop (fixture tree agent/tests/fixtures/$os)"
  TOKEN="$("$BIN/sightline-server" token create --data-dir "$DIR/data" --ttl 10m --name "preview $os laptop")"
  "$BIN/sightline-agent" enroll --server "https://127.0.0.1:$PORT" --token "$TOKEN" \
    --ca "$DIR/data/ca.pem" --state-dir "$DIR/laptops/$os" --key-backend software >/dev/null
  "$BIN/sightline-agent" run --once --config "$DIR/laptop.toml" --state-dir "$DIR/laptops/$os" \
    --root "$FIXTURES/$os" 2>>"$DIR/agent.log"
done

echo "==> Provisioning example people through SCIM (as an identity provider would); dave is offboarded"
SCIM_TOKEN="$("$BIN/sightline-server" api-token create --role scim --name "preview IdP" --data-dir "$DIR/data")"
scim() { # METHOD PATH [BODY]: one SCIM call, its JSON answer on stdout
  curl -sS --fail-with-body --cacert "$DIR/data/ca.pem" -X "$1" -H "Authorization: Bearer $SCIM_TOKEN" \
    -H "Content-Type: application/scim+json" ${3:+--data-binary "$3"} "$API/scim/v2$2"
}
for who in "alice Alice Liddell" "bob Bob Diaz" "carol Carol Chen" "dave Dave Okafor"; do
  set -- $who
  scim POST /Users "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"$1@example.com\",
    \"name\":{\"givenName\":\"$2\",\"familyName\":\"$3\"},\"displayName\":\"$2 $3\",
    \"emails\":[{\"value\":\"$1@example.com\",\"type\":\"work\",\"primary\":true}],\"active\":true}" >"$DIR/scim-$1.json"
done
DAVE_ID="$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$DIR/scim-dave.json" | head -n1)"
scim PATCH "/Users/$DAVE_ID" '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}' >/dev/null

echo "==> Revoking one shadow-AI extension (carol's Perplexity extension) on every device that has it"
"$BIN/sightline-server" revoke extension:hlgbcneanomplepojfcnclggenpcoldo --reason "preview: not approved" \
  --data-dir "$DIR/data" >/dev/null

echo
echo "==> What the collector holds"
"$BIN/sightline-server" devices --data-dir "$DIR/data"
echo
echo "Findings by kind (sightline-server findings lists them):"
"$BIN/sightline-server" findings --data-dir "$DIR/data" | awk 'NR > 1 {print $2}' | sort | uniq -c

DEVICE="$("$BIN/sightline-server" devices --json --data-dir "$DIR/data" | sed -n 's/.*"device_id": "\(dev_[0-9a-f]*\)".*/\1/p' | head -n1)"
API_TOKEN="$("$BIN/sightline-server" api-token create --role viewer --name preview --data-dir "$DIR/data")"
ADMIN_TOKEN="$("$BIN/sightline-server" api-token create --role admin --name preview --data-dir "$DIR/data")"
cat <<EOT

Open the dashboard: $API/ui/
  (the certificate is from the preview's own CA, $DIR/data/ca.pem: accept it in the browser)
  Sign in with the admin token  $ADMIN_TOKEN
            or the viewer token $API_TOKEN
  You will find: four devices (this one and three simulated laptops), shadow AI (connectors the example policy does not approve),
  dave's connectors orphaned after his offboarding, and a revocation waiting for the macOS laptop.

The collector is still running (pid $(cat "$DIR/server.pid"), log $DIR/server.log).
Try:
  $BIN/sightline-agent  run --once --config $DIR/laptop.toml --state-dir $DIR/laptops/macos --root $FIXTURES/macos
      # the macOS laptop checks in and answers the revocation (report mode: it reports, it does not delete)
  $BIN/sightline-server connectors --data-dir $DIR/data [--json] [--status unsanctioned]
  $BIN/sightline-server findings   --data-dir $DIR/data [--json]
  $BIN/sightline-server triage --device $DEVICE --at now --data-dir $DIR/data [--json]
  $BIN/sightline-server revoke tool:chatgpt_desktop --data-dir $DIR/data     # another revocation
  curl --cacert $DIR/data/ca.pem -H "Authorization: Bearer $API_TOKEN" $API/api/v1/devices
  curl --cacert $DIR/data/ca.pem -H "Authorization: Bearer $API_TOKEN" $API/metrics
  OCSF events for a SIEM: $DIR/ocsf/*.jsonl
Stop it with: kill \$(cat $DIR/server.pid)
EOT
