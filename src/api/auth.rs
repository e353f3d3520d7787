//! Bearer-token authentication with two roles.
//!
//! The configuration holds only the SHA-256 of each token (hex), with a name and a role:
//!
//! ```toml
//! [[api.tokens]]
//! name = "soc"
//! role = "reader"
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```
//!
//! or a file (`api.tokens_file`, e.g. a mounted secret) with one `name role sha256` per
//! line, `#` starting a comment. `auditwatch serve --hash-token` prints the hash of a
//! token read on stdin.
//!
//! A presented token is hashed and compared with every configured hash in constant time
//! (no early exit), so the answer time says nothing about which hash came close. The
//! token itself is never stored, logged or echoed: the caller is known by its name.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::error::{Error, Result};

/// What a token may do. `Admin` includes everything `Reader` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The investigation endpoints (events, timelines, accessors, alerts).
    Reader,
    /// Also `POST /api/v1/query` (arbitrary read-only SQL).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// `[[api.tokens]]` as written in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    pub role: String,
    /// Hex SHA-256 of the token (never the token).
    pub sha256: String,
}

/// A validated token entry. `Debug` shows the name and role only.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    sha256: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl ApiToken {
    /// An entry for a token given in clear (tests, generated demo tokens).
    pub fn from_token(name: &str, role: Role, token: &str) -> ApiToken {
        ApiToken {
            name: name.to_string(),
            role,
            sha256: Sha256::digest(token.as_bytes()).into(),
        }
    }

    fn parse(name: &str, role: &str, sha256: &str, at: &str) -> Result<ApiToken> {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Config(format!(
                "{at}: token name {name:?} must be non-empty without spaces"
            )));
        }
        let role = Role::parse(role).ok_or_else(|| {
            Error::Config(format!(
                "{at}: token {name:?}: role {role:?} is neither \"reader\" nor \"admin\""
            ))
        })?;
        let sha256 = parse_hex32(sha256).ok_or_else(|| {
            Error::Config(format!(
                "{at}: token {name:?}: sha256 must be 64 hex digits (the hash of the token, see `auditwatch serve --hash-token`)"
            ))
        })?;
        Ok(ApiToken {
            name: name.to_string(),
            role,
            sha256,
        })
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Hex SHA-256 of a token, as the configuration wants it.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `serve --hash-token`: reads one token (the first line) and returns its hash.
pub fn hash_token_from(mut input: impl std::io::Read) -> Result<String> {
    let mut s = String::new();
    input.read_to_string(&mut s)?;
    let token = s.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(Error::Config("no token on stdin".into()));
    }
    if token.len() < 20 {
        tracing::warn!(
            "the token is short ({} characters); use at least 32 random characters, e.g. `openssl rand -hex 32`",
            token.len()
        );
    }
    Ok(hash_token(token))
}

/// Validates `[[api.tokens]]` and the lines of `api.tokens_file`. Names are unique.
pub fn load_tokens(raw: &[RawToken], file: Option<&Path>) -> Result<Vec<ApiToken>> {
    let mut out = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        out.push(ApiToken::parse(
            &t.name,
            &t.role,
            &t.sha256,
            &format!("api.tokens[{i}]"),
        )?);
    }
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::Config(format!("api.tokens_file {}: {e}", f.display())))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = format!("{}:{}", f.display(), n + 1);
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [name, role, sha] = parts[..] else {
                return Err(Error::Config(format!(
                    "{at}: expected `name role sha256`, got {} fields",
                    parts.len()
                )));
            };
            out.push(ApiToken::parse(name, role, sha, &at)?);
        }
    }
    let mut names = std::collections::HashSet::new();
    for t in &out {
        if !names.insert(t.name.as_str()) {
            return Err(Error::Config(format!(
                "two API tokens are named {:?}",
                t.name
            )));
        }
    }
    Ok(out)
}

/// Who made a request (kept in request and response extensions for handlers and the
/// access log).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// How requests under `/api/v1` are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Bearer tokens. With none configured every request is refused.
    Tokens(Arc<Vec<ApiToken>>),
    /// No authentication (`serve --insecure-no-auth`, loopback only): every caller is an
    /// admin named `anonymous`.
    Disabled,
}

const CHALLENGE: &str = "Bearer realm=\"auditwatch\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"auditwatch\", error=\"invalid_token\"";

impl Auth {
    pub fn tokens(tokens: Vec<ApiToken>) -> Auth {
        Auth::Tokens(Arc::new(tokens))
    }

    /// The caller behind the `Authorization` header, or the 401 to answer.
    pub fn authenticate(&self, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
        let tokens = match self {
            Auth::Disabled => {
                return Ok(Caller {
                    name: "anonymous".into(),
                    role: Role::Admin,
                });
            }
            Auth::Tokens(t) => t,
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing bearer token (Authorization: Bearer <token>)",
                CHALLENGE,
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty());
        let Some(presented) = presented else {
            return Err(ApiError::unauthorized(
                "the Authorization header must be `Bearer <token>`",
                CHALLENGE_INVALID,
            ));
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&ApiToken> = None;
        // every entry is compared, whatever matched before
        for t in tokens.iter() {
            if ct_eq(&digest, &t.sha256) {
                found = Some(t);
            }
        }
        match found {
            Some(t) => Ok(Caller {
                name: t.name.clone(),
                role: t.role,
            }),
            None if tokens.is_empty() => Err(ApiError::unauthorized(
                "no API tokens are configured on this server ([[api.tokens]] or api.tokens_file)",
                CHALLENGE_INVALID,
            )),
            None => Err(ApiError::unauthorized("invalid token", CHALLENGE_INVALID)),
        }
    }
}

/// Constant-time equality of two digests.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for i in 0..32 {
        diff |= a[i] ^ b[i];
    }
    std::hint::black_box(diff) == 0
}

/// State of the auth middleware: how to authenticate and the least role a route needs.
#[derive(Clone)]
pub struct Gate {
    pub auth: Auth,
    pub role: Role,
}

/// Middleware: 401 without a valid token, 403 without the role; otherwise the
/// [`Caller`] goes into the request (for handlers) and the response (for the access log).
pub async fn require(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let caller = match gate.auth.authenticate(req.headers()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if caller.role < gate.role {
        let mut resp = ApiError::forbidden(format!(
            "token {:?} has role {}; this endpoint needs {}",
            caller.name,
            caller.role.as_str(),
            gate.role.as_str()
        ))
        .into_response();
        resp.extensions_mut().insert(caller);
        return resp;
    }
    req.extensions_mut().insert(caller.clone());
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(caller);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_vectors() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash_token_from("abc\n".as_bytes()).unwrap(),
            hash_token("abc")
        );
        assert!(hash_token_from("\n".as_bytes()).is_err());
    }

    #[test]
    fn tokens_from_config_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(
            &f,
            format!(
                "# name role sha256\nops admin {}  # the on-call\n\n",
                hash_token("t2").to_uppercase()
            ),
        )
        .unwrap();
        let raw = vec![RawToken {
            name: "soc".into(),
            role: "reader".into(),
            sha256: hash_token("t1"),
        }];
        let t = load_tokens(&raw, Some(&f)).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[1].name.as_str(), t[1].role), ("ops", Role::Admin));
        let shown = format!("{t:?}");
        assert!(!shown.contains(&hash_token("t1")), "{shown}");

        let auth = Auth::tokens(t);
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(auth.authenticate(&h).unwrap_err().status, 401);
        h.insert(header::AUTHORIZATION, "Bearer t2".parse().unwrap());
        assert_eq!(auth.authenticate(&h).unwrap().name, "ops");
        h.insert(header::AUTHORIZATION, "bearer t1".parse().unwrap());
        assert_eq!(auth.authenticate(&h).unwrap().role, Role::Reader);
        h.insert(header::AUTHORIZATION, "Bearer t3".parse().unwrap());
        let e = auth.authenticate(&h).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(!e.message.contains("t3"));
        h.insert(header::AUTHORIZATION, "Basic dDE6".parse().unwrap());
        assert_eq!(auth.authenticate(&h).unwrap_err().status, 401);
    }

    #[test]
    fn tokens_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            let f = jail.directory().join("tokens");
            std::fs::write(&f, format!("ops admin {}\n", hash_token("t2"))).unwrap();
            jail.set_env("AUDITWATCH__API__TOKENS_FILE", f.display());
            jail.set_env(
                "AUDITWATCH__API__TOKENS",
                format!(
                    "[{{name=\"soc\",role=\"reader\",sha256=\"{}\"}}]",
                    hash_token("t1")
                ),
            );
            jail.set_env("AUDITWATCH__API__QUERY_TIMEOUT", "5s");
            let c = crate::config::load(None).unwrap();
            let names: Vec<_> = c
                .api_tokens
                .iter()
                .map(|t| (t.name.as_str(), t.role))
                .collect();
            assert_eq!(names, [("soc", Role::Reader), ("ops", Role::Admin)]);
            assert_eq!(c.api_limits.timeout, std::time::Duration::from_secs(5));
            Ok(())
        });
    }

    #[test]
    fn bad_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        for bad in [
            "soc reader abc\n",
            "soc superuser 0000000000000000000000000000000000000000000000000000000000000000\n",
            "soc reader\n",
        ] {
            std::fs::write(&f, bad).unwrap();
            assert!(load_tokens(&[], Some(&f)).is_err(), "{bad}");
        }
        let dup = vec![
            RawToken {
                name: "a".into(),
                role: "reader".into(),
                sha256: hash_token("x"),
            };
            2
        ];
        assert!(load_tokens(&dup, None).is_err());
        assert!(load_tokens(&[], Some(&dir.path().join("missing"))).is_err());
    }
}
