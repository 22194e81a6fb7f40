//! What the Worker reads from its environment, by name: the bindings of wrangler.toml and the
//! secrets of `wrangler secret put` (or `.dev.vars`).

use worker::{Env, ObjectNamespace, Result};

use super::kv::{KvError, KvNamespace};

/// The `[vars]` table that holds the whole config.
pub const CONFIG_VAR: &str = "SESSIONGATE";
/// Workers KV with the sessions (key = `key_prefix` + sid).
pub const SESSIONS: &str = "SESSIONS";
/// The Room Durable Objects, one per room name.
pub const ROOMS: &str = "ROOMS";
/// The revocation index's shards (`RevocationIndex` objects named `shard:<n>`).
pub const INDEX: &str = "INDEX";
/// express-session's secret(s): a JSON array (the first signs, every one verifies) or one string.
pub const SESSION_SECRETS: &str = "SESSION_SECRETS";
/// Enables `POST /_sessiongate/revoke`.
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
/// Signs what the gate sends to an app's own rooms (docs/ADMISSION.md); the app's Worker has
/// the same secret.
pub const ADMISSION_KEY: &str = "ADMISSION_KEY";
/// Enables the session store endpoints `/_sessiongate/sessions/:sid`.
pub const STORE_TOKEN: &str = "STORE_TOKEN";

pub fn sessions(env: &Env) -> std::result::Result<KvNamespace, KvError> {
    KvNamespace::bound(env, SESSIONS)
}

pub fn rooms(env: &Env) -> Result<ObjectNamespace> {
    env.durable_object(ROOMS)
}

pub fn index(env: &Env) -> Result<ObjectNamespace> {
    env.durable_object(INDEX)
}

/// A bearer token secret (`ADMIN_TOKEN`, `STORE_TOKEN`); `None` when it is unset or empty,
/// which turns its endpoints off.
pub fn token(env: &Env, name: &str) -> Option<String> {
    let token = env.secret(name).ok()?.to_string();
    (!token.is_empty()).then_some(token)
}
