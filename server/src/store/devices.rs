//! Enrolled devices, once for both backends.

use super::rows::{self, DEVICE_COLUMNS};
use super::sql::{Database, args};
use super::{Device, DeviceStore, Result, StoreError};

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
}
