//! Device keys in a (software) TPM, end to end, including attested enrollment and every way
//! it must fail. Needs a swtpm: `scripts/test.sh` starts one and sets SIGHTLINE_TPM_TCTI and
//! SIGHTLINE_TEST_EK_ROOTS (the private CA that signed its EK certificate). One test
//! function: a raw swtpm serves one connection at a time.

use std::time::{Duration, Instant};

use sightline_agent::keys::tpm::TpmKey;
use sightline_agent::keys::{DeviceKey, KeyChoice};
use sightline_agent::state::StateDir;
use sightline_proto::envelope;
use sightline_proto::pb::{self, enrollment_client::EnrollmentClient};
use sightline_server::attest::tpm2::TpmPublic;
use sightline_server::config::IngestConfig;
use sightline_server::domain::Assurance;
use sightline_tests::*;
use tonic::Code;

fn ek_roots() -> Vec<Vec<u8>> {
    let path = std::env::var("SIGHTLINE_TEST_EK_ROOTS")
        .expect("SIGHTLINE_TEST_EK_ROOTS is not set (scripts/test.sh sets it)");
    sightline_server::pki::read_pem_certificates(&[path.into()]).unwrap()
}

async fn enroll_tpm(
    c: &Collector,
) -> anyhow::Result<(tempfile::TempDir, sightline_agent::state::Enrollment)> {
    let dir = tempfile::tempdir()?;
    let state = StateDir::open(dir.path())?;
    let opts = sightline_agent::enroll::EnrollOptions {
        server: c.url.clone(),
        token: c.token(),
        ca_pem: c.ca_pem(),
        key_backend: KeyChoice::Tpm,
    };
    let e = sightline_agent::enroll::enroll(&state, &opts).await?;
    Ok((dir, e))
}

/// An honest Begin for `key`: its TPM evidence and a fresh token.
fn begin_request(c: &Collector, key: &TpmKey) -> pb::BeginEnrollmentRequest {
    let ev = key.tpm_evidence().unwrap().unwrap();
    pb::BeginEnrollmentRequest {
        token: c.token(),
        facts: Some(pb::DeviceFacts {
            hostname: "tpm-host".into(),
            os: "linux".into(),
            ..Default::default()
        }),
        key: Some(pb::KeyAttestation {
            backend: pb::KeyBackend::Tpm as i32,
            device_key_spki: key.public_key_spki(),
            tpm: Some(pb::TpmEvidence {
                ek_certificate: ev.ek_certificate,
                ek_public: ev.ek_public,
                ak_public: ev.ak_public,
                device_key_public: ev.device_key_public,
            }),
        }),
    }
}

/// Drives Begin/Complete by hand with a real TPM key, letting a test corrupt one step.
struct Raw<'a> {
    c: &'a Collector,
    key: &'a TpmKey,
}

impl Raw<'_> {
    async fn enroll(
        &self,
        begin: impl FnOnce(&mut pb::BeginEnrollmentRequest),
        complete: impl FnOnce(&mut pb::CompleteEnrollmentRequest),
        nonce_for_certify: Option<Vec<u8>>,
    ) -> Result<pb::EnrollmentResult, tonic::Status> {
        let ch = sightline_agent::transport::connect(&self.c.url, &self.c.ca_pem(), None).await.unwrap();
        let mut client = EnrollmentClient::new(ch);
        let spki = self.key.public_key_spki();
        let mut req = begin_request(self.c, self.key);
        begin(&mut req);
        let challenge = client.begin(req).await?.into_inner();
        let nonce = nonce_for_certify.unwrap_or_else(|| challenge.nonce.clone());
        let act = self.key.activate(&challenge.credential_blob, &challenge.encrypted_secret, &nonce).unwrap();
        let (_, tls_spki) = sightline_agent::keys::new_tls_key_pem().unwrap();
        let mut msg = envelope::ENROLL_POP_CONTEXT.to_vec();
        msg.extend(envelope::enroll_pop_message(&challenge.nonce, &spki, &tls_spki));
        let mut req = pb::CompleteEnrollmentRequest {
            challenge_id: challenge.challenge_id,
            proof_of_possession: self.key.sign(&msg).unwrap(),
            tls_key_spki: tls_spki,
            activated_secret: act.secret,
            certify_info: act.certify_info,
            certify_signature: act.certify_signature,
        };
        complete(&mut req);
        Ok(client.complete(req).await?.into_inner())
    }
}

#[tokio::test]
async fn tpm_keys_enroll_attested_only_with_proof_and_stream() {
    assert!(
        std::env::var_os("SIGHTLINE_TPM_TCTI").is_some(),
        "SIGHTLINE_TPM_TCTI is not set: start a swtpm (scripts/test.sh does)"
    );
    let roots = ek_roots();

    // 1. EK certificate chains to the configured root: hardware_attested, and it streams.
    let c = Collector::start_with(IngestConfig { ek_roots: roots.clone(), ..Default::default() }).await;
    let started = Instant::now();
    let (dir, e) = enroll_tpm(&c).await.unwrap();
    let enroll_time = started.elapsed();
    assert_eq!(e.assurance, "hardware_attested");
    let d = c.shared.store.device(&e.device_id).unwrap().unwrap();
    assert_eq!((d.key_backend.as_str(), d.assurance.as_str()), ("tpm", "hardware_attested"));
    assert_eq!(d.hardware_id.as_ref().map(String::len), Some(64), "the TPM's EK hash identifies the device");
    let run = run_options(
        dir.path(),
        &fixtures().join("linux"),
        true,
        KeyChoice::Auto,
        Duration::from_secs(30 * 24 * 3600),
    );
    let started = Instant::now();
    sightline_agent::run::run(run, std::future::pending()).await.unwrap();
    let run_time = started.elapsed();
    let d = c.shared.store.device(&e.device_id).unwrap().unwrap();
    assert!(d.seq_head > 0 && d.last_attested_ms.is_some());
    println!("swtpm: attested enrollment {enroll_time:?}, one scan signed and delivered {run_time:?}");

    // 1b. The same TPM enrolling again (a reinstalled agent: new state dir, new device key)
    //     is the same device record, and its evidence chain continues.
    let head_before = d.seq_head;
    let (dir2, e2) = enroll_tpm(&c).await.unwrap();
    assert_eq!(e2.device_id, e.device_id);
    let run = run_options(
        dir2.path(),
        &fixtures().join("macos"),
        true,
        KeyChoice::Auto,
        Duration::from_secs(30 * 24 * 3600),
    );
    sightline_agent::run::run(run, std::future::pending()).await.unwrap();
    let d = c.shared.store.device(&e.device_id).unwrap().unwrap();
    assert!(d.seq_head > head_before);
    assert_eq!(c.shared.store.count_observations(&e.device_id).unwrap(), d.seq_head);
    assert_eq!(c.shared.store.devices().unwrap().len(), 1);
    drop((dir, dir2));

    // 2. Raw ceremonies with the real TPM key, each corrupting one step: refused, nothing stored.
    let key_dir = tempfile::tempdir().unwrap();
    let key = TpmKey::open(key_dir.path(), &sightline_agent::keys::tpm_tcti()).unwrap();
    let raw = Raw { c: &c, key: &key };
    let before = c.shared.store.devices().unwrap().len();
    let expect = |r: Result<pb::EnrollmentResult, tonic::Status>, code: Code, text: &str| {
        let e = r.err().unwrap_or_else(|| panic!("expected a refusal mentioning {text:?}"));
        assert_eq!(e.code(), code, "{}", e.message());
        assert!(e.message().contains(text), "{:?} should mention {text:?}", e.message());
    };
    // The honest ceremony works (so each failure below is the corruption's doing); it is the
    // same TPM, so the same device record.
    let honest = raw.enroll(|_| {}, |_| {}, None).await.unwrap();
    assert_eq!(
        (honest.assurance.as_str(), honest.device_id.as_str()),
        ("hardware_attested", e.device_id.as_str())
    );
    let after_ok = before;
    expect(raw.enroll(|_| {}, |_| {}, Some(vec![7; 32])).await, Code::PermissionDenied, "nonce");
    expect(
        raw.enroll(|_| {}, |r| r.activated_secret = vec![0; 32], None).await,
        Code::PermissionDenied,
        "credential activation",
    );
    expect(
        raw.enroll(
            |b| {
                let t = b.key.as_mut().unwrap().tpm.as_mut().unwrap();
                let last = t.ek_public.len() - 1;
                t.ek_public[last] ^= 0x01; // another EK than the certificate certifies
            },
            |_| {},
            None,
        )
        .await,
        Code::PermissionDenied,
        "another key",
    );
    expect(
        raw.enroll(
            |b| {
                let t = b.key.as_mut().unwrap().tpm.as_mut().unwrap();
                t.device_key_public[7] &= !0x02; // clear fixedTPM in objectAttributes
            },
            |_| {},
            None,
        )
        .await,
        Code::PermissionDenied,
        "fixedTPM",
    );
    expect(
        raw.enroll(
            |b| {
                b.key.as_mut().unwrap().device_key_spki =
                    sightline_agent::keys::SoftwareKey::generate().unwrap().public_key_spki()
            },
            |_| {},
            None,
        )
        .await,
        Code::PermissionDenied,
        "not the enrolled device key",
    );
    // Another machine's TPM cannot answer a challenge made for this one: ActivateCredential
    // fails inside that TPM, so no secret (and no certification) can be produced.
    let other_tcti = std::env::var("SIGHTLINE_TEST_TPM2_TCTI")
        .expect("SIGHTLINE_TEST_TPM2_TCTI is not set (scripts/test.sh sets it)");
    let other_dir = tempfile::tempdir().unwrap();
    let other = TpmKey::open(other_dir.path(), &other_tcti).unwrap();
    other.tpm_evidence().unwrap();
    let ch = sightline_agent::transport::connect(&c.url, &c.ca_pem(), None).await.unwrap();
    let challenge = EnrollmentClient::new(ch).begin(begin_request(&c, &key)).await.unwrap().into_inner();
    let answer = other.activate(&challenge.credential_blob, &challenge.encrypted_secret, &challenge.nonce);
    assert!(answer.is_err(), "another TPM recovered the credential: {answer:?}");
    drop(other);

    // A key claiming to be in a TPM with no evidence at all.
    expect(
        raw.enroll(|b| b.key.as_mut().unwrap().tpm = None, |_| {}, None).await,
        Code::InvalidArgument,
        "TPM evidence",
    );
    assert_eq!(c.shared.store.devices().unwrap().len(), after_ok, "a refused ceremony stored a device");

    // A revoked device's TPM cannot come back under a new enrollment.
    c.shared.store.revoke_device(&e.device_id, 1).unwrap();
    expect(raw.enroll(|_| {}, |_| {}, None).await, Code::PermissionDenied, "revoked");
    // Nor under another spelling of the same EK: the exponent written as 0 (TPM shorthand
    // for 65537) or in full is the same key, so the same TPM.
    for exponent in [0, 65_537] {
        expect(
            raw.enroll(
                |b| {
                    let t = b.key.as_mut().unwrap().tpm.as_mut().unwrap();
                    t.ek_public = TpmPublic::respell_rsa_exponent(&t.ek_public, exponent).unwrap();
                },
                |_| {},
                None,
            )
            .await,
            Code::PermissionDenied,
            "revoked",
        );
    }
    drop(key);
    c.stop().await;

    // 3. An EK certificate that does not chain to the configured roots is refused.
    let wrong_roots = Collector::start().await.ca_pem();
    let other = sightline_server::pki::read_pem_certificates(&[{
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &wrong_roots).unwrap();
        f.into_temp_path().keep().unwrap()
    }])
    .unwrap();
    let c = Collector::start_with(IngestConfig { ek_roots: other, ..Default::default() }).await;
    let err = enroll_tpm(&c).await.unwrap_err();
    assert!(format!("{err:#}").contains("does not chain to a trusted EK root"), "{err:#}");
    assert!(c.shared.store.devices().unwrap().is_empty());
    c.stop().await;

    // 4. Without configured roots the same TPM is only hardware_unattested, and a collector
    //    that demands attestation refuses it.
    let c = Collector::start().await;
    assert_eq!(enroll_tpm(&c).await.unwrap().1.assurance, "hardware_unattested");
    c.stop().await;
    let strict = Collector::start_with(IngestConfig {
        require_assurance: Assurance::HardwareAttested,
        ..Default::default()
    })
    .await;
    let err = enroll_tpm(&strict).await.unwrap_err();
    assert!(format!("{err:#}").contains("hardware_attested"), "{err:#}");
    strict.stop().await;
}
