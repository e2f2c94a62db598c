//! Enrollment, once for both backends: tokens, pending challenges, and the exchange of a
//! token for a device record.

use super::rows::{self, CHALLENGE_COLUMNS, DEVICE_COLUMNS, ENROLLMENT_TOKENS, TOKEN_STATE};
use super::sql::{Database, Dialect, Sql, args};
use super::{Challenge, Device, EnrollmentStore, EnrollmentTokenInfo, Result, StoreError};

/// Whether an enrollment token row (expires, used, revoked) may be used now.
fn token_verdict(row: Option<rows::TokenState>, now_ms: i64) -> Result<()> {
    match row {
        None => Err(StoreError::TokenUnknown),
        Some((_, _, Some(_))) => Err(StoreError::TokenRevoked),
        Some((_, Some(_), None)) => Err(StoreError::TokenUsed),
        Some((exp, None, None)) if exp <= now_ms => Err(StoreError::TokenExpired),
        Some(_) => Ok(()),
    }
}

/// Row locks where the backend has them (SQLite's write transaction already excludes others).
fn for_update(db: &dyn Sql) -> &'static str {
    match db.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

fn token_usable(db: &mut dyn Sql, token_hash: &[u8], now_ms: i64) -> Result<()> {
    let sql = format!("{TOKEN_STATE}{}", for_update(db));
    token_verdict(db.one(&sql, args![token_hash], rows::token_state)?, now_ms)
}

impl<D: Database> EnrollmentStore for D {
    fn create_token(
        &self,
        token_hash: &[u8],
        name: &str,
        created_at_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        self.read(|db| {
            db.execute(
                "INSERT INTO enrollment_tokens (token_hash, name, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)",
                args![token_hash, name, created_at_ms, expires_at_ms],
            )
        })?;
        Ok(())
    }

    fn enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenInfo>> {
        self.read(|db| db.all(ENROLLMENT_TOKENS, &[], rows::enrollment_token))
    }

    fn revoke_enrollment_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool> {
        let n = self.read(|db| {
            db.execute(
                "UPDATE enrollment_tokens SET revoked_at_ms = $1 WHERE token_hash = $2 AND revoked_at_ms IS NULL",
                args![now_ms, token_hash],
            )
        })?;
        Ok(n > 0)
    }

    fn check_token(&self, token_hash: &[u8], now_ms: i64) -> Result<()> {
        self.read(|db| token_verdict(db.one(TOKEN_STATE, args![token_hash], rows::token_state)?, now_ms))
    }

    fn put_challenge(&self, c: &Challenge) -> Result<()> {
        let tpm = c.tpm.as_ref();
        self.write(|db| {
            // Expired challenges are garbage; clear them as new ones arrive.
            db.execute(
                "DELETE FROM enrollment_challenges WHERE expires_at_ms < $1",
                args![c.expires_at_ms - 3_600_000],
            )?;
            db.execute(
                &format!(
                    "INSERT INTO enrollment_challenges ({CHALLENGE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ),
                args![
                    &c.id,
                    &c.nonce,
                    &c.token_hash,
                    c.expires_at_ms,
                    &c.hostname,
                    &c.os,
                    &c.os_version,
                    &c.agent_version,
                    &c.key_backend,
                    &c.device_key_spki,
                    tpm.map(|t| &t.secret),
                    tpm.map(|t| &t.ek_public),
                    tpm.map(|t| &t.ak_public),
                    tpm.map(|t| &t.device_key_public),
                    tpm.map(|t| t.ek_trusted),
                ],
            )
        })?;
        Ok(())
    }

    fn take_challenge(&self, id: &str) -> Result<Option<Challenge>> {
        // One statement: of two replicas completing the same challenge, one gets it.
        self.write(|db| {
            db.one(
                &format!("DELETE FROM enrollment_challenges WHERE id = $1 RETURNING {CHALLENGE_COLUMNS}"),
                args![id],
                rows::challenge,
            )
        })
    }

    fn complete_enrollment(
        &self,
        token_hash: &[u8],
        d: &Device,
        hardware: &[String],
        now_ms: i64,
    ) -> Result<Device> {
        self.write(|db| {
            token_usable(db, token_hash, now_ms)?;
            db.execute(
                "UPDATE enrollment_tokens SET used_at_ms = $1 WHERE token_hash = $2",
                args![now_ms, token_hash],
            )?;
            let hardware_id = hardware.first();
            // The identity in the order given: the current spelling wins over older ones.
            let by_hardware = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE hardware_id = $1{}", for_update(db));
            let mut existing = None;
            for hw in hardware {
                existing = db.one(&by_hardware, args![hw], rows::device)?;
                if existing.is_some() {
                    break;
                }
            }
            match existing {
                Some(old) if old.revoked_at_ms.is_some() => Err(StoreError::Revoked(old.id)),
                // The same hardware again: same record, new key and certificate, chain kept.
                Some(old) => {
                    db.execute(
                        "UPDATE devices SET hostname = $1, os = $2, os_version = $3, agent_version = $4, key_backend = $5, \
                         assurance = $6, key_spki = $7, cert_sha256 = $8, next_cert_sha256 = NULL, enrolled_at_ms = $9, \
                         hardware_id = $10 WHERE id = $11",
                        args![
                            &d.hostname,
                            &d.os,
                            &d.os_version,
                            &d.agent_version,
                            &d.key_backend,
                            &d.assurance,
                            &d.key_spki,
                            &d.cert_sha256,
                            d.enrolled_at_ms,
                            hardware_id,
                            &old.id
                        ],
                    )?;
                    Ok(Device {
                        id: old.id,
                        seq_head: old.seq_head,
                        head_hash: old.head_hash,
                        users: old.users,
                        hardware_id: hardware_id.cloned(),
                        ..d.clone()
                    })
                }
                None => {
                    let users = rows::strings(&d.users);
                    db.execute(
                        &format!(
                            "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                             $11, $12, $13, $14, $15, $16, $17, $18, $19)"
                        ),
                        args![
                            &d.id,
                            &d.hostname,
                            &d.os,
                            &d.os_version,
                            &d.agent_version,
                            &d.key_backend,
                            &d.assurance,
                            &d.key_spki,
                            &d.cert_sha256,
                            d.enrolled_at_ms,
                            d.last_seen_ms,
                            d.seq_head as i64,
                            d.head_hash.as_slice(),
                            d.revoked_at_ms,
                            users.as_str(),
                            &d.next_cert_sha256,
                            d.last_attested_ms,
                            hardware_id,
                            d.clock_skew_ms,
                        ],
                    )?;
                    Ok(Device { hardware_id: hardware_id.cloned(), ..d.clone() })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules_as_data() {
        type TokenRow = Option<(i64, Option<i64>, Option<i64>)>;
        let cases: &[(TokenRow, &str)] = &[
            (None, "unknown"),
            (Some((100, None, Some(1))), "revoked"),
            (Some((100, Some(1), Some(1))), "revoked"),
            (Some((100, Some(1), None)), "used"),
            (Some((50, None, None)), "expired"),
            (Some((51, None, None)), "ok"),
        ];
        for (row, want) in cases {
            let got = match token_verdict(*row, 50) {
                Ok(()) => "ok",
                Err(StoreError::TokenUnknown) => "unknown",
                Err(StoreError::TokenRevoked) => "revoked",
                Err(StoreError::TokenUsed) => "used",
                Err(StoreError::TokenExpired) => "expired",
                Err(e) => panic!("{e}"),
            };
            assert_eq!(got, *want, "{row:?}");
        }
    }
}
