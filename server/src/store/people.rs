//! People (SCIM) and identity-provider sign-ins, once for both backends.

use super::rows::{self, PERSON_SELECT, SIGNIN_COLUMNS};
use super::sql::{Database, Sql, args, in_list, nocase_eq};
use super::{GroupMember, GroupRef, PeopleStore, Person, Result, ScimGroup, StoreError};
use crate::signins::SignIn;
use std::collections::HashMap;

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
         modified_at_ms, deprovisioned_at_ms, deleted_at_ms, profile, manager_id, department, employee_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    } else {
        "UPDATE people SET user_name = $2, external_id = $3, display_name = $4, emails = $5, active = $6, \
         created_at_ms = $7, modified_at_ms = $8, deprovisioned_at_ms = $9, deleted_at_ms = $10, profile = $11, \
         manager_id = $12, department = $13, employee_number = $14 WHERE id = $1"
    };
    let emails = rows::strings(&p.emails);
    let profile = serde_json::to_string(&p.profile).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
            p.deleted_at_ms,
            profile.as_str(),
            &p.manager_id,
            &p.department,
            &p.employee_number
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
    if p.deleted_at_ms.is_some() {
        // A deleted person is no longer visible through SCIM, so no group lists them, and
        // no group approval holds for them any more.
        db.execute("DELETE FROM scim_group_members WHERE person_id = $1", args![&p.id])?;
    }
    Ok(())
}

/// Every (person id, group id, group name) membership, to fill [`Person::groups`].
fn memberships(db: &mut dyn Sql) -> Result<HashMap<String, Vec<GroupRef>>> {
    let mut out: HashMap<String, Vec<GroupRef>> = HashMap::new();
    db.each(
        "SELECT m.person_id, g.id, g.display_name FROM scim_group_members m \
         JOIN scim_groups g ON g.id = m.group_id ORDER BY g.created_at_ms, g.id",
        &[],
        &mut |r| {
            out.entry(r.text(0)?).or_default().push(GroupRef { id: r.text(1)?, display_name: r.text(2)? });
            Ok(())
        },
    )?;
    Ok(out)
}

/// People as read, with their groups filled in.
fn with_groups(db: &mut dyn Sql, mut people: Vec<Person>) -> Result<Vec<Person>> {
    if people.is_empty() {
        return Ok(people);
    }
    let mut groups = memberships(db)?;
    for p in &mut people {
        p.groups = groups.remove(&p.id).unwrap_or_default();
    }
    Ok(people)
}

fn write_group(db: &mut dyn Sql, g: &ScimGroup, create: bool) -> Result<()> {
    let sql = if create {
        "INSERT INTO scim_groups (id, display_name, external_id, created_at_ms, modified_at_ms) \
         VALUES ($1, $2, $3, $4, $5)"
    } else {
        "UPDATE scim_groups SET display_name = $2, external_id = $3, created_at_ms = $4, modified_at_ms = $5 \
         WHERE id = $1"
    };
    match db.execute(sql, args![&g.id, &g.display_name, &g.external_id, g.created_at_ms, g.modified_at_ms]) {
        Err(e) if unique_violation(&e) => {
            return Err(StoreError::Conflict(format!("group {:?} already exists", g.display_name)));
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    db.execute("DELETE FROM scim_group_members WHERE group_id = $1", args![&g.id])?;
    let mut seen = std::collections::HashSet::new();
    for m in g.members.iter().filter(|m| seen.insert(m.id.as_str())) {
        // Checked here rather than left to the foreign key: the refusal names the member,
        // and a deleted person (kept on record) is no member either.
        let live =
            db.one("SELECT id FROM people WHERE id = $1 AND deleted_at_ms IS NULL", args![&m.id], |r| {
                r.text(0)
            })?;
        if live.is_none() {
            return Err(StoreError::Invalid(format!("no user {:?} to make a member", m.id)));
        }
        db.execute(
            "INSERT INTO scim_group_members (group_id, person_id) VALUES ($1, $2)",
            args![&g.id, &m.id],
        )?;
    }
    Ok(())
}

const GROUP_SELECT: &str =
    "SELECT id, display_name, external_id, created_at_ms, modified_at_ms FROM scim_groups";

fn group_row(r: &dyn rows::Row) -> Result<ScimGroup> {
    Ok(ScimGroup {
        id: r.text(0)?,
        display_name: r.text(1)?,
        external_id: r.opt_text(2)?,
        members: Vec::new(),
        created_at_ms: r.int(3)?,
        modified_at_ms: r.int(4)?,
    })
}

/// Groups as read, with their members (and each member's display name) filled in.
fn with_members(db: &mut dyn Sql, mut groups: Vec<ScimGroup>) -> Result<Vec<ScimGroup>> {
    if groups.is_empty() {
        return Ok(groups);
    }
    let mut members: HashMap<String, Vec<GroupMember>> = HashMap::new();
    db.each(
        "SELECT m.group_id, p.id, COALESCE(p.display_name, p.user_name) FROM scim_group_members m \
         JOIN people p ON p.id = m.person_id ORDER BY p.created_at_ms, p.id",
        &[],
        &mut |r| {
            members
                .entry(r.text(0)?)
                .or_default()
                .push(GroupMember { id: r.text(1)?, display: r.opt_text(2)? });
            Ok(())
        },
    )?;
    for g in &mut groups {
        g.members = members.remove(&g.id).unwrap_or_default();
    }
    Ok(groups)
}

impl<D: Database> PeopleStore for D {
    fn create_person(&self, p: &Person) -> Result<()> {
        self.write(|db| write_person(db, p, true))
    }

    fn update_person(&self, p: &Person) -> Result<()> {
        self.write(|db| write_person(db, p, false))
    }

    fn person(&self, id: &str) -> Result<Option<Person>> {
        self.read(|db| {
            let p = db.all(&format!("{PERSON_SELECT} WHERE id = $1"), args![id], rows::person)?;
            Ok(with_groups(db, p)?.pop())
        })
    }

    fn person_by_user_name(&self, user_name: &str) -> Result<Option<Person>> {
        self.read(|db| {
            let sql = format!(
                "{PERSON_SELECT} WHERE {} AND deleted_at_ms IS NULL",
                nocase_eq(db.dialect(), "user_name", 1)
            );
            let p = db.all(&sql, args![user_name], rows::person)?;
            Ok(with_groups(db, p)?.pop())
        })
    }

    fn people(&self) -> Result<Vec<Person>> {
        let sql = format!("{PERSON_SELECT} WHERE deleted_at_ms IS NULL ORDER BY created_at_ms, id");
        self.read(|db| {
            let p = db.all(&sql, &[], rows::person)?;
            with_groups(db, p)
        })
    }

    fn people_all(&self) -> Result<Vec<Person>> {
        self.read(|db| {
            let p = db.all(&format!("{PERSON_SELECT} ORDER BY created_at_ms, id"), &[], rows::person)?;
            with_groups(db, p)
        })
    }

    fn create_group(&self, g: &ScimGroup) -> Result<()> {
        self.write(|db| write_group(db, g, true))
    }

    fn update_group(&self, g: &ScimGroup) -> Result<()> {
        self.write(|db| write_group(db, g, false))
    }

    fn group(&self, id: &str) -> Result<Option<ScimGroup>> {
        self.read(|db| {
            let g = db.all(&format!("{GROUP_SELECT} WHERE id = $1"), args![id], group_row)?;
            Ok(with_members(db, g)?.pop())
        })
    }

    fn groups(&self) -> Result<Vec<ScimGroup>> {
        self.read(|db| {
            let g = db.all(&format!("{GROUP_SELECT} ORDER BY created_at_ms, id"), &[], group_row)?;
            with_members(db, g)
        })
    }

    fn delete_group(&self, id: &str) -> Result<bool> {
        self.write(|db| {
            db.execute("DELETE FROM scim_group_members WHERE group_id = $1", args![id])?;
            Ok(db.execute("DELETE FROM scim_groups WHERE id = $1", args![id])? > 0)
        })
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
