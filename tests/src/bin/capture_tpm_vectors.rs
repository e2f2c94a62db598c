//! Captures golden TPM attestation vectors from a (software) TPM, so the collector's
//! verifier is tested without one.
//!
//! `scripts/swtpm.sh start DIR 2341; SIGHTLINE_TPM_TCTI=$(cat DIR/tcti) cargo run -p
//! sightline-tests --features bench,tpm --bin capture-tpm-vectors -- DIR/ek-roots.pem > server/tests/data/tpm-golden.json`

use std::path::PathBuf;

use clap::Parser;
use sightline_agent::keys::DeviceKey;
use sightline_agent::keys::tpm::TpmKey;

/// Captures golden TPM attestation vectors from a (software) TPM, as JSON on stdout.
///
/// The output is the content of server/tests/data/tpm-golden.json. The TPM is the one
/// SIGHTLINE_TPM_TCTI names (e.g. `$(cat DIR/tcti)` after `scripts/swtpm.sh start DIR 2341`).
#[derive(Parser)]
#[command(name = "capture-tpm-vectors")]
struct Args {
    /// PEM file of the EK root certificates the vectors carry (the swtpm's DIR/ek-roots.pem).
    ek_roots_pem: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let roots_path = Args::parse().ek_roots_pem;
    let dir = tempfile::tempdir()?;
    let key = TpmKey::open(dir.path(), &sightline_agent::keys::tpm_tcti())?;
    let ev = key.tpm_evidence()?.ok_or_else(|| anyhow::anyhow!("no TPM evidence"))?;
    let ak = sightline_server::attest::tpm2::TpmPublic::parse(&ev.ak_public)?;
    let ek = sightline_server::attest::tpm2::TpmPublic::parse(&ev.ek_public)?;
    let secret = [0x5a; 32];
    let nonce: Vec<u8> = (0u8..32).collect();
    let (blob, encrypted) = sightline_server::attest::makecred::make_credential(
        ek.rsa_modulus().unwrap_or_default(),
        &ak.name(),
        &secret,
    )?;
    let act = key.activate(&blob, &encrypted, &nonce)?;
    anyhow::ensure!(act.secret == secret, "the TPM recovered a different secret");
    let doc = serde_json::json!({
        "comment": "Captured from swtpm 0.7.1 by tests/src/bin/capture_tpm_vectors.rs; fabricated TPM, no real device.",
        "ek_roots_pem": std::fs::read_to_string(&roots_path)?,
        "ek_certificate": hex::encode(&ev.ek_certificate),
        "ek_public": hex::encode(&ev.ek_public),
        "ak_public": hex::encode(&ev.ak_public),
        "device_key_public": hex::encode(&ev.device_key_public),
        "device_key_spki": hex::encode(key.public_key_spki()),
        "secret": hex::encode(secret),
        "nonce": hex::encode(&nonce),
        "certify_info": hex::encode(&act.certify_info),
        "certify_signature": hex::encode(&act.certify_signature),
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
