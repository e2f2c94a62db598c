//! Enrolled devices, once for both backends.

use super::rows::{self, DEVICE_COLUMNS};
use super::sql::{Database, args};
use super::{
    CatalogStatus, ClaimsRecord, Device, DeviceCatalog, DeviceStore, Result, StoreError, or_each_alone,
};

impl<D: Database> DeviceStore for D {
    fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE hardware_id = $1");
        self.read(|db| db.one(&sql, args![hardware_id], rows::device))
    }

    fn device(&self, id: &str) -> Result<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1");
        self.read(|db| db.one(&sql, args![id], rows::device))
    }

    fn device_by_cert(&self, cert_sha256: &str) -> Result<Option<Device>> {
        let sql =
            format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE cert_sha256 = $1 OR next_cert_sha256 = $1");
        self.read(|db| db.one(&sql, args![cert_sha256], rows::device))
    }

    fn revoke_device(&self, id: &str, now_ms: i64) -> Result<()> {
        let n = self.read(|db| {
            db.execute(
                "UPDATE devices SET revoked_at_ms = COALESCE(revoked_at_ms, $1) WHERE id = $2",
                args![now_ms, id],
            )
        })?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(id.to_owned()));
        }
        Ok(())
    }

    fn stage_certificate(&self, device_id: &str, new_sha256: &str) -> Result<()> {
        let n = self.read(|db| {
            db.execute(
                "UPDATE devices SET next_cert_sha256 = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
                args![new_sha256, device_id],
            )
        })?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(device_id.to_owned()));
        }
        Ok(())
    }

    fn promote_certificate(&self, device_id: &str, sha256: &str) -> Result<()> {
        self.read(|db| {
            db.execute(
                "UPDATE devices SET cert_sha256 = next_cert_sha256, next_cert_sha256 = NULL \
                 WHERE id = $1 AND next_cert_sha256 = $2",
                args![device_id, sha256],
            )
        })?;
        Ok(())
    }

    fn devices(&self) -> Result<Vec<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY hostname, id");
        self.read(|db| db.all(&sql, &[], rows::device))
    }

    fn record_catalog_status(&self, device_id: &str, status: &CatalogStatus, at_ms: i64) -> Result<()> {
        let n = self.read(|db| {
            db.execute(
                "UPDATE devices SET catalog_version = $1, catalog_error = $2, catalog_at_ms = $3 WHERE id = $4",
                args![stored_version(status), &status.error, at_ms, device_id],
            )
        })?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(device_id.to_owned()));
        }
        Ok(())
    }

    fn catalog_statuses(&self) -> Result<Vec<DeviceCatalog>> {
        self.read(|db| {
            db.all(
                "SELECT id, hostname, catalog_version, catalog_error, catalog_at_ms FROM devices \
                 ORDER BY hostname, id",
                &[],
                |r| {
                    Ok(DeviceCatalog {
                        device_id: r.text(0)?,
                        hostname: r.text(1)?,
                        status: CatalogStatus {
                            version: r.opt_int(2)?.and_then(|v| u64::try_from(v).ok()),
                            error: r.opt_text(3)?,
                        },
                        at_ms: r.opt_int(4)?,
                    })
                },
            )
        })
    }
}

/// A catalog version as stored: versions are far below `i64::MAX`; a larger one (only a
/// broken agent would claim it) is stored as the largest.
fn stored_version(s: &CatalogStatus) -> Option<i64> {
    s.version.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Streams' signed claims in one transaction, with the device facts they carry; devices in id
/// order (the order ingest locks them in, so the two never wait on each other in a cycle).
/// `Err` means none was written.
pub(crate) fn record_claims(store: &impl Database, claims: &[ClaimsRecord]) -> Result<()> {
    let mut order: Vec<&ClaimsRecord> = claims.iter().collect();
    order.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    store.write(|db| {
        for c in order {
            let claims = c.claims.to_string();
            db.execute(
                "INSERT INTO device_claims (device_id, at_ms, stream_nonce, payload, signature, claims) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![&c.device_id, c.at_ms, &c.stream_nonce, &c.payload, &c.signature, claims.as_str()],
            )?;
            db.execute(
                "UPDATE devices SET last_attested_ms = $1, hostname = $2, os = $3, os_version = $4, \
                 agent_version = $5, clock_skew_ms = $6, catalog_version = $7, catalog_error = $8, \
                 catalog_at_ms = $9 WHERE id = $10",
                args![
                    c.at_ms,
                    &c.hostname,
                    &c.os,
                    &c.os_version,
                    &c.agent_version,
                    c.clock_skew_ms,
                    stored_version(&c.catalog),
                    &c.catalog.error,
                    c.catalog.version.map(|_| c.at_ms),
                    &c.device_id
                ],
            )?;
        }
        Ok(())
    })
}

/// Many streams' claims committed together, or each alone when the group fails.
pub(crate) fn record_claims_many(store: &impl Database, claims: &[ClaimsRecord]) -> Vec<Result<()>> {
    let grouped = record_claims(store, claims).map(|()| claims.iter().map(|_| Ok(())).collect());
    or_each_alone("claims", claims, grouped, |c| record_claims(store, std::slice::from_ref(c)))
}
