//! The Worker layer: adapts `worker::Request`, `Env`, KV and Durable Object state to the pure
//! core. Only built for wasm32.

mod demo;
mod env;
mod gate;
mod index;
mod revalidate;
mod revoke;
mod room;
mod store_api;
mod util;

use worker::{event, web_sys, Context, Env, Request, Response, Result};

/// Paths with a handler of their own; the JavaScript entry (`entry.js`) takes every other
/// request for a handshake (`gate.rs`).
fn served_elsewhere(path: &str) -> bool {
    path == revalidate::PATH
        || path == revoke::PATH
        || path.starts_with(crate::store_api::PATH_PREFIX)
        || path.starts_with("/demo/")
}

/// The requests the JavaScript entry does not take (see [`served_elsewhere`]), and every
/// request while the config does not compile.
#[event(fetch)]
async fn fetch(raw: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    let settings = match util::settings(&env) {
        Ok(s) => s,
        // Never fail open: no handshake is admitted with a config that could not be read. The
        // reason was logged once, when this isolate compiled the config.
        Err(_) => {
            return Response::error(
                "sessiongate: configuration invalid (see the Worker's logs)",
                500,
            )
            .map(Into::into)
        }
    };
    let url = raw.url();
    let (_, path, _) = crate::decision::split_url(&url);
    let path = path.to_owned();
    let req = Request::from(raw);
    let answer = if path == revalidate::PATH {
        revalidate::handle(req, &env, &settings).await
    } else if path == revoke::PATH {
        revoke::handle(req, &env, &settings).await
    } else if path.starts_with(crate::store_api::PATH_PREFIX) {
        store_api::handle(req, &env, &settings).await
    } else if let Some(action) = path
        .strip_prefix("/demo/")
        .filter(|_| settings.config.demo_login)
    {
        demo::handle(action, req, &env, &settings).await
    } else {
        Response::error("not found", 404)
    };
    answer.map(Into::into)
}
