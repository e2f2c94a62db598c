//! HTTP API tokens and dashboard sessions, once for both backends. Only hashes are stored.

use super::rows::{self, API_TOKENS};
use super::sql::{Database, args, in_list};
use super::{ApiTokenInfo, AuthStore, PendingLogin, Result, SsoIdentity};

/// How often a token's `last_used_at_ms` is written: a dashboard makes many requests a
/// minute, and each write would be a commit.
pub(crate) const LAST_USE_RESOLUTION_MS: i64 = 60_000;

/// Who a token stands for in audit records: its name, else its listed id.
fn token_who(name: &str, token_hash: &[u8]) -> String {
    if name.is_empty() {
        format!("token:{}", token_hash.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
    } else {
        format!("token:{name}")
    }
}

fn stale_use(last_used_at_ms: Option<i64>, now_ms: i64) -> bool {
    last_used_at_ms.is_none_or(|t| now_ms - t >= LAST_USE_RESOLUTION_MS || t > now_ms)
}

impl<D: Database> AuthStore for D {
    fn create_api_token(
        &self,
        token_hash: &[u8],
        role: &str,
        name: &str,
        now_ms: i64,
        expires_at_ms: Option<i64>,
        created_by: &str,
    ) -> Result<()> {
        self.read(|db| {
            db.execute(
                "INSERT INTO api_tokens (token_hash, role, name, created_at_ms, expires_at_ms, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![token_hash, role, name, now_ms, expires_at_ms, created_by],
            )
        })?;
        Ok(())
    }

    fn create_owner_api_token(
        &self,
        token_hash: &[u8],
        person_id: &str,
        name: &str,
        now_ms: i64,
        expires_at_ms: Option<i64>,
        created_by: &str,
    ) -> Result<()> {
        self.write(|db| {
            db.execute(
                "INSERT INTO api_tokens (token_hash, role, name, created_at_ms, expires_at_ms, created_by, person_id) \
                 VALUES ($1, 'owner', $2, $3, $4, $5, $6)",
                args![token_hash, name, now_ms, expires_at_ms, created_by, person_id],
            )
        })?;
        Ok(())
    }

    fn api_token_person(&self, token_hash: &[u8]) -> Result<Option<String>> {
        self.read(|db| {
            db.one("SELECT person_id FROM api_tokens WHERE token_hash = $1", args![token_hash], |r| {
                r.opt_text(0)
            })
        })
        .map(Option::flatten)
    }

    fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>> {
        self.read(|db| db.all(API_TOKENS, &[], rows::api_token))
    }

    fn revoke_api_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool> {
        self.write(|db| {
            let n = db.execute(
                "UPDATE api_tokens SET revoked_at_ms = $1 WHERE token_hash = $2 AND revoked_at_ms IS NULL",
                args![now_ms, token_hash],
            )?;
            // Its dashboard sessions end with it (they would fail the join anyway; now they are gone).
            db.execute("DELETE FROM ui_sessions WHERE token_hash = $1", args![token_hash])?;
            Ok(n > 0)
        })
    }

    fn api_token_caller(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<(String, String)>> {
        self.read(|db| {
            let Some((role, name, last)) = db.one(
                "SELECT role, name, last_used_at_ms FROM api_tokens WHERE token_hash = $1 AND revoked_at_ms IS NULL \
                 AND (expires_at_ms IS NULL OR expires_at_ms > $2)",
                args![token_hash, now_ms],
                |r| Ok((r.text(0)?, r.text(1)?, r.opt_int(2)?)),
            )?
            else {
                return Ok(None);
            };
            if stale_use(last, now_ms) {
                db.execute(
                    "UPDATE api_tokens SET last_used_at_ms = $1 WHERE token_hash = $2",
                    args![now_ms, token_hash],
                )?;
            }
            Ok(Some((role, token_who(&name, token_hash))))
        })
    }

    fn session_token(&self, session_hash: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(|db| {
            db.one("SELECT token_hash FROM ui_sessions WHERE session_hash = $1", args![session_hash], |r| {
                r.bytes(0)
            })
        })
    }

    fn create_session(
        &self,
        session_hash: &[u8],
        token_hash: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        self.write(|db| {
            db.execute("DELETE FROM ui_sessions WHERE expires_at_ms <= $1", args![now_ms])?;
            db.execute(
                "INSERT INTO ui_sessions (session_hash, token_hash, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)",
                args![session_hash, token_hash, now_ms, expires_at_ms],
            )
        })?;
        Ok(())
    }

    fn session_caller(&self, session_hash: &[u8], now_ms: i64) -> Result<Option<(String, String)>> {
        self.read(|db| {
            // A session id is random and lives in one of the two tables only.
            db.one(
                "SELECT t.role, t.name, t.token_hash, NULL FROM ui_sessions s \
                 JOIN api_tokens t ON t.token_hash = s.token_hash \
                 WHERE s.session_hash = $1 AND s.expires_at_ms > $2 AND t.revoked_at_ms IS NULL \
                 AND (t.expires_at_ms IS NULL OR t.expires_at_ms > $2) \
                 UNION ALL SELECT role, NULL, NULL, email FROM ui_sso_sessions \
                 WHERE session_hash = $1 AND expires_at_ms > $2",
                args![session_hash, now_ms],
                |r| {
                    let who = match r.opt_text(3)? {
                        Some(email) => format!("sso:{email}"),
                        None => token_who(
                            &r.opt_text(1)?.unwrap_or_default(),
                            &r.opt_bytes(2)?.unwrap_or_default(),
                        ),
                    };
                    Ok((r.text(0)?, who))
                },
            )
        })
    }

    fn delete_session(&self, session_hash: &[u8]) -> Result<()> {
        self.write(|db| {
            db.execute("DELETE FROM ui_sessions WHERE session_hash = $1", args![session_hash])?;
            db.execute("DELETE FROM ui_sso_sessions WHERE session_hash = $1", args![session_hash])
        })?;
        Ok(())
    }

    fn create_oidc_login(
        &self,
        binding_hash: &[u8],
        login: &PendingLogin,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool> {
        self.write(|db| {
            // Logins abandoned at the provider are never taken: they go here.
            db.execute("DELETE FROM oidc_logins WHERE expires_at_ms <= $1", args![now_ms])?;
            let pending = db.one("SELECT count(*) FROM oidc_logins", &[], |r| r.int(0))?.unwrap_or(0);
            if pending >= super::MAX_PENDING_LOGINS {
                return Ok(false);
            }
            db.execute(
                "INSERT INTO oidc_logins (binding_hash, state, nonce, verifier, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![binding_hash, &login.state, &login.nonce, &login.verifier, now_ms, expires_at_ms],
            )?;
            Ok(true)
        })
    }

    fn take_oidc_login(&self, binding_hash: &[u8], now_ms: i64) -> Result<Option<PendingLogin>> {
        self.write(|db| {
            let found = db.one(
                "SELECT state, nonce, verifier, expires_at_ms FROM oidc_logins WHERE binding_hash = $1",
                args![binding_hash],
                |r| {
                    Ok((
                        PendingLogin { state: r.text(0)?, nonce: r.text(1)?, verifier: r.text(2)? },
                        r.int(3)?,
                    ))
                },
            )?;
            // Deleted in the same transaction it is read in: a replayed callback, on this
            // replica or another, finds nothing.
            let n = db.execute("DELETE FROM oidc_logins WHERE binding_hash = $1", args![binding_hash])?;
            Ok(found.filter(|(_, expires)| n == 1 && *expires > now_ms).map(|(login, _)| login))
        })
    }

    fn create_sso_session(
        &self,
        session_hash: &[u8],
        who: &SsoIdentity,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        self.write(|db| {
            db.execute("DELETE FROM ui_sso_sessions WHERE expires_at_ms <= $1", args![now_ms])?;
            db.execute(
                "INSERT INTO ui_sso_sessions (session_hash, subject, email, role, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![session_hash, &who.subject, &who.email, &who.role, now_ms, expires_at_ms],
            )
        })?;
        Ok(())
    }

    fn end_sso_sessions(&self, subject: &str) -> Result<u64> {
        self.write(|db| db.execute("DELETE FROM ui_sso_sessions WHERE subject = $1", args![subject]))
    }

    fn end_sso_sessions_of(&self, addresses: &[String]) -> Result<u64> {
        let addresses: Vec<String> = addresses.iter().map(|a| a.to_lowercase()).collect();
        if addresses.is_empty() {
            return Ok(0);
        }
        self.write(|db| {
            let sql =
                format!("DELETE FROM ui_sso_sessions WHERE {}", in_list(db.dialect(), "lower(email)", 1));
            db.execute(&sql, args![&addresses])
        })
    }
}
