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

/// Every request to the Worker. Answers are the runtime's `Response`s so that a handshake's
/// 101 from its room passes through untouched (see `gate::handle`).
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
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
    let path = req.path();
    if path == revalidate::PATH {
        return revalidate::handle(req, &env, &settings)
            .await
            .map(Into::into);
    }
    if path == revoke::PATH {
        return revoke::handle(req, &env, &settings).await.map(Into::into);
    }
    if path.starts_with(crate::store_api::PATH_PREFIX) {
        return store_api::handle(req, &env, &settings)
            .await
            .map(Into::into);
    }
    if let Some(action) = path.strip_prefix("/demo/") {
        if settings.config.demo_login {
            return demo::handle(action, req, &env, &settings)
                .await
                .map(Into::into);
        }
        return Response::error("not found", 404).map(Into::into);
    }
    gate::handle(req, &env, &settings).await
}
