//! The Worker layer: adapts `worker::Request`, `Env`, KV and Durable Object state to the pure
//! core. Only built for wasm32.

#[cfg(feature = "demo")]
mod demo;
mod env;
mod gate;
mod index;
mod kv;
mod revalidate;
mod revoke;
mod room;
mod store_api;
mod util;

use worker::{event, web_sys, Context, Env, Request, Response, Result};

/// The requests with a handler of their own, by path; the JavaScript entry (`entry.js`) takes
/// every other request for a handshake (`gate.rs`).
enum Handler<'a> {
    Revalidate,
    Revoke,
    StoreApi,
    /// `/demo/<action>` (answered only in a build with the demo, when `demo_login` is on;
    /// 404 otherwise, never a handshake).
    Demo(#[cfg_attr(not(feature = "demo"), allow(dead_code))] &'a str),
}

fn handler_of(path: &str) -> Option<Handler<'_>> {
    if path == revalidate::PATH {
        Some(Handler::Revalidate)
    } else if path == revoke::PATH {
        Some(Handler::Revoke)
    } else if path.starts_with(crate::store_api::PATH_PREFIX) {
        Some(Handler::StoreApi)
    } else {
        path.strip_prefix("/demo/").map(Handler::Demo)
    }
}

/// Is `path` one of [`Handler`]'s, which the Rust `fetch` serves?
fn served_elsewhere(path: &str) -> bool {
    handler_of(path).is_some()
}

/// The requests of a [`Handler`], which the JavaScript entry hands over, and every request
/// while the config does not compile.
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
    let req = Request::from(raw);
    let answer = match handler_of(path) {
        Some(Handler::Revalidate) => revalidate::handle(req, &env, &settings).await,
        Some(Handler::Revoke) => revoke::handle(req, &env, &settings).await,
        Some(Handler::StoreApi) => store_api::handle(req, &env, &settings).await,
        #[cfg(feature = "demo")]
        Some(Handler::Demo(action)) if settings.config.demo_login => {
            demo::handle(action, req, &env, &settings).await
        }
        _ => Response::error("not found", 404),
    };
    answer.map(Into::into)
}
