#!/usr/bin/env bash
# The macOS and Windows agents, built, linted and tested on this Linux machine, and the
# packages built and inspected. Called by scripts/test.sh (after the .deb check, which leaves
# a release Linux agent in target/release); runs alone too. Installs what it needs on Debian
# as root: mingw-w64, Wine, msitools/wixl, rpm, shellcheck; zig and cargo-zigbuild from PyPI
# into a venv under target/; the rustup targets.
#
#   macOS    cargo-zigbuild clippy -D warnings, aarch64 and x86_64 (no SDK here: no linking)
#   Windows  clippy -D warnings; the agent's tests under Wine (counts, and every ignored test
#            with its reason); the .exe's scan JSON equal to Linux's on the three fixture
#            layouts and on the Wine prefix's own C:\ as the live machine; the MSI built
#            with wixl, inspected, installed with msiexec under Wine (service registered and
#            started by the SCM), uninstalled
#   Linux    the .rpm built with rpmbuild and inspected
#   macOS    packaging/macos/check.sh (shellcheck, plists, the pkg payload layout)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
fail() { echo "cross-platform: $*" >&2; exit 1; }
step() { echo "==> $*"; }
started=$SECONDS

need=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null || need+=(wine64 wine)
command -v wixl >/dev/null || need+=(wixl)
command -v msiinfo >/dev/null || need+=(msitools)
command -v rpmbuild >/dev/null || need+=(rpm)
command -v cpio >/dev/null || need+=(cpio)
command -v shellcheck >/dev/null || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing: ${need[*]} (install them, or run as root on Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
targets="aarch64-apple-darwin x86_64-pc-windows-gnu"
for t in $targets; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t" >/dev/null
done
zig_venv=target/zigbuild
zig_pkgs=(ziglang==0.17.1 cargo-zigbuild==0.24.1)
if [ ! -x "$zig_venv/bin/cargo-zigbuild" ]; then
  if python3 -m venv "$zig_venv" 2>/dev/null; then
    "$zig_venv/bin/pip" install -q "${zig_pkgs[@]}"
  else # no ensurepip (Debian without python3-venv): a plain target directory
    rm -rf "$zig_venv"
    python3 -m pip install -q --target "$zig_venv/lib" "${zig_pkgs[@]}"
    mkdir -p "$zig_venv/bin" && ln -sf ../lib/bin/cargo-zigbuild "$zig_venv/bin/cargo-zigbuild"
  fi
fi
export PATH="$root/$zig_venv/bin:$PATH" PYTHONPATH="$root/$zig_venv/lib${PYTHONPATH:+:$PYTHONPATH}"

step "macOS: clippy -D warnings (aarch64-apple-darwin; every macOS cfg path)"
t=$SECONDS
# One architecture: the agent has no target_arch code, so x86_64-apple-darwin compiles the
# same cfg paths and would only double the time; the grep keeps that claim true.
if grep -rn --include=*.rs 'target_arch' agent/src; then
  echo "agent/src now has target_arch code: check x86_64-apple-darwin too" >&2
  exit 1
fi
cargo-zigbuild clippy -p sightline-agent --all-targets --target aarch64-apple-darwin --quiet -- -D warnings
echo "    macOS: $((SECONDS - t)) s"

step "Windows: clippy -D warnings (x86_64-pc-windows-gnu)"
t=$SECONDS
cargo clippy -p sightline-agent --all-targets --target x86_64-pc-windows-gnu --quiet -- -D warnings
step "Windows: the agent's unit and integration tests under Wine"
export WINEPREFIX="$root/target/wine" WINEDEBUG=-all
log="$(mktemp)"
cargo test -p sightline-agent --target x86_64-pc-windows-gnu 2>&1 | tee "$log" | grep -E '^(test result|error)|FAILED|panicked' || true
grep -q '^test result: FAILED' "$log" && fail "Windows tests failed under Wine"
grep -q '^test result:' "$log" || fail "the Windows tests did not run"
awk '/^test result:/ {p += $4; f += $6; i += $8} END {printf "    Windows under Wine: %d passed, %d failed, %d ignored:\n", p, f, i}' "$log"
grep -E '^test .* \.\.\. ignored' "$log" | sed 's/^test /      /'
echo "    Windows build and tests: $((SECONDS - t)) s"

step "Windows: sightline-agent.exe scans like the Linux build"
t=$SECONDS
cargo build -p sightline-agent --bin sightline-agent --quiet
cargo build -p sightline-agent --bin sightline-agent --target x86_64-pc-windows-gnu --quiet
lin=target/debug/sightline-agent
win=target/x86_64-pc-windows-gnu/debug/sightline-agent.exe
work="$(mktemp -d "$root/target/scan-eq.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# One state dir for both, so both fingerprint with the same key.
mkdir "$work/state"
for layout in linux macos windows; do
  "$lin" scan --root "agent/tests/fixtures/$layout" --no-processes --format json --state-dir "$work/state" >"$work/linux-$layout.json"
  scripts/wine/run.sh "$win" scan --root "Z:$root/agent/tests/fixtures/$layout" --no-processes --format json \
    --state-dir "Z:$work/state" >"$work/windows-$layout.json"
  scripts/scan-diff.py "$work/linux-$layout.json" "$work/windows-$layout.json" \
    || fail "the $layout layout scans differently on Windows"
  echo "    $layout layout: equal ($(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['findings']))" "$work/linux-$layout.json") findings)"
done
# The live machine: a user's AI tools planted in the prefix's own C:\users; the .exe scans
# its default root (the system drive), Linux scans the same directory. Wine links a user's
# shell folders (Documents, …) into the Unix home; a Windows machine has real folders.
drive_c="$WINEPREFIX/drive_c"
rm -rf "$drive_c/users/dave" "$drive_c/Program Files/gpt4all"
cp -r agent/tests/fixtures/windows/Users/dave "$drive_c/users/dave"
cp -r "agent/tests/fixtures/windows/Program Files/gpt4all" "$drive_c/Program Files/gpt4all"
find "$drive_c/users" -maxdepth 2 -type l -exec sh -c 'rm "$1" && mkdir "$1"' _ {} \;
"$lin" scan --root "$drive_c" --no-processes --format json --state-dir "$work/state" >"$work/linux-live.json"
scripts/wine/run.sh "$win" scan --no-processes --format json --state-dir "Z:$work/state" >"$work/windows-live.json"
# The device facts: Linux reads the image's, the .exe asks the running (Wine) system.
scripts/scan-diff.py "$work/linux-live.json" "$work/windows-live.json" \
  --ignore device.hostname --ignore device.os_version \
  || fail "the live Wine machine scans differently from its C: drive on Linux"
echo "    live C:\\ under Wine: equal apart from device.hostname, device.os_version"
echo "    scan equality: $((SECONDS - t)) s"

step "Windows: the MSI (wixl), inspected, installed and removed under Wine"
t=$SECONDS
msi="$work/sightline-agent.msi"
wixl -a x64 -D Version=0.1.0 -D AgentExe="$win" -D AgentToml=packaging/config/agent.toml \
  -o "$msi" packaging/windows/sightline-agent.wxs 2>"$work/wixl.log" || { cat "$work/wixl.log" >&2; fail "wixl failed"; }
# wixl ignores NeverOverwrite/Permanent: set them in the Component table (0x80 | 0x10), so an
# MDM's agent.toml survives upgrades and uninstall.
msibuild "$msi" -q "UPDATE \`Component\` SET \`Attributes\` = 400 WHERE \`Component\` = 'AgentConfig'"
msiinfo export "$msi" Component | grep -qP '^AgentConfig\t.*\t400\t' || fail "agent.toml is not permanent and never-overwritten"
msiinfo export "$msi" ServiceInstall | grep -qP '^AgentService\tSightlineAgent\t.*\t16\t2\t1\t.*LocalSystem\t\tservice\t' \
  || fail "the service is not installed as an automatic LocalSystem service running 'service'"
msiinfo export "$msi" File | grep -q 'sightline-agent.exe' || fail "the agent is not in the MSI"
msiextract -C "$work/extract" "$msi" >/dev/null
# msiextract drops the standard folders (ProgramFiles64Folder, CommonAppDataFolder).
[ -f "$work/extract/Sightline/sightline-agent.exe" ] && [ -f "$work/extract/Sightline/agent.toml" ] \
  || fail "msiextract: the agent or agent.toml is missing"
cmp -s "$work/extract/Sightline/sightline-agent.exe" "$win" || fail "the MSI's agent is not the one built"
msi_prefix="$root/target/wine-msi"
rm -rf "$msi_prefix"
WINEPREFIX="$msi_prefix" scripts/wine/run.sh msiexec /i "Z:$msi" /qn
WINEPREFIX="$msi_prefix" wineserver -w
[ -x "$msi_prefix/drive_c/Program Files/Sightline/sightline-agent.exe" ] || fail "msiexec did not install the agent"
[ -f "$msi_prefix/drive_c/ProgramData/Sightline/agent.toml" ] || fail "msiexec did not install agent.toml"
query="$(WINEPREFIX="$msi_prefix" scripts/wine/run.sh sc query SightlineAgent)"
grep -q 'WIN32_OWN_PROCESS' <<<"$query" || fail "the SightlineAgent service is not registered"
# The SCM started it; with no enrollment the service reports Stopped with exit code 1 —
# which proves the dispatcher, the control handler and the status reports ran.
grep -Eq 'WIN32_EXIT_CODE +: 1 ' <<<"$query" || { echo "$query" >&2; fail "the service did not run and report its stop"; }
WINEPREFIX="$msi_prefix" scripts/wine/run.sh msiexec /x "Z:$msi" /qn
WINEPREFIX="$msi_prefix" wineserver -w
[ ! -e "$msi_prefix/drive_c/Program Files/Sightline/sightline-agent.exe" ] || fail "msiexec /x left the agent behind"
[ -f "$msi_prefix/drive_c/ProgramData/Sightline/agent.toml" ] || fail "uninstall removed the admin's agent.toml"
if WINEPREFIX="$msi_prefix" scripts/wine/run.sh sc query SightlineAgent >/dev/null 2>&1; then
  fail "msiexec /x left the service registered"
fi
rm -rf "$msi_prefix"
echo "    MSI: $((SECONDS - t)) s"

step "Linux: the .rpm (rpmbuild), inspected"
[ -x target/release/sightline-agent ] || cargo build --release -p sightline-agent --features tpm --quiet
rpmbuild -bb --quiet --define "_topdir $work/rpm" --define "srcroot $root" packaging/linux/sightline-agent.spec >/dev/null
rpm="$(ls "$work"/rpm/RPMS/x86_64/sightline-agent-*.rpm)"
files="$(rpm -qlp "$rpm")"
for want in /usr/bin/sightline-agent /etc/sightline/agent.toml /usr/lib/sightline/enroll-from-token \
            /usr/lib/systemd/system/sightline-agent.service /var/lib/sightline; do
  grep -qxF "$want" <<<"$files" || fail "missing from the rpm: $want"
done
[ "$(rpm -qcp "$rpm")" = /etc/sightline/agent.toml ] || fail "agent.toml is not the rpm's config file"
rpm -qp --scripts "$rpm" | grep -q 'systemctl enable --now sightline-agent.service' || fail "the rpm does not enable the unit"
rpm -qlvp "$rpm" | grep -E '^drwx------ .* /var/lib/sightline$' >/dev/null || fail "the rpm's state dir is not 0700"
rpm2cpio "$rpm" | (mkdir -p "$work/rpmroot" && cd "$work/rpmroot" && cpio -id --quiet)
"$work/rpmroot/usr/bin/sightline-agent" check-config --config "$work/rpmroot/etc/sightline/agent.toml" >/dev/null \
  || fail "the rpm's agent.toml does not validate"
echo "    rpm: $(basename "$rpm"), $(wc -l <<<"$files") paths"

step "macOS: pkg scripts and payload"
packaging/macos/check.sh

echo "==> cross-platform: $((SECONDS - started)) s"
