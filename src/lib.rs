//! sessiongate: authorize WebSocket handshakes with the Express session a web app already has.
//!
//! The crate is split in two:
//!
//! * a pure core ([`cookie`], [`signature`], [`session`] and [`session_view`], [`config`],
//!   [`rules`], [`route`], [`decision`], the Room [`engine`] and its apps' wire formats
//!   ([`protocol`], [`counter`]), [`store_api`], the Worker's [`log`] lines) that has no `worker`
//!   dependency, so `cargo test` runs it natively, the `sessiongate` CLI links it, and every
//!   decision is testable without a socket;
//! * the Worker layer (`edge`, only on `wasm32`, behind the default feature `edge`) that
//!   adapts `worker::Request`, `Env`, `KvStore` and Durable Object state to the core and does
//!   the I/O.

pub mod admission;
pub mod config;
pub mod cookie;
pub mod cookie_format;
pub mod counter;
pub mod decision;
pub mod engine;
pub mod explain;
pub mod glob;
pub mod json_read;
pub mod log;
pub mod protocol;
pub mod revocation;
pub mod route;
pub mod rules;
mod scan;
pub mod session;
pub mod session_view;
pub mod signature;
pub mod store_api;
pub mod time;

#[cfg(all(target_arch = "wasm32", feature = "edge"))]
mod edge;
