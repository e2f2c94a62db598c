#!/usr/bin/env bash
# A software TPM for tests: `scripts/swtpm.sh start DIR PORT` provisions a TPM 2.0 in DIR with
# an EK certificate from a private CA in DIR (never /var/lib/swtpm-localca), starts it on
# 127.0.0.1:PORT (control channel PORT+1) and writes DIR/swtpm.pid, DIR/ek-roots.pem (the CA
# chain that signs its EK certificate) and DIR/tcti. `scripts/swtpm.sh stop DIR` kills it by PID.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
case "$cmd" in
start)
  port=${3:?port}
  mkdir -p "$dir/state" "$dir/localca"
  printf 'statedir = %s/localca\nsigningkey = %s/localca/signkey.pem\nissuercert = %s/localca/issuercert.pem\ncertserial = %s/localca/certserial\n' \
    "$dir" "$dir" "$dir" "$dir" >"$dir/localca.conf"
  printf -- '--platform-manufacturer Sightline\n--platform-version 2.1\n--platform-model Test\n' >"$dir/localca.options"
  printf 'create_certs_tool= /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s/localca.conf\ncreate_certs_tool_options = %s/localca.options\nactive_pcr_banks = sha256\n' \
    "$dir" "$dir" >"$dir/swtpm_setup.conf"
  swtpm_setup --tpm2 --tpmstate "$dir/state" --config "$dir/swtpm_setup.conf" \
    --create-ek-cert --create-platform-cert --lock-nvram --pcr-banks sha256 >"$dir/setup.log" 2>&1
  cat "$dir/localca/issuercert.pem" "$dir/localca/swtpm-localca-rootca-cert.pem" >"$dir/ek-roots.pem"
  swtpm socket --tpm2 --tpmstate dir="$dir/state" \
    --server type=tcp,bindaddr=127.0.0.1,port="$port" --ctrl type=tcp,bindaddr=127.0.0.1,port=$((port + 1)) \
    --flags not-need-init,startup-clear --log file="$dir/swtpm.log",level=1 &
  echo $! >"$dir/swtpm.pid"
  echo "swtpm:host=127.0.0.1,port=$port" >"$dir/tcti"
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && exit 0; sleep 0.1; done
  echo "swtpm did not start; see $dir/swtpm.log" >&2; exit 1
  ;;
stop)
  [ -f "$dir/swtpm.pid" ] && kill "$(cat "$dir/swtpm.pid")" 2>/dev/null || true
  ;;
esac
