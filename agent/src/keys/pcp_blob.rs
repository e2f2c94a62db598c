//! The structures the Windows Platform Crypto Provider hands out, parsed portably so the
//! parsing is tested on Linux (the provider itself only runs on Windows).
//!
//! Layouts, as Microsoft's own PCP tooling reads and writes them (TSS.MSR `PCPTool.v11`:
//! `dll/AttestationApi.h`, `dll/TPM20.cpp`, `dll/AttestationApi.cpp`), as go-attestation
//! parses them (`attest/pcp_windows.go`, `attest/tpm_windows.go`) and as [MS-WCCE] 2.2.2.5
//! documents the key attestation:
//!
//! - `BCRYPT_OPAQUE_KEY_BLOB` of a TPM 2.0 key: a little-endian `PCP_KEY_BLOB_WIN8` header
//!   (magic `'MPCP'`, cbHeader, pcpType = 2, flags, then the sizes cbPublic, cbPrivate,
//!   cbMigrationPublic, cbMigrationPrivate, cbPolicyDigestList, cbPCRBinding, cbPCRDigest,
//!   cbEncryptedSecret, cbTpm12HostageBlob; newer providers append pcrAlgId, which is why the
//!   header says its own size), then at cbHeader a TPM2B_PUBLIC of exactly cbPublic bytes.
//! - `PCP_TPM12_IDBINDING` of a TPM 2.0 AIK: TPM2B_PUBLIC ‖ TPM2B_CREATION_DATA ‖ TPM2B_ATTEST
//!   ‖ TPMT_SIGNATURE, big-endian (a TPM 1.2 binding starts with the version 1.1.0.0).
//! - `PCP_TPM12_IDACTIVATION` input: TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET.
//! - The key attestation (`NCryptCreateClaim`): a little-endian `PCP_KEY_ATTESTATION_BLOB`
//!   header (magic `'SDAK'`, Platform = 2, HeaderSize, cbKeyAttest, cbSignature, cbKeyBlob),
//!   then the TPMS_ATTEST of TPM2_Certify, the AK's signature over it and the certified key's
//!   PCP key blob, exactly filling the blob.
//! - `PCP_EKPUB`: a `BCRYPT_RSAPUBLIC_BLOB` (`RSA1`, little-endian sizes, big-endian exponent
//!   and modulus).
//!
//! The magics are C multi-character constants (`'MPCP'` is 0x4D504350), stored
//! little-endian: the blobs start with the bytes "PCPM" and "KADS".
//!
//! Every parser is bounds-checked and refuses trailing bytes where the structure defines its
//! own length; nothing here panics on what the provider (or anyone) hands it.

use serde::{Deserialize, Serialize};

use super::KeyError;

/// `BCRYPT_PCP_KEY_MAGIC`, `'MPCP'`.
pub const PCP_KEY_MAGIC: u32 = 0x4D50_4350;
/// `PCP_KEY_ATTESTATION_MAGIC`, `'SDAK'`.
pub const KEY_ATTESTATION_MAGIC: u32 = 0x5344_414B;
/// `BCRYPT_RSAPUBLIC_MAGIC`, "RSA1".
pub const BCRYPT_RSAPUBLIC_MAGIC: u32 = 0x3141_5352;
/// `PCPTYPE_TPM20` and `TPM_VERSION_20`: both say "TPM 2.0" with the value 2.
pub const PCP_TPM20: u32 = 2;
/// `sizeof(PCP_KEY_BLOB_WIN8)`: thirteen 32-bit fields.
const PCP_KEY_BLOB_WIN8_LEN: usize = 13 * 4;
/// `sizeof(PCP_KEY_ATTESTATION_BLOB)`: six 32-bit fields.
const KEY_ATTESTATION_HEADER_LEN: usize = 6 * 4;

pub const ALG_RSA: u16 = 0x0001;
pub const ALG_SHA1: u16 = 0x0004;
pub const ALG_AES: u16 = 0x0006;
pub const ALG_SHA256: u16 = 0x000b;
pub const ALG_NULL: u16 = 0x0010;
pub const ALG_RSASSA: u16 = 0x0014;
pub const ALG_ECDSA: u16 = 0x0018;
pub const ALG_ECC: u16 = 0x0023;
pub const ALG_CFB: u16 = 0x0043;
const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;

/// The TCG default EK template (EK Credential Profile 2.0, template L-1): RSA-2048,
/// AES-128-CFB, the PolicySecret(endorsement) policy, and these attributes (fixedTPM,
/// fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted, decrypt).
const EK_ATTRIBUTES: u32 = 0x0003_00b2;
const EK_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd,
    0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

/// Why a provider structure was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("{0} is truncated")]
    Truncated(&'static str),
    #[error("{0} has trailing bytes")]
    Trailing(&'static str),
    #[error("{what}: {why}")]
    Invalid { what: &'static str, why: String },
}

fn invalid(what: &'static str, why: impl Into<String>) -> BlobError {
    BlobError::Invalid { what, why: why.into() }
}

impl From<BlobError> for KeyError {
    fn from(e: BlobError) -> KeyError {
        KeyError::Unavailable(format!("the Platform Crypto Provider returned a malformed {e}"))
    }
}

/// A bounds-checked cursor: TPM structures are big-endian, the provider's headers
/// little-endian.
struct Cursor<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Cursor<'a> {
        Cursor { rest: bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BlobError> {
        let (head, rest) = self.rest.split_at_checked(n).ok_or(BlobError::Truncated(self.what))?;
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BlobError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn be16(&mut self) -> Result<u16, BlobError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn be32(&mut self) -> Result<u32, BlobError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn le32(&mut self) -> Result<u32, BlobError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian 32-bit size, as a `usize`.
    fn le_size(&mut self) -> Result<usize, BlobError> {
        usize::try_from(self.le32()?).map_err(|_| BlobError::Truncated(self.what))
    }

    /// A TPM2B: 16-bit size, then that many bytes.
    fn tpm2b(&mut self) -> Result<&'a [u8], BlobError> {
        let n = self.be16()?;
        self.take(usize::from(n))
    }

    /// An algorithm-tagged parameter: the algorithm, then a 16-bit detail unless it is NULL.
    fn alg_with_detail(&mut self) -> Result<(u16, u16), BlobError> {
        let alg = self.be16()?;
        let detail = if alg == ALG_NULL { ALG_NULL } else { self.be16()? };
        Ok((alg, detail))
    }

    fn finish(self) -> Result<(), BlobError> {
        if self.rest.is_empty() { Ok(()) } else { Err(BlobError::Trailing(self.what)) }
    }
}

/// The TPMT_PUBLIC inside a key's `BCRYPT_OPAQUE_KEY_BLOB` (a `PCP_KEY_BLOB_WIN8`).
pub fn key_blob_public(blob: &[u8]) -> Result<Vec<u8>, BlobError> {
    const WHAT: &str = "PCP key blob";
    let mut c = Cursor::new(blob, WHAT);
    let magic = c.le32()?;
    if magic != PCP_KEY_MAGIC {
        return Err(invalid(WHAT, format!("magic {magic:#010x} is not 'MPCP'")));
    }
    let header_len = c.le_size()?;
    let pcp_type = c.le32()?;
    if pcp_type != PCP_TPM20 {
        return Err(invalid(WHAT, format!("type {pcp_type} is not a TPM 2.0 key")));
    }
    let _flags = c.le32()?;
    // cbPublic, then the eight sizes of what follows it; all must fit in the blob.
    let mut sizes = [0usize; 9];
    for s in &mut sizes {
        *s = c.le_size()?;
    }
    if header_len < PCP_KEY_BLOB_WIN8_LEN {
        return Err(invalid(WHAT, format!("header of {header_len} bytes is shorter than PCP_KEY_BLOB_WIN8")));
    }
    let total = sizes.iter().try_fold(header_len, |acc, s| acc.checked_add(*s));
    if total.is_none_or(|t| t > blob.len()) {
        return Err(BlobError::Truncated(WHAT));
    }
    let public = blob.get(header_len..).and_then(|b| b.get(..sizes[0])).ok_or(BlobError::Truncated(WHAT))?;
    let mut p = Cursor::new(public, "PCP key blob's TPM2B_PUBLIC");
    let area = p.tpm2b()?;
    p.finish()?;
    PublicArea::parse(area)?;
    Ok(area.to_vec())
}

/// What the provider's identity binding of a TPM 2.0 AIK holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdBinding {
    /// The AIK's TPMT_PUBLIC.
    pub ak_public: Vec<u8>,
    pub creation_data: Vec<u8>,
    /// TPMS_ATTEST of TPM2_CertifyCreation, and the AIK's signature over it.
    pub attest: Vec<u8>,
    pub signature: TpmtSignature,
}

/// Parses `PCP_TPM12_IDBINDING` (despite the name, TPM 2.0 structures on a TPM 2.0).
pub fn parse_id_binding(bytes: &[u8]) -> Result<IdBinding, BlobError> {
    const WHAT: &str = "AIK identity binding";
    if bytes.starts_with(&[1, 1, 0, 0]) {
        return Err(invalid(WHAT, "it is a TPM 1.2 binding; a TPM 2.0 is required"));
    }
    let mut c = Cursor::new(bytes, WHAT);
    let ak_public = c.tpm2b()?;
    let creation_data = c.tpm2b()?;
    let attest = c.tpm2b()?;
    let signature = parse_signature(c.rest)?;
    PublicArea::parse(ak_public)?;
    Ok(IdBinding {
        ak_public: ak_public.to_vec(),
        creation_data: creation_data.to_vec(),
        attest: attest.to_vec(),
        signature,
    })
}

/// A TPMT_SIGNATURE of the two kinds an AK makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmtSignature {
    RsaSsa { hash: u16, sig: Vec<u8> },
    EcDsa { hash: u16, r: Vec<u8>, s: Vec<u8> },
}

impl TpmtSignature {
    /// The signature as the collector verifies it: the raw RSASSA-PKCS1-v1_5 bytes, or a DER
    /// ECDSA signature.
    pub fn to_wire(&self) -> Result<Vec<u8>, BlobError> {
        match self {
            TpmtSignature::RsaSsa { sig, .. } => Ok(sig.clone()),
            TpmtSignature::EcDsa { r, s, .. } => {
                let (r, s) = (super::der::strip_zeros(r), super::der::strip_zeros(s));
                if r.len() > 32 || s.len() > 32 {
                    return Err(invalid("TPMT_SIGNATURE", "ECDSA value longer than P-256's"));
                }
                Ok(super::der::der_signature(r, s))
            }
        }
    }
}

/// Parses a TPMT_SIGNATURE that fills `bytes` exactly.
pub fn parse_signature(bytes: &[u8]) -> Result<TpmtSignature, BlobError> {
    const WHAT: &str = "TPMT_SIGNATURE";
    let mut c = Cursor::new(bytes, WHAT);
    let alg = c.be16()?;
    let hash = c.be16()?;
    let sig = match alg {
        ALG_RSASSA => TpmtSignature::RsaSsa { hash, sig: c.tpm2b()?.to_vec() },
        ALG_ECDSA => TpmtSignature::EcDsa { hash, r: c.tpm2b()?.to_vec(), s: c.tpm2b()?.to_vec() },
        other => return Err(invalid(WHAT, format!("unsupported signature algorithm {other:#06x}"))),
    };
    c.finish()?;
    Ok(sig)
}

/// The parts of a `PCP_KEY_ATTESTATION_BLOB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttestation {
    /// TPMS_ATTEST of TPM2_Certify.
    pub certify_info: Vec<u8>,
    /// The AK's signature over `certify_info`, as the provider wrote it.
    pub signature: Vec<u8>,
    /// The certified key's PCP key blob.
    pub key_blob: Vec<u8>,
}

/// Parses what `NCryptCreateClaim(NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT)` returns on a TPM 2.0.
pub fn parse_key_attestation(blob: &[u8]) -> Result<KeyAttestation, BlobError> {
    const WHAT: &str = "key attestation";
    let mut c = Cursor::new(blob, WHAT);
    let magic = c.le32()?;
    if magic != KEY_ATTESTATION_MAGIC {
        return Err(invalid(WHAT, format!("magic {magic:#010x} is not 'SDAK'")));
    }
    let platform = c.le32()?;
    if platform != PCP_TPM20 {
        return Err(invalid(WHAT, format!("platform {platform} is not TPM 2.0")));
    }
    let header_len = c.le_size()?;
    let (attest_len, sig_len, key_len) = (c.le_size()?, c.le_size()?, c.le_size()?);
    if header_len < KEY_ATTESTATION_HEADER_LEN {
        return Err(invalid(WHAT, format!("header of {header_len} bytes is too short")));
    }
    // As Microsoft's validator: the parts fill the blob exactly.
    let total = [attest_len, sig_len, key_len].iter().try_fold(header_len, |acc, n| acc.checked_add(*n));
    match total {
        Some(t) if t == blob.len() => {}
        Some(t) if t < blob.len() => return Err(BlobError::Trailing(WHAT)),
        _ => return Err(BlobError::Truncated(WHAT)),
    }
    let mut body = Cursor::new(blob.get(header_len..).ok_or(BlobError::Truncated(WHAT))?, WHAT);
    let certify_info = body.take(attest_len)?.to_vec();
    let signature = body.take(sig_len)?.to_vec();
    let key_blob = body.take(key_len)?.to_vec();
    body.finish()?;
    Ok(KeyAttestation { certify_info, signature, key_blob })
}

/// What TPM2_Certify's TPMS_ATTEST says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certification {
    pub extra_data: Vec<u8>,
    pub certified_name: Vec<u8>,
}

/// Parses a TPMS_ATTEST of type CERTIFY, refusing trailing bytes (they would be signed too).
pub fn parse_certification(attest: &[u8]) -> Result<Certification, BlobError> {
    const WHAT: &str = "TPMS_ATTEST";
    let mut c = Cursor::new(attest, WHAT);
    if c.be32()? != TPM_GENERATED_VALUE {
        return Err(invalid(WHAT, "not generated by a TPM (bad magic)"));
    }
    if c.be16()? != TPM_ST_ATTEST_CERTIFY {
        return Err(invalid(WHAT, "not a TPM2_Certify"));
    }
    c.tpm2b()?; // qualifiedSigner
    let extra_data = c.tpm2b()?.to_vec();
    c.take(17)?; // clockInfo
    c.take(8)?; // firmwareVersion
    let certified_name = c.tpm2b()?.to_vec();
    c.tpm2b()?; // qualifiedName
    c.finish()?;
    Ok(Certification { extra_data, certified_name })
}

/// The kind of key a TPMT_PUBLIC describes, as far as signing with it matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicArea {
    Rsa { modulus_len: usize },
    Ecc,
}

impl PublicArea {
    /// Walks a TPMT_PUBLIC of an RSA or ECC key; it must fill `area` exactly.
    pub fn parse(area: &[u8]) -> Result<PublicArea, BlobError> {
        const WHAT: &str = "TPMT_PUBLIC";
        let mut c = Cursor::new(area, WHAT);
        let alg = c.be16()?;
        let _name_alg = c.be16()?;
        let _attributes = c.be32()?;
        c.tpm2b()?; // authPolicy
        let (sym, _) = c.alg_with_detail()?;
        if sym != ALG_NULL {
            c.be16()?; // mode
        }
        c.alg_with_detail()?; // scheme
        let kind = match alg {
            ALG_RSA => {
                c.be16()?; // keyBits
                c.be32()?; // exponent
                PublicArea::Rsa { modulus_len: c.tpm2b()?.len() }
            }
            ALG_ECC => {
                c.be16()?; // curveID
                c.alg_with_detail()?; // kdf
                c.tpm2b()?;
                c.tpm2b()?;
                PublicArea::Ecc
            }
            other => return Err(invalid(WHAT, format!("unsupported key type {other:#06x}"))),
        };
        c.finish()?;
        Ok(kind)
    }
}

/// An object's Name: nameAlg ‖ SHA-256(TPMT_PUBLIC); only SHA-256 names are accepted.
pub fn object_name(area: &[u8]) -> Result<Vec<u8>, BlobError> {
    let name_alg = area.get(2..4).ok_or(BlobError::Truncated("TPMT_PUBLIC"))?;
    if name_alg != ALG_SHA256.to_be_bytes() {
        return Err(invalid("TPMT_PUBLIC", "name algorithm is not SHA-256"));
    }
    let mut name = name_alg.to_vec();
    name.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, area).as_ref());
    Ok(name)
}

/// The AK's certification signature as the collector wants it: for an RSA AK the raw
/// RSASSA-PKCS1-v1_5 bytes, for an ECC AK DER. Microsoft's key attestation writes only the
/// signature bytes of the TPMT_SIGNATURE (a modulus-sized field for RSA; `r ‖ s` for ECC);
/// a complete TPMT_SIGNATURE, which is never that size, is accepted too.
pub fn certify_signature(field: &[u8], ak_public: &[u8]) -> Result<Vec<u8>, BlobError> {
    match PublicArea::parse(ak_public)? {
        PublicArea::Rsa { modulus_len } if field.len() == modulus_len => Ok(field.to_vec()),
        PublicArea::Ecc if field.len() == 64 => Ok(super::der::der_signature(&field[..32], &field[32..])),
        kind => {
            let sig = parse_signature(field)?;
            match (&kind, &sig) {
                (PublicArea::Rsa { .. }, TpmtSignature::RsaSsa { .. })
                | (PublicArea::Ecc, TpmtSignature::EcDsa { .. }) => sig.to_wire(),
                _ => Err(invalid("certification signature", "its algorithm is not the AK's")),
            }
        }
    }
}

/// A `BCRYPT_RSAPUBLIC_BLOB`'s key: big-endian exponent and modulus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPublic {
    pub exponent: Vec<u8>,
    pub modulus: Vec<u8>,
}

/// Parses a `BCRYPT_RSAPUBLIC_BLOB` (`BCRYPT_RSAKEY_BLOB` header, exponent, modulus).
pub fn parse_rsa_public_blob(blob: &[u8]) -> Result<RsaPublic, BlobError> {
    const WHAT: &str = "BCRYPT_RSAPUBLIC_BLOB";
    let mut c = Cursor::new(blob, WHAT);
    let magic = c.le32()?;
    if magic != BCRYPT_RSAPUBLIC_MAGIC {
        return Err(invalid(WHAT, format!("magic {magic:#010x} is not RSA1")));
    }
    let _bit_length = c.le32()?;
    let (exp_len, mod_len, p_len, q_len) = (c.le_size()?, c.le_size()?, c.le32()?, c.le32()?);
    if p_len != 0 || q_len != 0 {
        return Err(invalid(WHAT, "it carries primes: not a public key blob"));
    }
    let exponent = c.take(exp_len)?.to_vec();
    let modulus = c.take(mod_len)?.to_vec();
    c.finish()?;
    Ok(RsaPublic { exponent, modulus })
}

/// The EK's TPMT_PUBLIC from the provider's `PCP_EKPUB`: the provider gives only the key, and
/// the collector checks the area (and derives the credential's encryption from it), so the
/// area is rebuilt from the TCG default EK template, the one Windows creates its RSA EK from.
pub fn ek_public_from_rsa_blob(blob: &[u8]) -> Result<Vec<u8>, BlobError> {
    const WHAT: &str = "EK public key";
    let key = parse_rsa_public_blob(blob)?;
    if super::der::strip_zeros(&key.exponent) != [0x01, 0x00, 0x01] {
        return Err(invalid(WHAT, "exponent is not 65537: not from the default EK template"));
    }
    let modulus = super::der::strip_zeros(&key.modulus);
    if modulus.len() != 256 {
        return Err(invalid(WHAT, format!("{}-bit modulus: not RSA-2048", modulus.len() * 8)));
    }
    let mut area = Vec::with_capacity(314);
    area.extend(ALG_RSA.to_be_bytes());
    area.extend(ALG_SHA256.to_be_bytes());
    area.extend(EK_ATTRIBUTES.to_be_bytes());
    area.extend((EK_POLICY.len() as u16).to_be_bytes());
    area.extend(EK_POLICY);
    for v in [ALG_AES, 128, ALG_CFB, ALG_NULL, 2048] {
        area.extend(v.to_be_bytes());
    }
    area.extend(0u32.to_be_bytes()); // exponent: 0 means the default, 65537
    area.extend((modulus.len() as u16).to_be_bytes());
    area.extend(modulus);
    Ok(area)
}

/// The EK certificate among the provider's: the one that certifies `modulus`. A store may
/// hold an ECC EK's certificate too; the collector checks the chain and the key properly,
/// this only avoids sending one that cannot match.
pub fn pick_ek_certificate(certificates: Vec<Vec<u8>>, modulus: &[u8]) -> Option<Vec<u8>> {
    let modulus = super::der::strip_zeros(modulus);
    if modulus.is_empty() {
        return None;
    }
    certificates.into_iter().find(|c| c.windows(modulus.len()).any(|w| w == modulus))
}

/// The `PCP_TPM12_IDACTIVATION` input from the collector's MakeCredential output (both TPM2B
/// contents): TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET.
pub fn activation_blob(credential_blob: &[u8], encrypted_secret: &[u8]) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::with_capacity(4 + credential_blob.len() + encrypted_secret.len());
    for (part, what) in [(credential_blob, "credential blob"), (encrypted_secret, "encrypted secret")] {
        let len = u16::try_from(part.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(what, format!("{} bytes do not make a TPM2B", part.len())))?;
        out.extend(len.to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// `pcp-key.json` in the state dir: which provider keys are this device's, and the device
/// key's public key (to notice a key that is no longer the enrolled one). Names only: the
/// keys themselves never leave the TPM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcpRecord {
    /// The persisted ECDSA P-256 device key (a machine key).
    pub device_key: String,
    /// The attestation identity key made for enrollment.
    pub attestation_key: String,
    /// The device key's SubjectPublicKeyInfo, base64.
    pub public_key: String,
}

pub const PCP_RECORD_FILE: &str = "pcp-key.json";

impl PcpRecord {
    /// Key names derived from the state dir, so agents with different state dirs on one
    /// machine (machine keys share one namespace) never take each other's keys.
    pub fn names_for(state_dir: &std::path::Path) -> (String, String) {
        let path = state_dir.to_string_lossy().to_lowercase();
        let digest = ring::digest::digest(&ring::digest::SHA256, path.as_bytes());
        let tag = hex::encode(&digest.as_ref()[..8]);
        (format!("sightline-device-{tag}"), format!("sightline-ak-{tag}"))
    }

    pub fn new(state_dir: &std::path::Path, spki: &[u8]) -> PcpRecord {
        use base64::Engine;
        let (device_key, attestation_key) = PcpRecord::names_for(state_dir);
        PcpRecord {
            device_key,
            attestation_key,
            public_key: base64::engine::general_purpose::STANDARD.encode(spki),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising three strings cannot fail; an empty file would be refused on read.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<PcpRecord, KeyError> {
        let bad = |e: String| KeyError::Corrupt(format!("{PCP_RECORD_FILE}: {e}"));
        let r: PcpRecord = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let well_formed = |n: &str| {
            !n.is_empty() && n.len() <= 128 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !well_formed(&r.device_key) || !well_formed(&r.attestation_key) {
            return Err(bad("a key name is not a Sightline provider key name".into()));
        }
        r.spki()?;
        Ok(r)
    }

    pub fn spki(&self) -> Result<Vec<u8>, KeyError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.public_key)
            .map_err(|e| KeyError::Corrupt(format!("{PCP_RECORD_FILE}: public key: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /// A device key's TPMT_PUBLIC and a TPM2_Certify of it over a 32-byte nonce, both from
    /// swtpm (the collector's golden vectors, `server/tests/data/tpm-golden.json`).
    const DEVICE_KEY_PUBLIC: &str =
        "0023000b00040072000000100018000b000300100020af3d5604564d7914a69003b3ce101e465d777a71187f
        1bd2a85ce67caae279a50020029f72a03e66a51693a1ea1553d9075950388ea5c925ca2e5a47011690c3d888";
    const NONCE: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn device_key_public() -> Vec<u8> {
        unhex(DEVICE_KEY_PUBLIC)
    }

    fn tpm2b(b: &[u8]) -> Vec<u8> {
        let mut out = (b.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(b);
        out
    }

    fn le(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// A TPMS_ATTEST of TPM2_Certify naming `name` over `nonce`.
    fn certify_info(nonce: &[u8], name: &[u8]) -> Vec<u8> {
        let mut a = TPM_GENERATED_VALUE.to_be_bytes().to_vec();
        a.extend(TPM_ST_ATTEST_CERTIFY.to_be_bytes());
        a.extend(tpm2b(&[0x00, 0x0b, 0xaa, 0xbb])); // qualifiedSigner
        a.extend(tpm2b(nonce));
        a.extend([0x11; 17]); // clockInfo
        a.extend([0x22; 8]); // firmwareVersion
        a.extend(tpm2b(name));
        a.extend(tpm2b(&[0x00, 0x0b, 0xcc]));
        a
    }

    /// A `PCP_KEY_BLOB_WIN8` (or a longer header with pcrAlgId) around `public`.
    fn key_blob(public: &[u8], header_len: u32) -> Vec<u8> {
        let private = [0x5a; 40];
        let policy = [0x66; 8];
        let cb_public = 2 + public.len() as u32;
        let mut b = le(&[PCP_KEY_MAGIC, header_len, PCP_TPM20, 0, cb_public, 40, 0, 0, 8, 0, 0, 0, 0]);
        b.resize(header_len as usize, 0);
        b.extend(tpm2b(public));
        b.extend(private);
        b.extend(policy);
        b
    }

    fn rsa_ak_public(modulus: &[u8]) -> Vec<u8> {
        let mut a = [ALG_RSA, ALG_SHA256].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<_>>();
        a.extend(0x0005_0472u32.to_be_bytes());
        a.extend(tpm2b(&[0x9d; 32]));
        for v in [ALG_NULL, ALG_RSASSA, ALG_SHA1, 2048] {
            a.extend(v.to_be_bytes());
        }
        a.extend(0u32.to_be_bytes());
        a.extend(tpm2b(modulus));
        a
    }

    fn rsa_public_blob(exponent: &[u8], modulus: &[u8]) -> Vec<u8> {
        let mut b = le(&[BCRYPT_RSAPUBLIC_MAGIC, 2048, exponent.len() as u32, modulus.len() as u32, 0, 0]);
        b.extend_from_slice(exponent);
        b.extend_from_slice(modulus);
        b
    }

    fn modulus() -> Vec<u8> {
        (0..256u32).map(|i| (i * 7 + 0x80) as u8).collect()
    }

    fn key_attestation(certify: &[u8], sig: &[u8], blob: &[u8]) -> Vec<u8> {
        let mut b = le(&[KEY_ATTESTATION_MAGIC, PCP_TPM20, 24, certify.len() as u32, sig.len() as u32]);
        b.extend(le(&[blob.len() as u32]));
        b.extend_from_slice(certify);
        b.extend_from_slice(sig);
        b.extend_from_slice(blob);
        b
    }

    fn rsassa(hash: u16, sig: &[u8]) -> Vec<u8> {
        let mut s = ALG_RSASSA.to_be_bytes().to_vec();
        s.extend(hash.to_be_bytes());
        s.extend(tpm2b(sig));
        s
    }

    #[test]
    fn magics_are_the_c_multicharacter_constants_stored_little_endian() {
        assert_eq!(&PCP_KEY_MAGIC.to_le_bytes(), b"PCPM");
        assert_eq!(&KEY_ATTESTATION_MAGIC.to_le_bytes(), b"KADS");
        assert_eq!(&BCRYPT_RSAPUBLIC_MAGIC.to_le_bytes(), b"RSA1");
    }

    #[test]
    fn key_blobs_yield_their_public_area_whatever_the_header_length() {
        let public = device_key_public();
        for header_len in [52, 56] {
            let blob = key_blob(&public, header_len);
            assert_eq!(key_blob_public(&blob).unwrap(), public, "header {header_len}");
        }
        let blob = key_blob(&public, 52);
        let mut wrong = blob.clone();
        wrong[0] ^= 1;
        assert!(matches!(key_blob_public(&wrong), Err(BlobError::Invalid { .. })));
        let mut tpm12 = blob.clone();
        tpm12[8] = 1; // pcpType TPM 1.2
        assert!(key_blob_public(&tpm12).is_err());
        let mut short_header = blob.clone();
        short_header[4] = 48;
        assert!(key_blob_public(&short_header).is_err());
        let mut oversized = blob.clone();
        oversized[20] = 0xff; // cbPrivate beyond the blob
        assert_eq!(key_blob_public(&oversized), Err(BlobError::Truncated("PCP key blob")));
        // cbPublic must be exactly the TPM2B_PUBLIC.
        let mut loose = blob;
        loose[16] += 1;
        assert!(key_blob_public(&loose).is_err());
    }

    #[test]
    fn a_real_pcp_identity_binding_parses() {
        // A TPM 2.0 AIK made by the Platform Crypto Provider on a Windows VM (go-attestation's
        // attest/testdata/windows_gcp_shielded_vm.json, Apache-2.0): RSA-2048, restricted,
        // RSASSA with SHA-1, as the provider makes AIKs.
        let binding = unhex(REAL_ID_BINDING);
        let parsed = parse_id_binding(&binding).unwrap();
        assert_eq!(parsed.ak_public.len(), 312);
        assert_eq!(&parsed.ak_public[..8], &[0x00, 0x01, 0x00, 0x0b, 0x00, 0x05, 0x04, 0x72]);
        assert_eq!(PublicArea::parse(&parsed.ak_public).unwrap(), PublicArea::Rsa { modulus_len: 256 });
        assert_eq!(parsed.creation_data.len(), 115);
        assert_eq!(&parsed.attest[..6], &[0xff, 0x54, 0x43, 0x47, 0x80, 0x1a]);
        match &parsed.signature {
            TpmtSignature::RsaSsa { hash, sig } => assert_eq!((*hash, sig.len()), (ALG_SHA1, 256)),
            other => panic!("{other:?}"),
        }
        assert!(parse_id_binding(&[1, 1, 0, 0, 0, 0]).is_err(), "TPM 1.2");
        let mut trailing = binding.clone();
        trailing.push(0);
        assert!(parse_id_binding(&trailing).is_err());
    }

    #[test]
    fn key_attestations_split_into_certification_signature_and_key() {
        let public = device_key_public();
        let nonce = unhex(NONCE);
        let name = object_name(&public).unwrap();
        let certify = certify_info(&nonce, &name);
        let sig = vec![0x42; 256];
        let blob = key_blob(&public, 52);
        let att = parse_key_attestation(&key_attestation(&certify, &sig, &blob)).unwrap();
        assert_eq!(att, KeyAttestation { certify_info: certify.clone(), signature: sig, key_blob: blob });
        let c = parse_certification(&att.certify_info).unwrap();
        assert_eq!(c.extra_data, nonce);
        assert_eq!(c.certified_name, name);
        assert_eq!(object_name(&key_blob_public(&att.key_blob).unwrap()).unwrap(), name);

        let whole = key_attestation(&certify, &[1; 256], &att.key_blob);
        let mut longer = whole.clone();
        longer.push(0);
        assert_eq!(parse_key_attestation(&longer), Err(BlobError::Trailing("key attestation")));
        let mut tpm12 = whole.clone();
        tpm12[4] = 1;
        assert!(parse_key_attestation(&tpm12).is_err());
        let mut bigger_header = whole.clone();
        bigger_header[8] = 28; // HeaderSize past the declared parts
        assert!(parse_key_attestation(&bigger_header).is_err());
        let mut trailing_attest = certify.clone();
        trailing_attest.push(0);
        assert!(parse_certification(&trailing_attest).is_err());
        let mut not_certify = certify;
        not_certify[5] = 0x18; // TPM_ST_ATTEST_QUOTE
        assert!(parse_certification(&not_certify).is_err());
    }

    #[test]
    fn the_swtpm_certification_names_the_swtpm_device_key() {
        let c = parse_certification(&unhex(GOLDEN_CERTIFY_INFO)).unwrap();
        assert_eq!(c.extra_data, unhex(NONCE));
        assert_eq!(c.certified_name, object_name(&device_key_public()).unwrap());
    }

    #[test]
    fn certification_signatures_leave_in_the_collectors_shape() {
        let ak = rsa_ak_public(&modulus());
        let raw = vec![0x37; 256];
        assert_eq!(certify_signature(&raw, &ak).unwrap(), raw, "bare signature bytes");
        assert_eq!(certify_signature(&rsassa(ALG_SHA1, &raw), &ak).unwrap(), raw, "a TPMT_SIGNATURE");
        assert!(certify_signature(&raw[..255], &ak).is_err());
        let mut ecdsa = ALG_ECDSA.to_be_bytes().to_vec();
        ecdsa.extend(ALG_SHA256.to_be_bytes());
        ecdsa.extend(tpm2b(&[1; 32]));
        ecdsa.extend(tpm2b(&[2; 32]));
        assert!(certify_signature(&ecdsa, &ak).is_err(), "not the AK's algorithm");

        let ecc_ak = device_key_public(); // any ECC area will do for the shape
        let der = certify_signature(&ecdsa, &ecc_ak).unwrap();
        assert_eq!(der, super::super::der::der_signature(&[1; 32], &[2; 32]));
        let raw_rs = [[1u8; 32], [2u8; 32]].concat();
        assert_eq!(certify_signature(&raw_rs, &ecc_ak).unwrap(), der);
        let mut long = ALG_ECDSA.to_be_bytes().to_vec();
        long.extend(ALG_SHA256.to_be_bytes());
        long.extend(tpm2b(&[1; 33]));
        long.extend(tpm2b(&[2; 32]));
        assert!(certify_signature(&long, &ecc_ak).is_err());
        assert!(parse_signature(&[0x00, 0x16, 0x00, 0x0b, 0x00, 0x00]).is_err(), "RSAPSS");
    }

    #[test]
    fn the_ek_area_is_the_default_template_a_tpm_makes() {
        // The template part of swtpm's RSA EK (tss-esapi, default template): everything up to
        // the modulus.
        let swtpm_prefix = unhex(
            "0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa
             00060080004300100800000000000100",
        );
        let m = modulus();
        let area = ek_public_from_rsa_blob(&rsa_public_blob(&[1, 0, 1], &m)).unwrap();
        assert_eq!(area.len(), 314);
        assert_eq!(&area[..58], swtpm_prefix.as_slice());
        assert_eq!(&area[58..], m.as_slice());
        assert_eq!(PublicArea::parse(&area).unwrap(), PublicArea::Rsa { modulus_len: 256 });
        // CNG may spell the exponent with leading zeros or the modulus with one.
        let padded = [vec![0], m.clone()].concat();
        assert_eq!(ek_public_from_rsa_blob(&rsa_public_blob(&[0, 1, 0, 1], &padded)).unwrap(), area);
        assert!(ek_public_from_rsa_blob(&rsa_public_blob(&[3], &m)).is_err(), "exponent 3");
        assert!(ek_public_from_rsa_blob(&rsa_public_blob(&[1, 0, 1], &m[..128])).is_err(), "RSA-1024");
        let mut private = rsa_public_blob(&[1, 0, 1], &m);
        private[16] = 128; // cbPrime1
        assert!(parse_rsa_public_blob(&private).is_err());
    }

    #[test]
    fn the_ek_certificate_is_the_one_for_the_ek() {
        let m = modulus();
        let other = vec![0x30, 0x82, 0x01, 0x00, 0xde, 0xad];
        let mut mine = vec![0x30, 0x82, 0x02, 0x00, 0x02, 0x82, 0x01, 0x01, 0x00];
        mine.extend(&m);
        mine.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(pick_ek_certificate(vec![other.clone(), mine.clone()], &m), Some(mine));
        assert_eq!(pick_ek_certificate(vec![other], &m), None);
        assert_eq!(pick_ek_certificate(vec![vec![1, 2, 3]], &[0, 0]), None);
    }

    #[test]
    fn activation_blobs_are_two_tpm2bs() {
        let blob = activation_blob(&[1; 68], &[2; 256]).unwrap();
        assert_eq!(&blob[..2], &[0, 68]);
        assert_eq!(&blob[70..72], &[1, 0]);
        assert_eq!(blob.len(), 2 + 68 + 2 + 256);
        assert!(activation_blob(&[], &[2; 256]).is_err());
        assert!(activation_blob(&[1; 68], &vec![0; 70_000]).is_err());
    }

    #[test]
    fn records_round_trip_and_refuse_strange_names() {
        let dir = std::path::Path::new("C:\\ProgramData\\Sightline");
        let r = PcpRecord::new(dir, &[0x30, 0x59]);
        assert!(r.device_key.starts_with("sightline-device-"));
        assert_eq!(r.device_key[17..], r.attestation_key[13..], "one tag for both");
        assert_eq!(PcpRecord::names_for(std::path::Path::new("c:\\programdata\\sightline")).0, r.device_key);
        assert_ne!(PcpRecord::names_for(std::path::Path::new("D:\\other")).0, r.device_key);
        assert_eq!(PcpRecord::from_json(&r.to_json()).unwrap(), r);
        assert_eq!(r.spki().unwrap(), vec![0x30, 0x59]);
        let mut bad = r.clone();
        bad.device_key = "..\\x".into();
        assert!(matches!(PcpRecord::from_json(&bad.to_json()), Err(KeyError::Corrupt(_))));
        assert!(PcpRecord::from_json(b"{}").is_err());
        assert!(PcpRecord::from_json(b"").is_err());
    }

    /// Every valid vector, cut short anywhere, is refused without a panic.
    #[test]
    fn truncations_are_refused() {
        let public = device_key_public();
        let blob = key_blob(&public, 56);
        let certify = certify_info(&unhex(NONCE), &object_name(&public).unwrap());
        let att = key_attestation(&certify, &[7; 256], &blob);
        let binding = unhex(REAL_ID_BINDING);
        let rsa = rsa_public_blob(&[1, 0, 1], &modulus());
        let sig = rsassa(ALG_SHA256, &[3; 256]);
        for n in 0..binding.len() {
            assert!(parse_id_binding(&binding[..n]).is_err(), "id binding cut at {n}");
        }
        for n in 0..att.len() {
            assert!(parse_key_attestation(&att[..n]).is_err(), "attestation cut at {n}");
        }
        for n in 0..blob.len() {
            assert!(key_blob_public(&blob[..n]).is_err(), "key blob cut at {n}");
        }
        for n in 0..certify.len() {
            assert!(parse_certification(&certify[..n]).is_err(), "certify cut at {n}");
        }
        for n in 0..public.len() {
            assert!(PublicArea::parse(&public[..n]).is_err(), "public cut at {n}");
        }
        for n in 0..rsa.len() {
            assert!(parse_rsa_public_blob(&rsa[..n]).is_err(), "RSA blob cut at {n}");
        }
        for n in 0..sig.len() {
            assert!(parse_signature(&sig[..n]).is_err(), "signature cut at {n}");
        }
    }

    /// What any accepted input must satisfy, whatever it was: parts never exceed the input,
    /// and what one parser hands on, the next accepts.
    fn accepted_inputs_are_consistent(bytes: &[u8]) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prop_assert;
        if let Ok(area) = key_blob_public(bytes) {
            prop_assert!(PublicArea::parse(&area).is_ok() && area.len() + 54 <= bytes.len());
        }
        if let Ok(b) = parse_id_binding(bytes) {
            prop_assert!(PublicArea::parse(&b.ak_public).is_ok());
        }
        if let Ok(a) = parse_key_attestation(bytes) {
            prop_assert!(24 + a.certify_info.len() + a.signature.len() + a.key_blob.len() <= bytes.len());
        }
        if let Ok(c) = parse_certification(bytes) {
            prop_assert!(39 + c.extra_data.len() + c.certified_name.len() <= bytes.len());
        }
        if let Ok(k) = parse_rsa_public_blob(bytes) {
            prop_assert!(24 + k.exponent.len() + k.modulus.len() == bytes.len());
        }
        if let Ok(area) = ek_public_from_rsa_blob(bytes) {
            prop_assert!(area.len() == 314);
        }
        if let Ok(name) = object_name(bytes) {
            prop_assert!(name.len() == 34);
        }
        if let Ok(sig) = certify_signature(bytes, bytes) {
            prop_assert!(sig.len() <= bytes.len() + 8);
        }
        prop_assert!(parse_signature(bytes).is_err() || bytes.len() >= 6);
        prop_assert!(PublicArea::parse(bytes).is_err() || bytes.len() >= 14);
        if let Ok(r) = PcpRecord::from_json(bytes) {
            prop_assert!(r.spki().is_ok());
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            accepted_inputs_are_consistent(&bytes)?;
        }

        #[test]
        fn hostile_headers_never_panic(
            words in proptest::collection::vec(proptest::num::u32::ANY, 0..14),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            // Plausible magics with arbitrary sizes reach the size arithmetic.
            for magic in [PCP_KEY_MAGIC, KEY_ATTESTATION_MAGIC, BCRYPT_RSAPUBLIC_MAGIC] {
                let mut b = le(&[magic]);
                b.extend(le(&words));
                b.extend(&tail);
                accepted_inputs_are_consistent(&b)?;
            }
        }
    }

    const GOLDEN_CERTIFY_INFO: &str =
        "ff54434780170022000b5a0377fbc6db3595aad2e836fab202447fcf5ca8bdcee3a776d734af7fb0dc9e0020
        000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f000000000000293f00000002
        000000000120191023001636360022000b0e7bd59038e44a11d08501b1cc81db62d83905c5bbd0f9d38bdf1c
        6eaf0eb32f0022000b50f1c7553f3db5e89ac0727d5416b935429654ec6802cc7df386f2ed83d3c10d";

    const REAL_ID_BINDING: &str =
        "01380001000b0005047200209dffcbf36c383ae699fb9868dc6dcb89d7153884be2803922c124158bfad22ae
        0010001400040800000000000100c6a7c9158974636ed412840a35525b1656c9cb2576029e7b206dd09137a2
        830493cbb6fe7ebc2a804bd624d88f6df7652c3d8d4226854e017f39fd6acdbfa3e71357de43417dfd5132c5
        81c5036440b8a9168cd060186398b2428a23fd8bf91f80d6ce663419a4a63cb1e960e6db11b205b4103f6f28
        55da4170b6e8862868c18bd4c069cb87b834b11379d52d4a0eb875acfe2c7ca1c5127f6bd1a1a586bb0e11b1
        00c10b41e977cb9b52012d02d5722452e7f1e33371221f7768a99cb6169704e86ee718ac40c24d87f0c9c42f
        b74eb1d8570411f5a1b2d2501ec360a9cc845689b9fdae001d203c28c5b7e125a2efa0ecc94ca09dfc44f206
        ec7135b90d9b0073000000000020e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852
        b85501000b0022000b13be181773b7408ce6f56912ecf120493a8d2cfc21cc2b02cfc2061a1053bd2b002200
        0b867114777310af8ef213bf795bba13a8912b22c72cb8e6990b809aa04329f8900000008bff544347801a00
        22000bad427e7fc8821f74c7c6964641f9fa053772122d4b94a6cc3a3fcfccdd55b5ad000000000000009c82
        e73e4db9e4310636da0141e4356df966e0350022000b4ce9b151f75089d74c15dabe9d520cffafbcafd5d43b
        e0aad2e2d88d54717e2e0020033606205753c7703c098ab816f99cf1d878b845509746ec2a6171bc35c8f974
        0014000401005efcf1b5ff3539126e7f32b3e976bb383f3ea3d0664d1e293f082ffcaeabcd6e09425106db76
        f1c8e9f638f29dc0e72aa2e0047b6b4066529aa80869c229ce8c8940272f970c5eade0a5bff56c92b307d810
        85e50357ed5fca088e28f7844db947401108afa9797508e459bf7f324a8ff95d8c61ce5784700c9d371ec57b
        6c5fad18fba64cf37dbf37ff09c6fa9d47ef2ea38e1d5c7403d2ef2ce37d7778a6b072f136093adf83c47f0d
        b64635d20bc3b8ceea8f5e23284c663aaa110bdf1d200a4addcc62b3e2aef68f255849791b90f4656f2c958e
        24fde2becc4960bb1bc45b36a1362a659d0a1e9f67f968d190038f2a4eb611306543fd36667ba2670328";
}
