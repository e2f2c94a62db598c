//! Evidence bundles: a device's signed batches exactly as received, plus what the collector
//! knows about the device (its enrolled key, assurance, hardware id), in one JSON file an
//! auditor verifies offline — no access to the collector needed.
//!
//! ```text
//! {"schema": "sightline.evidence.v1",
//!  "manifest": "<JSON text: device facts + per-batch seq range and hash>",
//!  "manifest_signature": "<hex DER, collector signing key over sightline.v1.evidence\0 || manifest>",
//!  "collector_signing_key": "<hex SPKI>",
//!  "batches": [{"payload": "<base64>", "signature": "<base64>"}, …]}
//! ```
//!
//! `verify` checks the manifest signature (and, with `--collector-key`, that it is the
//! collector key the auditor pinned), then every batch against the *device* key: signature,
//! device id, sequence range and hash as the manifest lists them, and the hash chain from one
//! batch to the next. The manifest is kept as the exact signed text, so nothing is
//! re-serialised before verifying. [`sign_manifest`] and [`open_manifest`] are that signed
//! frame alone, which recertification reports (`review`) use too under their own context.

use anyhow::Context;
use base64::Engine;
use prost::Message;
use serde_json::{Value, json};
use sightline_proto::envelope::{self, EVIDENCE_CONTEXT};
use sightline_proto::{p256, pb};

use crate::clock::rfc3339 as time;
use crate::pki::Pki;
use crate::store::{DeviceStore, ReadModel};

const SCHEMA: &str = "sightline.evidence.v1";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Builds the bundle for one device's stored batches.
pub fn export(
    store: &(impl DeviceStore + ReadModel + ?Sized),
    pki: &Pki,
    device_id: &str,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let d = store.device(device_id)?.ok_or_else(|| anyhow::anyhow!("no device {device_id}"))?;
    let batches = store.batches(device_id)?;
    let manifest = json!({
        "exported_at": time(now_ms),
        "device": {
            "device_id": d.id, "hostname": d.hostname, "os": d.os, "os_version": d.os_version,
            "assurance": d.assurance, "key_backend": d.key_backend, "hardware_id": d.hardware_id,
            "enrolled_at": time(d.enrolled_at_ms), "revoked_at": d.revoked_at_ms.map(time),
            "key_spki": hex::encode(&d.key_spki), "key_id": p256::key_id(&d.key_spki),
        },
        "batches": batches.iter().map(|b| json!({
            "first_seq": b.first_seq, "last_seq": b.last_seq,
            "prev_hash": hex::encode(b.prev_hash), "hash": hex::encode(b.hash),
            "received_at": time(b.received_at_ms),
        })).collect::<Vec<_>>(),
    });
    let mut bundle = sign_manifest(pki, SCHEMA, EVIDENCE_CONTEXT, &manifest)?;
    bundle.insert(
        "batches".into(),
        batches
            .iter()
            .map(|b| json!({ "payload": b64().encode(&b.payload), "signature": b64().encode(&b.signature) }))
            .collect(),
    );
    Ok(Value::Object(bundle))
}

/// A document signed by the collector: `schema`, the manifest as the exact signed JSON text,
/// its signature under `context` and the collector's signing key. The caller adds whatever
/// the manifest vouches for (an evidence bundle's batches).
pub fn sign_manifest(
    pki: &Pki,
    schema: &str,
    context: &[u8],
    manifest: &Value,
) -> anyhow::Result<serde_json::Map<String, Value>> {
    let manifest = serde_json::to_string(manifest)?;
    let signature = pki.sign(context, manifest.as_bytes())?;
    let mut doc = serde_json::Map::new();
    doc.insert("schema".into(), schema.into());
    doc.insert("manifest".into(), manifest.into());
    doc.insert("manifest_signature".into(), hex::encode(signature).into());
    doc.insert("collector_signing_key".into(), hex::encode(pki.signing_key_spki()).into());
    Ok(doc)
}

/// A document [`sign_manifest`] made, opened: its manifest verified under the collector key
/// it names (and, `pinned`, that this is the key the auditor trusts: its id or hex SPKI).
#[derive(Debug, Clone)]
pub struct Opened {
    pub doc: Value,
    pub manifest: Value,
    pub collector_key_id: String,
}

/// Checks a signed document offline: its schema, the pin, and the manifest signature.
pub fn open_manifest(
    bytes: &[u8],
    schema: &str,
    context: &[u8],
    pinned: Option<&str>,
) -> anyhow::Result<Opened> {
    let v: Value = serde_json::from_slice(bytes).context("the file is not JSON")?;
    anyhow::ensure!(v["schema"] == schema, "not a {schema} document");
    let field = |k: &str| v[k].as_str().with_context(|| format!("the document has no `{k}`"));
    let collector_spki =
        hex::decode(field("collector_signing_key")?).context("collector_signing_key is not hex")?;
    let collector_key_id = p256::key_id(&collector_spki);
    if let Some(pin) = pinned
        && pin != collector_key_id
        && pin != hex::encode(&collector_spki)
    {
        anyhow::bail!("signed by collector key {collector_key_id}, not the pinned {pin}");
    }
    let manifest_text = field("manifest")?;
    let sig = hex::decode(field("manifest_signature")?).context("manifest_signature is not hex")?;
    p256::verify(&collector_spki, context, manifest_text.as_bytes(), &sig)
        .map_err(|_| anyhow::anyhow!("the manifest signature does not verify: the document was altered"))?;
    let manifest: Value = serde_json::from_str(manifest_text).context("the manifest is not JSON")?;
    Ok(Opened { doc: v, manifest, collector_key_id })
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub device_id: String,
    pub assurance: String,
    pub collector_key_id: String,
    pub batches: usize,
    pub observations: usize,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Verifies a bundle offline. `pinned` is the collector key id (or hex SPKI) the auditor
/// trusts; without it the signature is checked against the key the bundle names.
pub fn verify(bundle: &[u8], pinned: Option<&str>) -> anyhow::Result<Verified> {
    let Opened { doc: v, manifest, collector_key_id } =
        open_manifest(bundle, SCHEMA, EVIDENCE_CONTEXT, pinned)?;
    let device = &manifest["device"];
    let device_id = device["device_id"].as_str().context("the manifest names no device")?;
    let device_spki =
        hex::decode(device["key_spki"].as_str().unwrap_or_default()).context("device key is not hex")?;
    let listed = manifest["batches"].as_array().context("the manifest lists no batches")?;
    let batches = v["batches"].as_array().context("the bundle has no batches")?;
    anyhow::ensure!(
        listed.len() == batches.len(),
        "the manifest lists {} batches, the bundle holds {}",
        listed.len(),
        batches.len()
    );

    let mut prev: Option<[u8; 32]> = None;
    let mut observations = 0;
    for (i, (b, l)) in batches.iter().zip(listed).enumerate() {
        let decode = |k: &str| -> anyhow::Result<Vec<u8>> {
            b64()
                .decode(b[k].as_str().unwrap_or_default())
                .with_context(|| format!("batch {i}: `{k}` is not base64"))
        };
        let (payload, signature) = (decode("payload")?, decode("signature")?);
        let inner = pb::Batch::decode(payload.as_slice())
            .with_context(|| format!("batch {i}: payload is not a Batch"))?;
        let signed = pb::SignedBatch {
            device_id: inner.device_id.clone(),
            key_id: p256::key_id(&device_spki),
            first_seq: inner.first_seq,
            prev_batch_hash: inner.prev_batch_hash.clone(),
            payload,
            signature,
        };
        let ok = envelope::open(&signed, &device_spki)
            .map_err(|e| anyhow::anyhow!("batch {i} (seq {}): {e}", inner.first_seq))?;
        anyhow::ensure!(
            ok.batch.device_id == device_id,
            "batch {i} is signed for device {}",
            ok.batch.device_id
        );
        let hash = hex::encode(ok.hash);
        anyhow::ensure!(
            l["first_seq"] == ok.first_seq && l["last_seq"] == ok.last_seq && l["hash"] == hash.as_str(),
            "batch {i} does not match the manifest (seq {}..{}, hash {hash})",
            ok.first_seq,
            ok.last_seq
        );
        if let Some(p) = prev {
            anyhow::ensure!(
                ok.prev_hash == p,
                "batch {i} (seq {}) does not continue the chain",
                ok.first_seq
            );
        }
        prev = Some(ok.hash);
        observations += ok.batch.observations.len();
    }
    let seq = |k: &str, l: Option<&Value>| l.and_then(|l| l[k].as_u64()).unwrap_or(0);
    Ok(Verified {
        device_id: device_id.to_owned(),
        assurance: device["assurance"].as_str().unwrap_or_default().to_owned(),
        collector_key_id,
        batches: batches.len(),
        observations,
        first_seq: seq("first_seq", listed.first()),
        last_seq: seq("last_seq", listed.last()),
    })
}
