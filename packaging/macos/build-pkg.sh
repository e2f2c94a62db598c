#!/bin/sh
# The macOS installer package, or only its contents:
#
#   build-pkg.sh BINARY VERSION [OUT_DIR]
#       On a Mac (pkgbuild and productbuild come with Xcode's command-line tools): the
#       component package (payload + scripts) wrapped in a distribution package, written to
#       OUT_DIR/sightline-agent-VERSION.pkg. Sign the binary first (README.md). With
#       SIGHTLINE_INSTALLER_IDENTITY="Developer ID Installer: NAME (TEAMID)" the product is
#       signed (productbuild --sign); notarize it afterwards (README.md).
#   build-pkg.sh --layout-only DIR [BINARY]
#       Anywhere: DIR/root (the payload, as installed under /) and DIR/scripts, nothing else.
#       Without BINARY an empty placeholder stands in for the agent, for checking the tree.
#
# Payload (paths under /, modes as installed; pkgbuild --ownership recommended makes every
# file root:wheel):
#   Library/LaunchDaemons/com.sightline.agent.plist      0644  the LaunchDaemon
#   Library/Application Support/Sightline/               0755  agent.toml, enrollment files, state/
#   Library/Logs/Sightline/                              0755  agent.log
#   usr/local/sightline/bin/sightline-agent              0755
#   usr/local/sightline/bin/sightline-enroll             0755  enroll from the MDM's files
#   usr/local/sightline/bin/sightline-uninstall          0755
#   usr/local/sightline/share/agent.toml                 0644  default config; postinstall copies
#                                                              it into place only if none exists
set -eu
umask 022
HERE=$(cd "$(dirname "$0")" && pwd)
LABEL=com.sightline.agent

usage() {
    echo "usage: $0 BINARY VERSION [OUT_DIR]" >&2
    echo "       $0 --layout-only DIR [BINARY]" >&2
    exit 2
}

# layout DIR BINARY: the payload in DIR/root, the installer scripts in DIR/scripts.
layout() {
    root="$1/root"
    scripts="$1/scripts"
    install -d -m 0755 "$root/Library/LaunchDaemons" "$root/Library/Application Support/Sightline" \
        "$root/Library/Logs/Sightline" "$root/usr/local/sightline/bin" "$root/usr/local/sightline/share" \
        "$scripts"
    if [ -n "$2" ]; then
        install -m 0755 "$2" "$root/usr/local/sightline/bin/sightline-agent"
    else
        : >"$root/usr/local/sightline/bin/sightline-agent"
        chmod 0755 "$root/usr/local/sightline/bin/sightline-agent"
    fi
    install -m 0755 "$HERE/sightline-enroll" "$HERE/sightline-uninstall" "$root/usr/local/sightline/bin/"
    install -m 0644 "$HERE/$LABEL.plist" "$root/Library/LaunchDaemons/$LABEL.plist"
    install -m 0644 "$HERE/../config/agent.toml" "$root/usr/local/sightline/share/agent.toml"
    install -m 0755 "$HERE/scripts/preinstall" "$HERE/scripts/postinstall" "$scripts/"
}

if [ "${1:-}" = "--layout-only" ]; then
    case $# in 2 | 3) ;; *) usage ;; esac
    [ ! -e "$2" ] || [ -z "$(ls -A "$2")" ] || { echo "$2 is not empty" >&2; exit 1; }
    layout "$2" "${3:-}"
    echo "laid out $2/root and $2/scripts"
    exit 0
fi

case $# in 2 | 3) ;; *) usage ;; esac
BINARY=$1
VERSION=$2
OUT=${3:-.}
case "$VERSION" in
    "" | *[!0-9A-Za-z.+-]*) echo "version must be letters, digits, '.', '+' or '-': $VERSION" >&2; exit 2 ;;
esac
[ -f "$BINARY" ] || { echo "no such binary: $BINARY" >&2; exit 1; }
for tool in pkgbuild productbuild lipo codesign; do
    command -v "$tool" >/dev/null || {
        echo "$tool not found: build the package on a Mac with Xcode's command-line tools (or use --layout-only)" >&2
        exit 1
    }
done
if ! codesign --verify --strict "$BINARY" 2>/dev/null; then
    echo "warning: $BINARY is not validly signed: TCC (Full Disk Access) and notarization will refuse it" >&2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
layout "$WORK" "$BINARY"
install -d "$WORK/pkgs" "$OUT"
pkgbuild --root "$WORK/root" --scripts "$WORK/scripts" --identifier "$LABEL" --version "$VERSION" \
    --install-location / --ownership recommended "$WORK/pkgs/sightline-agent-component.pkg"
# The distribution allows installation on the architectures the binary has (lipo -create
# makes a universal one).
ARCHS=$(lipo -archs "$BINARY" | tr ' ' ',')
sed -e "s/@VERSION@/$VERSION/g" -e "s/@ARCHS@/$ARCHS/g" "$HERE/distribution.xml" >"$WORK/distribution.xml"
set -- --distribution "$WORK/distribution.xml" --package-path "$WORK/pkgs"
if [ -n "${SIGHTLINE_INSTALLER_IDENTITY:-}" ]; then
    set -- "$@" --sign "$SIGHTLINE_INSTALLER_IDENTITY"
fi
productbuild "$@" "$OUT/sightline-agent-$VERSION.pkg"
echo "built $OUT/sightline-agent-$VERSION.pkg ($ARCHS)"
