//! Demo sign-in (`demo_login = true` only; never in production): makes sessions exactly as
//! express-session would, so the rest of the gate is exercised for real.

use crate::engine::RevokeTarget;
use crate::session::Session;
use crate::time::{format_http_date, format_rfc3339_ms};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response, Result};

use super::env;
use super::gate::sessions;
use super::util::{self, json_response, Settings};

/// express-session's default is a browser-session cookie; the demo's sessions last an hour.
const MAX_AGE_MS: i64 = 3_600_000;

/// The login form, or its JSON: `{"name", "roles"?}`.
struct Login {
    name: String,
    roles: Vec<String>,
}

impl Login {
    fn from_value(value: Value) -> Option<Login> {
        let mut f = crate::json_read::Fields::of(value)?;
        Some(Login {
            name: f.string("name")?,
            roles: f.or_default("roles", crate::json_read::strings)?,
        })
    }
}

pub async fn handle(
    action: &str,
    req: Request,
    env: &Env,
    settings: &Settings,
) -> Result<Response> {
    match (req.method(), action) {
        (Method::Post, "login") => login(req, env, settings).await,
        (Method::Post, "logout") => logout(req, env, settings).await,
        (Method::Get, "me") => me(req, env, settings).await,
        _ => Response::error("not found", 404),
    }
}

fn valid_word(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn read_login(mut req: Request) -> Option<Login> {
    let content_type = req
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let body = req.text().await.ok()?;
        let field = |name: &str| crate::rules::query_param(&body, name).map(|v| v.into_owned());
        let roles = field("roles").unwrap_or_default();
        Some(Login {
            name: field("name")?,
            roles: roles
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    } else {
        Login::from_value(util::json_body(&mut req).await.ok()?)
    }
}

async fn login(req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let previous = current_sid(&req, settings);
    // Over https the cookie is Secure, as express-session's `cookie.secure` would make it.
    let secure = if req.inner().url().starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    let Some(login) = read_login(req).await else {
        return util::error_json("send {\"name\": \"ada\", \"roles\": [\"chat\"]}", 400);
    };
    if !valid_word(&login.name, 32) {
        return util::error_json("name: 1-32 letters, digits, '-' or '_'", 400);
    }
    if login.roles.len() > 8 || !login.roles.iter().all(|r| valid_word(r, 32)) {
        return util::error_json("roles: up to 8 words of letters, digits, '-' or '_'", 400);
    }
    let config = &settings.config;
    let kv = env::sessions(env).map_err(kv_error)?;
    if let Some(old) = previous {
        // Signing in again replaces the session, as req.session.regenerate() would.
        kv.delete(&config.session_key(&old))
            .await
            .map_err(kv_error)?;
    }
    // express-session's sid: 24 random bytes, base64url, 32 characters.
    let sid = URL_SAFE_NO_PAD.encode(util::random_bytes::<24>()?);
    let now = util::now_ms();
    let expires = now + MAX_AGE_MS;
    let user_id = format!("u-{}", login.name);
    let user = json!({"id": user_id, "name": login.name, "roles": login.roles});
    let session = json!({
        "cookie": {
            "originalMaxAge": MAX_AGE_MS,
            "expires": format_rfc3339_ms(expires),
            "httpOnly": true,
            "path": "/",
            "sameSite": "lax",
        },
        "passport": {"user": user_id},
        "user": user,
    });
    let ttl = Some((MAX_AGE_MS / 1000) as u64);
    kv.put(&config.session_key(&sid), &session.to_string(), ttl)
        .await
        .map_err(kv_error)?;
    let cookie = format!(
        "{}={}; Path=/; Expires={}; HttpOnly{secure}; SameSite=Lax",
        config.cookie_name,
        settings
            .config
            .cookie_format
            .cookie_value(&settings.secrets, &sid),
        format_http_date(expires)
    );
    let mut response = json_response(&json!({"user": user}), 200)?;
    response.headers_mut().set("Set-Cookie", &cookie)?;
    Ok(response)
}

async fn logout(req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    if let Some(sid) = current_sid(&req, settings) {
        let config = &settings.config;
        env::sessions(env)
            .map_err(kv_error)?
            .delete(&config.session_key(&sid))
            .await
            .map_err(kv_error)?;
        // Sockets of this session close now rather than at the next revalidation.
        super::revoke::revoke(env, &settings.config, &RevokeTarget::Sid(sid)).await?;
    }
    let mut response = Response::empty()?.with_status(204);
    let cleared = format!(
        "{}=; Path=/; Expires={}; HttpOnly; SameSite=Lax",
        settings.config.cookie_name,
        format_http_date(0)
    );
    response.headers_mut().set("Set-Cookie", &cleared)?;
    Ok(response)
}

async fn me(req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let not_signed_in = || util::error_json("not signed in", 401);
    let Some(sid) = current_sid(&req, settings) else {
        return not_signed_in();
    };
    let store = sessions(env, settings);
    let stored = match store.load(&settings.config.session_key(&sid)).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_signed_in(),
        Err(_) => return util::error_json("session store unavailable", 503),
    };
    match Session::from_json(&stored) {
        Ok(session) if !session.is_expired(util::now_ms()) => json_response(
            &json!({"user": session.get("user").cloned().unwrap_or(Value::Null)}),
            200,
        ),
        _ => not_signed_in(),
    }
}

/// The verified sid of the request's session cookie.
fn current_sid(req: &Request, settings: &Settings) -> Option<String> {
    let header = req.headers().get("cookie").ok().flatten()?;
    let value = crate::cookie::find(&header, &settings.config.cookie_name)?;
    settings
        .config
        .cookie_format
        .sid(&settings.secrets, &value)
        .map(str::to_owned)
}

fn kv_error(e: super::kv::KvError) -> worker::Error {
    util::error(format_args!("KV: {e}"))
}
