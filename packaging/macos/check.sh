#!/bin/sh
# Checks packaging/macos on any machine with python3 (CI runs it on Debian as root, where it
# installs shellcheck if missing). Prints one line per check ("ok" or "FAIL", a failure's
# details indented below it) and exits non-zero if any check failed.
#   - every shell script passes shellcheck;
#   - the plists (LaunchDaemon, configuration profile, entitlements) parse as plutil would
#     read them, the distribution XML parses, and they agree with each other;
#   - the scripts never prompt and never use the deprecated `launchctl load`/`unload`;
#   - `build-pkg.sh --layout-only` lays out exactly the expected files with the expected modes;
#   - postinstall and preinstall, run for another volume, succeed, install the default
#     agent.toml, and keep an edited one on a second run (an upgrade).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE" || exit 1
failures=0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# check NAME COMMAND...: runs the command, prints one line, and its output only on failure.
check() {
    name=$1
    shift
    if out=$("$@" 2>&1); then
        echo "ok   $name"
    else
        echo "FAIL $name"
        printf '%s\n' "$out" | head -n 40 | sed 's/^/       /'
        failures=$((failures + 1))
    fi
}

have_shellcheck() {
    command -v shellcheck >/dev/null && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
    fi
    command -v shellcheck >/dev/null || { echo "shellcheck is not installed (apt-get install shellcheck)"; return 1; }
}

# Shell scripts: every file here whose first line is a sh/bash shebang.
scripts=$(find . -type f ! -name '*.md' | sort | while read -r f; do
    case "$(head -n 1 "$f")" in '#!/bin/sh'* | '#!/bin/bash'* | '#!/usr/bin/env bash'* | '#!/usr/bin/env sh'*) echo "$f" ;; esac
done)

check "shellcheck is available" have_shellcheck
for f in $scripts; do
    check "shellcheck $f" shellcheck "$f"
done

for f in com.sightline.agent.plist sightline.mobileconfig sightline-agent.entitlements; do
    check "plist parses: $f" python3 -c 'import plistlib, sys; plistlib.load(open(sys.argv[1], "rb"))' "$f"
done
check "XML parses: distribution.xml" python3 -c '
import sys, xml.dom.minidom
text = open("distribution.xml").read()
xml.dom.minidom.parseString(text)
missing = [p for p in ("@VERSION@", "@ARCHS@") if p not in text]
sys.exit("placeholders missing: %s" % missing if missing else 0)'

check "LaunchDaemon and profile agree" python3 - <<'PY'
import plistlib, re, sys
errors = []
daemon = plistlib.load(open("com.sightline.agent.plist", "rb"))
label, program = daemon.get("Label"), daemon.get("ProgramArguments", [None])[0]
if label != "com.sightline.agent":
    errors.append("Label is %r" % label)
if program != "/usr/local/sightline/bin/sightline-agent":
    errors.append("ProgramArguments[0] is %r" % program)
if daemon.get("KeepAlive") != {"SuccessfulExit": False} or daemon.get("RunAtLoad") is not True:
    errors.append("RunAtLoad/KeepAlive changed: the daemon must start at boot and restart after crashes")
for key in ("StandardErrorPath", "StandardOutPath"):
    if not str(daemon.get(key, "")).startswith("/Library/Logs/Sightline/"):
        errors.append("%s is not under /Library/Logs/Sightline (the directory the payload creates)" % key)
profile = plistlib.load(open("sightline.mobileconfig", "rb"))
payloads = profile.get("PayloadContent", [])
uuids = [profile.get("PayloadUUID")] + [p.get("PayloadUUID") for p in payloads]
uuid_re = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
if len(set(uuids)) != len(uuids) or not all(u and uuid_re.match(u) for u in uuids):
    errors.append("PayloadUUIDs must be unique upper-case UUIDs: %r" % uuids)
if profile.get("PayloadType") != "Configuration" or profile.get("PayloadScope") != "System":
    errors.append("the profile must be a System-scoped Configuration")
by_type = {p.get("PayloadType"): p for p in payloads}
if "com.sightline.agent" not in by_type:
    errors.append("no com.sightline.agent settings payload")
tcc = by_type.get("com.apple.TCC.configuration-profile-policy", {})
fda = tcc.get("Services", {}).get("SystemPolicyAllFiles", [{}])[0]
if fda.get("Identifier") != program or fda.get("IdentifierType") != "path":
    errors.append("Full Disk Access names %r, not the daemon's program" % fda.get("Identifier"))
if 'identifier "com.sightline.agent"' not in fda.get("CodeRequirement", ""):
    errors.append("the code requirement must name the signing identifier com.sightline.agent (README.md)")
rules = by_type.get("com.apple.servicemanagement", {}).get("Rules", [])
if not any(r.get("RuleType") == "Label" and r.get("RuleValue") == label for r in rules):
    errors.append("no managed background item rule for label %r" % label)
sys.exit("\n".join(errors) if errors else 0)
PY

no_prompts() {
    # Commands only: comment lines may say anything.
    if grep -nE '(^|[;&|[:space:]])(read|sudo|osascript|launchctl[[:space:]]+(load|unload))([[:space:]]|$)' \
        scripts/preinstall scripts/postinstall sightline-enroll sightline-uninstall build-pkg.sh |
        grep -vE '^[^:]+:[0-9]+:[[:space:]]*#'; then
        echo "an installer-time script must not prompt, escalate, or use launchctl load/unload"
        return 1
    fi
}
check "scripts never prompt and never use launchctl load/unload" no_prompts

EXPECTED='755 d root
755 d root/Library
755 d root/Library/Application Support
755 d root/Library/Application Support/Sightline
755 d root/Library/LaunchDaemons
644 f root/Library/LaunchDaemons/com.sightline.agent.plist
755 d root/Library/Logs
755 d root/Library/Logs/Sightline
755 d root/usr
755 d root/usr/local
755 d root/usr/local/sightline
755 d root/usr/local/sightline/bin
755 f root/usr/local/sightline/bin/sightline-agent
755 f root/usr/local/sightline/bin/sightline-enroll
755 f root/usr/local/sightline/bin/sightline-uninstall
755 d root/usr/local/sightline/share
644 f root/usr/local/sightline/share/agent.toml
755 d scripts
755 f scripts/postinstall
755 f scripts/preinstall'

# The tree under $1 as "MODE TYPE PATH" lines, sorted (portable: no GNU or BSD stat flags).
listing() {
    python3 - "$1" <<'PY'
import os, stat, sys
top = sys.argv[1]
rows = []
for d, dirs, files in os.walk(top):
    for name in dirs + files:
        p = os.path.join(d, name)
        st = os.lstat(p)
        kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "?"
        rows.append("%o %s %s" % (stat.S_IMODE(st.st_mode), kind, os.path.relpath(p, top)))
print("\n".join(sorted(rows, key=lambda r: r.split(" ", 2)[2])))
PY
}

layout_matches() {
    ./build-pkg.sh --layout-only "$WORK/layout" >/dev/null || return 1
    actual=$(listing "$WORK/layout")
    if [ "$actual" != "$EXPECTED" ]; then
        echo "expected:"
        echo "$EXPECTED"
        echo "actual:"
        echo "$actual"
        return 1
    fi
}
check "build-pkg.sh --layout-only lays out exactly the expected files and modes" layout_matches

# The package's scripts, run as Installer runs them but for a volume that is not the
# running system ($3 = the laid-out tree): no launchctl, no enrollment, only files.
installs_onto_another_volume() {
    target="$WORK/layout/root"
    [ -d "$target" ] || { echo "no layout to install onto"; return 1; }
    "$WORK/layout/scripts/preinstall" /tmp/sightline.pkg / "$target" / || return 1
    "$WORK/layout/scripts/postinstall" /tmp/sightline.pkg / "$target" / || return 1
    conf="$target/Library/Application Support/Sightline/agent.toml"
    cmp "$conf" ../config/agent.toml || { echo "default agent.toml not installed"; return 1; }
    echo '# edited by the MDM' >>"$conf"
    "$WORK/layout/scripts/preinstall" /tmp/sightline.pkg / "$target/" / || return 1
    "$WORK/layout/scripts/postinstall" /tmp/sightline.pkg / "$target/" / || return 1
    tail -n 1 "$conf" | grep -qx '# edited by the MDM' || { echo "an upgrade replaced the edited agent.toml"; return 1; }
}
check "pre/postinstall for another volume exit 0 and keep an edited agent.toml on upgrade" installs_onto_another_volume

if [ "$failures" -ne 0 ]; then
    echo "packaging/macos: $failures check(s) failed"
    exit 1
fi
echo "packaging/macos: all checks passed"
