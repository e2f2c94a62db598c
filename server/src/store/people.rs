//! People (SCIM) and identity-provider sign-ins, once for both backends.

use super::rows::{self, PERSON_SELECT, SIGNIN_COLUMNS};
use super::sql::{Database, Sql, args, in_list, nocase_eq};
use super::{PeopleStore, Person, Result, StoreError};
use crate::signins::SignIn;

/// Whether the error is a uniqueness rule refusing the write.
fn unique_violation(e: &StoreError) -> bool {
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
            f.code == rusqlite::ErrorCode::ConstraintViolation
        }
        StoreError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
        _ => false,
    }
}

fn write_person(db: &mut dyn Sql, p: &Person, create: bool) -> Result<()> {
    let sql = if create {
        "INSERT INTO people (id, user_name, external_id, display_name, emails, active, created_at_ms, \
         modified_at_ms, deprovisioned_at_ms, deleted_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    } else {
        "UPDATE people SET user_name = $2, external_id = $3, display_name = $4, emails = $5, active = $6, \
         created_at_ms = $7, modified_at_ms = $8, deprovisioned_at_ms = $9, deleted_at_ms = $10 WHERE id = $1"
    };
    let emails = rows::strings(&p.emails);
    let written = db.execute(
        sql,
        args![
            &p.id,
            &p.user_name,
            &p.external_id,
            &p.display_name,
            emails.as_str(),
            p.active,
            p.created_at_ms,
            p.modified_at_ms,
            p.deprovisioned_at_ms,
            p.deleted_at_ms
        ],
    );
    match written {
        Err(e) if unique_violation(&e) => {
            return Err(StoreError::Conflict(format!("userName {:?} is already provisioned", p.user_name)));
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    db.execute("DELETE FROM person_keys WHERE person_id = $1", args![&p.id])?;
    for k in p.index_keys() {
        db.execute("INSERT INTO person_keys (key, person_id) VALUES ($1, $2)", args![&k, &p.id])?;
    }
    Ok(())
}

impl<D: Database> PeopleStore for D {
    fn create_person(&self, p: &Person) -> Result<()> {
        self.write(|db| write_person(db, p, true))
    }

    fn update_person(&self, p: &Person) -> Result<()> {
        self.write(|db| write_person(db, p, false))
    }

    fn person(&self, id: &str) -> Result<Option<Person>> {
        self.read(|db| db.one(&format!("{PERSON_SELECT} WHERE id = $1"), args![id], rows::person))
    }

    fn person_by_user_name(&self, user_name: &str) -> Result<Option<Person>> {
        self.read(|db| {
            let sql = format!(
                "{PERSON_SELECT} WHERE {} AND deleted_at_ms IS NULL",
                nocase_eq(db.dialect(), "user_name", 1)
            );
            db.one(&sql, args![user_name], rows::person)
        })
    }

    fn people(&self) -> Result<Vec<Person>> {
        let sql = format!("{PERSON_SELECT} WHERE deleted_at_ms IS NULL ORDER BY created_at_ms, id");
        self.read(|db| db.all(&sql, &[], rows::person))
    }

    fn people_all(&self) -> Result<Vec<Person>> {
        self.read(|db| db.all(&format!("{PERSON_SELECT} ORDER BY created_at_ms, id"), &[], rows::person))
    }

    fn people_by_keys(&self, keys: &[String]) -> Result<Vec<Person>> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
        self.read(|db| {
            let sql = format!(
                "{PERSON_SELECT} WHERE id IN (SELECT person_id FROM person_keys WHERE {}) ORDER BY created_at_ms, id",
                in_list(db.dialect(), "key", 1)
            );
            db.all(&sql, args![&keys], rows::person)
        })
    }

    fn add_signins(&self, signins: &[SignIn]) -> Result<usize> {
        self.write(|db| {
            let mut added = 0;
            for s in signins {
                added += db.execute(
                    &format!(
                        "INSERT INTO signins ({SIGNIN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT DO NOTHING"
                    ),
                    args![&s.id, s.source, &s.user_name, s.at_ms, &s.ip, &s.app, &s.device, s.outcome],
                )? as usize;
            }
            Ok(added)
        })
    }

    fn signins_for(&self, user_names: &[String], from_ms: i64, to_ms: i64) -> Result<Vec<SignIn>> {
        self.read(|db| {
            let sql = format!(
                "SELECT {SIGNIN_COLUMNS} FROM signins WHERE {} AND at_ms BETWEEN $2 AND $3 ORDER BY at_ms DESC LIMIT 50",
                nocase_eq(db.dialect(), "user_name", 1)
            );
            let mut out = Vec::new();
            for u in user_names {
                out.extend(db.all(&sql, args![u, from_ms, to_ms], rows::signin)?);
            }
            out.sort_by_key(|s| std::cmp::Reverse(s.at_ms));
            Ok(out)
        })
    }
}
