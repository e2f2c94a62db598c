#!/bin/sh
# Builds sightline-agent-VERSION.pkg on a Mac (pkgbuild ships with Xcode's command-line tools):
#   packaging/macos/build-pkg.sh target/release/sightline-agent 0.1.0
# Sign it for MDM distribution with `productsign --sign "Developer ID Installer: …"`, and the
# binary itself with `codesign --options runtime` before this, so the TCC payload in
# sightline.mobileconfig can name it by code requirement.
set -eu
BINARY=${1:?path to the sightline-agent binary}
VERSION=${2:?version}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
install -d -m 0755 "$ROOT/usr/local/sightline/bin" "$ROOT/Library/LaunchDaemons" \
    "$ROOT/Library/Application Support/Sightline"
install -m 0755 "$BINARY" "$ROOT/usr/local/sightline/bin/sightline-agent"
install -m 0644 "$HERE/com.sightline.agent.plist" "$ROOT/Library/LaunchDaemons/com.sightline.agent.plist"
install -m 0644 "$HERE/../config/agent.toml" "$ROOT/Library/Application Support/Sightline/agent.toml"
pkgbuild --root "$ROOT" --scripts "$HERE/scripts" --identifier com.sightline.agent \
    --version "$VERSION" --install-location / "sightline-agent-$VERSION.pkg"
