#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only the Rust toolchain and Node.js:
# (the macOS and Windows agents, under zig and Wine, are in scripts/cross-platform.sh)
# installs what the tests need (a C compiler, libtss2, a software TPM, cargo-deb, Chromium and
# playwright-core for the dashboard, PostgreSQL), starts swtpms and a private PostgreSQL on
# loopback for the TPM, store conformance and replica tests, checks
# formatting and lints, runs every test, then builds and checks the agent's Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cc >/dev/null || need+=(gcc)
command -v setpriv >/dev/null || need+=(util-linux)
command -v mkfifo >/dev/null || need+=(coreutils)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v swtpm >/dev/null || need+=(swtpm)
command -v swtpm_setup >/dev/null || need+=(swtpm-tools)
command -v tpm2_nvread >/dev/null || need+=(tpm2-tools)
pkg-config --exists tss2-esys 2>/dev/null || need+=(libtss2-dev)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v deb-systemd-helper >/dev/null || need+=(init-system-helpers)
command -v python3 >/dev/null || need+=(python3)
python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
command -v faketime >/dev/null || need+=(faketime)
command -v prlimit >/dev/null || need+=(util-linux)
command -v node >/dev/null || need+=(nodejs npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them, or run as root on Debian)" >&2
    exit 1
  fi
fi
# scim2-tester for the SCIM conformance test (tests/tests/scim.rs), pinned, in a venv.
[ -x target/scim2-tester/bin/pip ] || python3 -m venv target/scim2-tester
target/scim2-tester/bin/pip install -q --disable-pip-version-check -r tests/scim/requirements.txt
# playwright-core for the dashboard test, exactly as locked (it drives Debian's chromium).
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true

# Two software TPMs with EK certificates from private CAs, on loopback, for the TPM tests
# (the second plays "another machine's TPM"). Stopped by PID on exit.
tpm_dir="$(mktemp -d)"
tpm_port=$((23000 + $$ % 2000 * 4))
# A private PostgreSQL cluster (C locale, loopback, trust) for the store conformance suite on
# PostgreSQL and the replica failover tests; each test makes and drops its own database.
pg_dir="$(mktemp -d)"
export SIGHTLINE_PG_DIR="$pg_dir" SIGHTLINE_PG_PORT=$((tpm_port + 5))
trap 'scripts/swtpm.sh stop "$tpm_dir/a"; scripts/swtpm.sh stop "$tpm_dir/b"; rm -rf "$tpm_dir"; scripts/postgres.sh stop || true; rm -rf "$pg_dir"' EXIT
scripts/swtpm.sh start "$tpm_dir/a" "$tpm_port"
scripts/swtpm.sh start "$tpm_dir/b" "$((tpm_port + 2))"
export SIGHTLINE_TEST_TPM_TCTI="$(cat "$tpm_dir/a/tcti")"
export SIGHTLINE_TPM_TCTI="$SIGHTLINE_TEST_TPM_TCTI"
export SIGHTLINE_TEST_TPM2_TCTI="$(cat "$tpm_dir/b/tcti")"
export SIGHTLINE_TEST_EK_ROOTS="$tpm_dir/a/ek-roots.pem"
SIGHTLINE_TEST_POSTGRES="$(scripts/postgres.sh)"
SIGHTLINE_TEST_POSTGRES_CA="$pg_dir/tls/ca.pem"
export SIGHTLINE_TEST_POSTGRES SIGHTLINE_TEST_POSTGRES_CA

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings (all features, TPM included)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
echo "==> unsafe code only where allowed"
# FFI to the OS is confined to the platform modules: macOS and Windows system APIs, the
# hardware key backends and the Windows service entry point.
if grep -rln --include=*.rs "allow(unsafe_code)" agent server proto tests \
    | grep -v -E "^agent/src/(macos/|windows/|winservice\.rs|keys/(pcp|enclave)\.rs)"; then
  echo "unsafe_code is allowed only in agent/src/{macos,windows}/, keys/{pcp,enclave}.rs and winservice.rs" >&2
  exit 1
fi
echo "==> cargo build (binaries the system tests drive)"
cargo build --workspace --bins --quiet
echo "==> cargo test"
log="$(mktemp)"
# pipefail makes a failing cargo fail this line; tee keeps the full output visible.
cargo test --workspace --all-targets --all-features 2>&1 | tee "$log"
echo "==> OpenAPI: the document the collector serves is valid OpenAPI"
validator=target/openapi-validator
if [ ! -x "$validator/bin/openapi-spec-validator" ]; then
  python3 -m venv "$validator" 2>/dev/null || { rm -rf "$validator"; python3 -m pip install -q --target "$validator/lib" openapi-spec-validator==0.9.0; }
  [ -x "$validator/bin/pip" ] && "$validator/bin/pip" install -q openapi-spec-validator==0.9.0
fi
target/debug/sightline-server openapi > target/openapi.json
if [ -x "$validator/bin/openapi-spec-validator" ]; then
  "$validator/bin/openapi-spec-validator" target/openapi.json
else
  PYTHONPATH="$validator/lib" python3 -m openapi_spec_validator target/openapi.json
fi
echo "==> packaging: the .deb built, inspected, installed, enrolled through its unit, purged"
scripts/check-packaging.sh
echo "==> macOS and Windows agents, .rpm and MSI (scripts/cross-platform.sh)"
scripts/cross-platform.sh
echo "==> fuzz targets: built on nightly and each run over its committed seeds (a smoke run)"
rustup toolchain list | grep -q '^nightly' || { echo "the nightly toolchain is missing (cargo-fuzz needs it)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
# Unoptimised and without a sanitizer: this only proves every target builds and holds on
# its seeds; the long runs (README) use the defaults.
( cd fuzz && cargo fmt --check && cargo +nightly fuzz build --dev --sanitizer none >/dev/null
  seeds="$(mktemp -d)"
  for t in $(cargo +nightly fuzz list); do
    cp -r "corpus/$t" "$seeds/$t"
    cargo +nightly fuzz run --dev --sanitizer none "$t" "$seeds/$t" -- -max_total_time=10 >"$seeds/$t.log" 2>&1 \
      || { tail -40 "$seeds/$t.log" >&2; echo "fuzz target $t failed" >&2; exit 1; }
    echo "    $t: $(grep -o 'Done [0-9]* runs' "$seeds/$t.log")"
  done
  rm -rf "$seeds" )
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ {p += $4; f += $6} END {printf "%d passed, %d failed\n", p, f}' "$log"
