//! Parsing the TPM 2.0 structures attestation uses (TPM 2.0 Library, Part 2): TPMT_PUBLIC
//! and TPMS_ATTEST, plus object Names. Only the shapes Sightline accepts are understood;
//! anything else is `Malformed`, never guessed at.

use super::AttestError;

pub const ALG_RSA: u16 = 0x0001;
pub const ALG_SHA1: u16 = 0x0004;
pub const ALG_SHA256: u16 = 0x000b;
pub const ALG_AES: u16 = 0x0006;
pub const ALG_NULL: u16 = 0x0010;
pub const ALG_CFB: u16 = 0x0043;
pub const ALG_RSASSA: u16 = 0x0014;
pub const ALG_ECC: u16 = 0x0023;
pub const ECC_NIST_P256: u16 = 0x0003;
const GENERATED_VALUE: u32 = 0xff54_4347;
const ST_ATTEST_CERTIFY: u16 = 0x8017;

/// TPMA_OBJECT bits.
pub mod attrs {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN: u32 = 1 << 18;
}

fn bad(what: impl Into<String>) -> AttestError {
    AttestError::Malformed(what.into())
}

/// A big-endian cursor over a TPM structure.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AttestError> {
        if self.0.len() < n {
            return Err(bad("structure is truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, AttestError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, AttestError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A TPM2B: 16-bit size, then that many bytes.
    fn tpm2b(&mut self) -> Result<&'a [u8], AttestError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// A parsed TPMT_PUBLIC, keeping the exact bytes (the Name hashes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmPublic {
    pub bytes: Vec<u8>,
    pub alg: u16,
    pub name_alg: u16,
    pub attributes: u32,
    symmetric: (u16, u16, u16),
    /// The signing scheme and its hash (both NULL when there is none).
    scheme: (u16, u16),
    unique: Unique,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Unique {
    /// `exponent` as the area says it: 0 stands for the default, 65537.
    Rsa {
        modulus: Vec<u8>,
        exponent: u32,
    },
    Ecc {
        curve: u16,
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

impl TpmPublic {
    pub fn parse(bytes: &[u8]) -> Result<TpmPublic, AttestError> {
        let mut r = Reader(bytes);
        let alg = r.u16()?;
        let name_alg = r.u16()?;
        if name_alg != ALG_SHA256 {
            return Err(bad("public area name algorithm is not SHA-256"));
        }
        let attributes = r.u32()?;
        r.tpm2b()?; // authPolicy
        let sym_alg = r.u16()?;
        let symmetric = if sym_alg == ALG_NULL { (ALG_NULL, 0, 0) } else { (sym_alg, r.u16()?, r.u16()?) };
        let scheme_alg = r.u16()?;
        let scheme = if scheme_alg == ALG_NULL { (ALG_NULL, ALG_NULL) } else { (scheme_alg, r.u16()?) };
        let unique = match alg {
            ALG_RSA => {
                let _key_bits = r.u16()?;
                let exponent = r.u32()?;
                Unique::Rsa { modulus: r.tpm2b()?.to_vec(), exponent }
            }
            ALG_ECC => {
                let curve = r.u16()?;
                let kdf = r.u16()?;
                if kdf != ALG_NULL {
                    r.u16()?;
                }
                Unique::Ecc { curve, x: r.tpm2b()?.to_vec(), y: r.tpm2b()?.to_vec() }
            }
            other => return Err(bad(format!("unsupported public area algorithm {other:#06x}"))),
        };
        if !r.0.is_empty() {
            return Err(bad("trailing bytes after the public area"));
        }
        Ok(TpmPublic { bytes: bytes.to_vec(), alg, name_alg, attributes, symmetric, scheme, unique })
    }

    /// The same RSA public area with its exponent field written as `exponent` (0 and 65537
    /// are the same key). For tests of identity across encodings; None for an ECC area.
    pub fn respell_rsa_exponent(bytes: &[u8], exponent: u32) -> Option<Vec<u8>> {
        let mut r = Reader(bytes);
        (r.u16().ok()? == ALG_RSA).then_some(())?;
        r.u16().ok()?;
        r.u32().ok()?;
        r.tpm2b().ok()?;
        if r.u16().ok()? != ALG_NULL {
            r.take(4).ok()?;
        }
        if r.u16().ok()? != ALG_NULL {
            r.u16().ok()?;
        }
        r.u16().ok()?; // keyBits
        let at = bytes.len() - r.0.len();
        let mut out = bytes.to_vec();
        out.get_mut(at..at + 4)?.copy_from_slice(&exponent.to_be_bytes());
        Some(out)
    }

    /// The object's Name: nameAlg || SHA-256(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        let mut n = self.name_alg.to_be_bytes().to_vec();
        n.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &self.bytes).as_ref());
        n
    }

    pub fn rsa_modulus(&self) -> Option<&[u8]> {
        match &self.unique {
            Unique::Rsa { modulus, .. } if modulus.len() == 256 => Some(modulus),
            _ => None,
        }
    }

    /// An RSA key as a number pair, whatever the encoding: the modulus without leading
    /// zero bytes and the exponent with 0 resolved to 65537 (TPM 2.0 Part 2, 12.2.3.5).
    pub fn rsa_key(&self) -> Option<(&[u8], u32)> {
        match &self.unique {
            Unique::Rsa { modulus, exponent } => {
                let first = modulus.iter().position(|&b| b != 0).unwrap_or(modulus.len());
                Some((&modulus[first..], if *exponent == 0 { 65_537 } else { *exponent }))
            }
            Unique::Ecc { .. } => None,
        }
    }

    /// The uncompressed SEC1 point of a P-256 key.
    pub fn ecc_point(&self) -> Option<Vec<u8>> {
        match &self.unique {
            Unique::Ecc { curve: ECC_NIST_P256, x, y } if x.len() <= 32 && y.len() <= 32 => {
                let mut p = vec![0x04];
                p.extend(std::iter::repeat_n(0, 32 - x.len()));
                p.extend_from_slice(x);
                p.extend(std::iter::repeat_n(0, 32 - y.len()));
                p.extend_from_slice(y);
                Some(p)
            }
            _ => None,
        }
    }

    /// The key's signing scheme and its hash: a restricted signing key signs only with it.
    pub fn scheme(&self) -> (u16, u16) {
        self.scheme
    }

    pub fn is_aes128_cfb(&self) -> bool {
        self.symmetric == (ALG_AES, 128, ALG_CFB)
    }
}

/// The parts of a TPMS_ATTEST of type CERTIFY that attestation checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest {
    pub extra_data: Vec<u8>,
    pub certified_name: Vec<u8>,
}

impl Attest {
    pub fn parse(bytes: &[u8]) -> Result<Attest, AttestError> {
        let mut r = Reader(bytes);
        if r.u32()? != GENERATED_VALUE {
            return Err(bad("certification was not generated by a TPM (bad magic)"));
        }
        if r.u16()? != ST_ATTEST_CERTIFY {
            return Err(bad("attestation is not a TPM2_Certify"));
        }
        r.tpm2b()?; // qualifiedSigner
        let extra_data = r.tpm2b()?.to_vec();
        r.take(17)?; // clockInfo
        r.take(8)?; // firmwareVersion
        let certified_name = r.tpm2b()?.to_vec();
        r.tpm2b()?; // qualifiedName
        Ok(Attest { extra_data, certified_name })
    }
}
