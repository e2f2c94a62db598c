#!/usr/bin/env bash
# Checks packaging/: the macOS plists and profile and the WiX source parse; then builds the
# agent's .deb with cargo-deb and checks it the way an MDM would use it:
#   - contents: binary, unit, enrollment helper, config as a conffile, postinst enabling the unit;
#   - the unit passes `systemd-analyze verify` once installed, and its exposure score is printed;
#   - as root (CI): install it, drop the MDM's enrollment files, run the unit's ExecStartPre
#     against a local collector, check the device enrolled and the token was spent; purge.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "check-packaging: $*" >&2; exit 1; }

echo "==> macOS plists and profile, WiX source"
python3 - <<'PY' || fail "a packaging file does not parse"
import plistlib, xml.dom.minidom
for f in ["packaging/macos/com.sightline.agent.plist", "packaging/macos/sightline.mobileconfig"]:
    plistlib.load(open(f, "rb"))
xml.dom.minidom.parse("packaging/windows/sightline-agent.wxs")
PY
sh -n packaging/macos/scripts/postinstall packaging/macos/build-pkg.sh packaging/linux/enroll-from-token \
  || fail "a packaging shell script has a syntax error"

if ! command -v cargo-deb >/dev/null; then
  echo "==> installing cargo-deb"
  # --debug: built in half the time; it only drives dpkg-deb here.
  cargo install --locked --debug --quiet cargo-deb
fi
echo "==> cargo deb -p sightline-agent"
rm -rf target/debian
cargo deb -p sightline-agent -o target/debian/ --quiet -- --features tpm
deb="$(ls target/debian/sightline-agent_*.deb)"

contents="$(dpkg-deb -c "$deb" | awk '{print $1, $6}')"
for want in "-rwxr-xr-x ./usr/bin/sightline-agent" \
            "-rwxr-xr-x ./usr/lib/sightline/enroll-from-token" \
            "-rw-r--r-- ./usr/lib/systemd/system/sightline-agent.service" \
            "-rw-r--r-- ./etc/sightline/agent.toml"; do
  grep -qxF -- "$want" <<<"$contents" || fail "missing from the package: $want"
done
ctl="$(mktemp -d)"
trap 'rm -rf "$ctl"' EXIT
dpkg-deb -e "$deb" "$ctl"
[ "$(cat "$ctl/conffiles")" = "/etc/sightline/agent.toml" ] || fail "agent.toml is not the conffile"
grep -q "deb-systemd-helper enable sightline-agent.service" "$ctl/postinst" || fail "postinst does not enable the unit"
grep -q "install -d -m 0700 /var/lib/sightline" "$ctl/postinst" || fail "postinst does not create the state dir"
dpkg-deb -x "$deb" "$ctl/root"
"$ctl/root/usr/bin/sightline-agent" check-config --config "$ctl/root/etc/sightline/agent.toml" >/dev/null \
  || fail "the packaged agent.toml does not validate"
echo "==> systemd-analyze security (offline)"
systemd-analyze security --offline=true "$ctl/root/usr/lib/systemd/system/sightline-agent.service" | tail -n 1

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null; then
  echo "==> not root: skipping install, systemd-analyze verify and the MDM enrollment flow"
  exit 0
fi
if [ -e /var/lib/sightline ] || dpkg -s sightline-agent >/dev/null 2>&1; then
  fail "sightline-agent is already installed here; refusing to touch a real installation"
fi
echo "==> dpkg -i, systemd-analyze verify"
cleanup() {
  [ -n "${srv:-}" ] && kill "$srv" 2>/dev/null || true
  dpkg --purge sightline-agent >/dev/null 2>&1 || true
  rm -f /etc/sightline/enroll.token /etc/sightline/enroll.env /etc/sightline/ca.pem
  rm -rf "$ctl" "${work:-}"
}
trap cleanup EXIT
dpkg -i "$deb" >/dev/null
systemd-analyze verify /usr/lib/systemd/system/sightline-agent.service /usr/lib/systemd/system/sightline-agent.path
grep -q '^RestartPreventExitStatus=78' /usr/lib/systemd/system/sightline-agent.service || fail "a damaged identity would restart in a loop"
[ -L /etc/systemd/system/multi-user.target.wants/sightline-agent.service ] || fail "unit not enabled"
[ "$(stat -c %a /var/lib/sightline)" = 700 ] || fail "state dir is not 0700"

echo "==> MDM enrollment flow: token file, enroll.env, ca.pem, then the unit's ExecStartPre"
cargo build --quiet -p sightline-server
work="$(mktemp -d)"
# Port 0: the collector says which port it got ("listening grpc ADDR" on stdout).
target/debug/sightline-server serve --dev --data-dir "$work/data" --listen 127.0.0.1:0 \
  >"$work/server.out" 2>"$work/server.log" &
srv=$!
for _ in $(seq 200); do grep -q '^listening grpc ' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
port="$(sed -n 's/^listening grpc .*:\([0-9]*\)$/\1/p' "$work/server.out")"
[ -n "$port" ] || { cat "$work/server.log" >&2; fail "the collector did not say where it listens"; }
install -m 0600 /dev/null /etc/sightline/enroll.token
target/debug/sightline-server token create --data-dir "$work/data" > /etc/sightline/enroll.token
echo "SIGHTLINE_SERVER=https://127.0.0.1:$port" > /etc/sightline/enroll.env
cp "$work/data/ca.pem" /etc/sightline/ca.pem
env -u SIGHTLINE_TPM_TCTI /usr/lib/sightline/enroll-from-token >/dev/null 2>"$work/enroll.log" || { cat "$work/enroll.log" >&2; fail "enroll-from-token failed"; }
[ -f /var/lib/sightline/enrollment.json ] || fail "enroll-from-token did not enroll"
/usr/lib/sightline/enroll-from-token || fail "a second start must be a no-op"
# The unit's second ExecStartPre: the spent token goes.
sh -c "$(sed -n 's/^ExecStartPre=+\/bin\/sh -c "\(.*\)"$/\1/p' /usr/lib/systemd/system/sightline-agent.service)"
[ ! -e /etc/sightline/enroll.token ] || fail "the spent token was not removed"
/usr/bin/sightline-agent run --once --config /etc/sightline/agent.toml --root "$work" 2>>"$work/agent.log" \
  || { cat "$work/agent.log" >&2; fail "the installed agent could not deliver"; }
target/debug/sightline-server devices --data-dir "$work/data" | grep -q software || fail "device not on the collector"
dpkg --purge sightline-agent >/dev/null
[ ! -e /var/lib/sightline ] || fail "purge left /var/lib/sightline"
echo "==> package OK: $deb"
