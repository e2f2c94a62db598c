#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only the Rust toolchain and Node.js:
# (the macOS and Windows agents, under zig and Wine, are in scripts/cross-platform.sh)
# installs what the tests need (a C compiler, libtss2, a software TPM, cargo-deb, Chromium and
# playwright-core for the dashboard, PostgreSQL, the OCSF schema validator in a Python venv), starts swtpms and a private PostgreSQL on
# loopback for the TPM, store conformance and replica tests, checks
# formatting and lints, runs every test, then builds and checks the agent's Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's heading carries the seconds since the start, so a slow phase shows in CI's log.
phase() { echo "==> [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

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
# The third-party protocol clients the tests drive (tests/clients/*.py): gRPC's own Python
# client for grpc.health.v1 and reflection, the Prometheus project's metrics parsers. Pinned,
# in a venv under target/ (reused while it has them).
pyclients=target/pyclients
if ! "$pyclients/bin/python" -c 'import grpc_health, grpc_reflection, prometheus_client' 2>/dev/null; then
  rm -rf "$pyclients"
  python3 -m venv "$pyclients"
  "$pyclients/bin/pip" install -q --disable-pip-version-check grpcio==1.85.1 grpcio-health-checking==1.85.1 \
    grpcio-reflection==1.85.1 prometheus-client==0.26.0 protobuf==7.36.2 typing_extensions==4.16.0
fi
# The OCSF validator the export tests run (tests/ocsf/validate.py): ocsf-lib compiles the
# committed schema repository, ocsf-json-schema turns it into JSON Schema, jsonschema checks.
ocsf=target/ocsf-validator
if [ ! -x "$ocsf/bin/python" ] || ! "$ocsf/bin/python" -c 'import ocsf.compile, ocsf_json_schema, jsonschema' 2>/dev/null; then
  rm -rf "$ocsf"
  python3 -m venv "$ocsf"
  "$ocsf/bin/pip" install -q ocsf-lib==0.10.4 ocsf-json-schema==1.2.0 jsonschema==4.26.0 dacite==1.9.2 \
    semver==3.1.2 termcolor==2.5.0 attrs==26.1.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
    rpds-py==2026.9.1 typing_extensions==4.16.0
fi
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

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy -D warnings (all features, TPM included)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
phase "unsafe code only where allowed"
# FFI to the OS is confined to the platform modules: macOS and Windows system APIs, the
# hardware key backends and the Windows service entry point.
if grep -rln --include=*.rs "allow(unsafe_code)" agent server proto tests \
    | grep -v -E "^agent/src/(macos/|windows/|winservice\.rs|keys/(pcp|enclave)\.rs)"; then
  echo "unsafe_code is allowed only in agent/src/{macos,windows}/, keys/{pcp,enclave}.rs and winservice.rs" >&2
  exit 1
fi
phase "cargo build (binaries the system tests drive)"
# The same features as `cargo test` below, so its build of these binaries is a no-op rather
# than a second compile of the agent and of every dependency whose features differ.
cargo build --workspace --bins --all-features --quiet
phase "cargo test"
log="$(mktemp)"
# pipefail makes a failing cargo fail this line; tee keeps the full output visible.
cargo test --workspace --all-targets --all-features 2>&1 | tee "$log"
phase "OpenAPI: the document the collector serves is valid OpenAPI"
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
phase "packaging: the .deb built, inspected, installed, enrolled through its unit, purged"
# These checks test how the packages are laid out, installed and started, not how fast the
# binary runs: the release build they package skips LTO and most optimisation here, which
# takes minutes off a cold 2-core CI run (a real release keeps Cargo.toml's profile).
export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
scripts/check-packaging.sh
phase "macOS and Windows agents, .rpm and MSI (scripts/cross-platform.sh)"
scripts/cross-platform.sh
phase "fuzz targets: built on nightly and each run over its committed seeds (a smoke run)"
rustup toolchain list | grep -q '^nightly' || { echo "the nightly toolchain is missing (cargo-fuzz needs it)" >&2; exit 1; }
# --debug: a tool installed for one run builds in half the time and runs as fast as needed.
command -v cargo-fuzz >/dev/null || cargo install --locked --debug --quiet cargo-fuzz
# Unoptimised and without a sanitizer: this only proves every target builds and holds on
# its seeds; the long runs (README) use the defaults.
( cd fuzz && cargo fmt --check && cargo +nightly fuzz build --dev --sanitizer none >/dev/null
  seeds="$(mktemp -d)"
  for t in $(cargo +nightly fuzz list); do
    cp -r "corpus/$t" "$seeds/$t"
    # A fixed seed and a bounded count: the same mutations on every run, so a red run is
    # reproducible and never the luck of the draw (long random runs are the README's).
    cargo +nightly fuzz run --dev --sanitizer none "$t" "$seeds/$t" -- -seed=1 -runs=1500 -max_total_time=30 >"$seeds/$t.log" 2>&1 \
      || { tail -40 "$seeds/$t.log" >&2; echo "fuzz target $t failed" >&2; exit 1; }
    echo "    $t: $(grep -o 'Done [0-9]* runs' "$seeds/$t.log")"
  done
  rm -rf "$seeds" )
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ {p += $4; f += $6} END {printf "%d passed, %d failed\n", p, f}' "$log"
phase "done"
