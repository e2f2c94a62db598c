#!/usr/bin/env bash
# Runs a Windows program under Wine in this checkout's throwaway prefix (target/wine): the
# cargo runner for x86_64-pc-windows-gnu (CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER), so
# `cargo test --target x86_64-pc-windows-gnu` runs the agent's tests under Wine.
#
# First use creates the prefix and installs the ProcessPrng stand-in Rust programs need
# (bcryptprimitives.c); both are rebuilt if missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export WINEPREFIX="${WINEPREFIX:-$root/target/wine}" WINEDEBUG="${WINEDEBUG:--all}" WINEARCH=win64
# No desktop integration, no Mono/Gecko installer prompts in a headless run.
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=;winemenubuilder.exe=d}"
wine=$(command -v wine64 || command -v wine || true)
[ -n "$wine" ] || { echo "wine is not installed (apt-get install wine64)" >&2; exit 1; }
dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$dll" ]; then
  exec 9>"$root/target/.wine.lock"
  flock 9
  if [ ! -f "$dll" ]; then
    mkdir -p "$WINEPREFIX"
    "$wine" wineboot --init >/dev/null 2>&1 || true
    ws=$(command -v wineserver || ls /usr/lib/wine/wineserver64 2>/dev/null || true)
    [ -n "$ws" ] && "$ws" -w || true
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll.tmp" "$here/bcryptprimitives.c" "$here/bcryptprimitives.def" -ladvapi32
    mv "$dll.tmp" "$dll"
  fi
  exec 9>&-
fi
exec "$wine" "$@"
