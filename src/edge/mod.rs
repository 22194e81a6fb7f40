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

use std::future::Future;
use std::pin::Pin;

use worker::{event, web_sys, Context, Env, Request, Response, Result};

/// Runs a handler other than the handshake's behind a pointer: its state machine stays a
/// function of its own instead of being inlined into `fetch`'s, so the runtime compiles it
/// only if it runs (a cold start's first handshake compiles less).
async fn cold<'a>(
    handler: impl Future<Output = Result<Response>> + 'a,
) -> Result<web_sys::Response> {
    let handler: Pin<Box<dyn Future<Output = Result<Response>> + 'a>> = Box::pin(handler);
    handler.await.map(Into::into)
}

/// Every request to the Worker. Answers are the runtime's `Response`s so that a handshake's
/// 101 from its room passes through untouched (see `gate::handle`).
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
    // The handshake reads the runtime's request; the other handlers get a `worker::Request`.
    let url = raw.url();
    let (_, path, _) = crate::decision::split_url(&url);
    if path == revalidate::PATH {
        return cold(revalidate::handle(Request::from(raw), &env, &settings)).await;
    }
    if path == revoke::PATH {
        return cold(revoke::handle(Request::from(raw), &env, &settings)).await;
    }
    if path.starts_with(crate::store_api::PATH_PREFIX) {
        return cold(store_api::handle(Request::from(raw), &env, &settings)).await;
    }
    if let Some(action) = path.strip_prefix("/demo/") {
        if settings.config.demo_login {
            return cold(demo::handle(action, Request::from(raw), &env, &settings)).await;
        }
        return Response::error("not found", 404).map(Into::into);
    }
    gate::handle(raw, &url, &env, &settings).await
}
