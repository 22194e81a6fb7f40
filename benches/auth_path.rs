//! The core auth path against one HMAC-SHA256.
//!
//! * `auth_path/decide`: `decision::decide` on a realistic handshake: a Cookie header with four
//!   cookies incl. `connect.sid`, unsign with prepared `Secrets`, an in-memory store handing
//!   back a ~300-byte session (one `String` clone of a `&'static str`), `SessionView::decode`
//!   of the paths the config reads, and three rules (require / include / exclude).
//! * `hmac/raw_per_call`: one HMAC-SHA256 of the 32-char sid the way `cookie-signature` does it
//!   on every call: `Hmac::<Sha256>::new_from_slice(secret)` + update + finalize (key setup
//!   included).
//! * `hmac/prekeyed_clone`: the same HMAC from a pre-keyed state, cloned (what `Secrets` does).
//! * `auth_path/session_decode`: `SessionView::decode` of the session alone.
//!
//! After criterion's own output, a plain summary is printed (ns/op measured with
//! `std::time::Instant` over many iterations) with the full/raw ratio and a per-stage
//! breakdown of the full path. The full path and the two HMACs are timed in interleaved rounds
//! (this machine is shared: a load change then hits the ratio's two sides alike); the stages
//! are diagnostics, each timed on its own. `node benches/core_v8.mjs` runs the same fixture
//! compiled to wasm under V8, against Node's express stack.
//!
//! Run: `cargo bench --bench auth_path` (add `-- --quick` for a shorter criterion run). The
//! release profile optimizes for size (`opt-level = "z"`, for the Worker's wasm); prefix
//! `CARGO_PROFILE_RELEASE_OPT_LEVEL=3` for the same bench optimized for speed, where one raw
//! HMAC is about 3x faster (SHA-NI inlined) and the ratio is far from 2x (README, figures).
//! Count: `AUTH_PATH_LOOP=10000 valgrind --tool=callgrind <bench binary>` runs only 10,000
//! decisions (instructions per decision: the difference from `AUTH_PATH_LOOP=0`, over 10,000);
//! `valgrind` (memcheck) the same way counts allocations per decision from its heap summary.
//! Profile: `cargo bench --bench auth_path -- --profile-time 10 auth_path/decide` under
//! `perf record` (the summary is skipped in that mode; set `CARGO_PROFILE_BENCH_STRIP=false
//! CARGO_PROFILE_BENCH_DEBUG=line-tables-only`, since the release profile strips symbols).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hmac::{Hmac, Mac};
use serde_json::json;
use sessiongate::config::Config;
use sessiongate::cookie_format::CookieFormat;
use sessiongate::decision::{decide, Decision, Handshake, StoreError};
use sessiongate::rules::RuleContext;
use sessiongate::session::Session;
use sessiongate::session_view::SessionView;
use sessiongate::signature::Secrets;
use sha2::Sha256;

const SECRET: &str = "a long production secret, 32+ chars";
const SID: &str = "XYxA01K1Js0u7JYkqNzvolwuNnbFxjpG";
const NOW_MS: i64 = 1_795_651_200_000; // 2026-11-26T00:00:00Z, before the session expires

/// A realistic stored session, about 300 bytes.
const SESSION: &str = r#"{"cookie":{"originalMaxAge":86400000,"expires":"2026-11-26T12:00:00.000Z","secure":true,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":"u-42"},"user":{"id":"u-42","name":"Ada Lovelace","email":"ada@example.com","roles":["chat","admin"],"team":"acme-blue"},"csrfSecret":"k3Jd9sLq0xPZ2vYw8mNa"}"#;

/// The store: one key, the session cloned out of a `&'static str` (one allocation).
struct StaticStore {
    key: String,
}

impl StaticStore {
    fn load(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok((key == self.key).then(|| SESSION.to_owned()))
    }
}

struct Fixture {
    config: Config,
    secrets: Secrets,
    store: StaticStore,
    headers: Vec<(String, String)>,
    cookie_header: String,
}

impl Fixture {
    fn new() -> Fixture {
        let config = Config::from_value(&json!({
            "allowed_origins": ["https://app.example.com"],
            "routes": [{
                "path": "/ws/rooms/:room",
                "room": "{room}",
                "require": [{"session": "passport.user", "exists": true}],
                "include": [{"session": "user.roles", "contains": "chat"}],
                "exclude": [{"session": "user.banned", "equals": true}]
            }]
        }))
        .expect("bench config compiles");
        let secrets = Secrets::new(&[SECRET]).unwrap();
        let cookie_header = format!(
            "theme=dark; _ga=GA1.2.1234567890.1700000000; connect.sid={}; lang=en-US",
            CookieFormat::ExpressSession.cookie_value(&secrets, SID)
        );
        let headers = vec![
            ("host".to_owned(), "gate.example.com".to_owned()),
            ("upgrade".to_owned(), "websocket".to_owned()),
            ("connection".to_owned(), "Upgrade".to_owned()),
            ("origin".to_owned(), "https://app.example.com".to_owned()),
            ("sec-websocket-version".to_owned(), "13".to_owned()),
            (
                "sec-websocket-key".to_owned(),
                "dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
            ),
            ("cookie".to_owned(), cookie_header.clone()),
        ];
        let store = StaticStore {
            key: format!("{}{SID}", config.key_prefix),
        };
        Fixture {
            config,
            secrets,
            store,
            headers,
            cookie_header,
        }
    }

    fn decide(&self) -> Decision<'_> {
        let req = Handshake {
            method: "GET",
            path: black_box("/ws/rooms/lobby"),
            query: "",
            headers: &self.headers,
            own_origin: "https://gate.example.com",
        };
        decide(&req, &self.secrets, &self.config, NOW_MS, |key| {
            self.store.load(key)
        })
    }
}

/// What a config-driven parse could keep of the session: only `cookie.expires` and the paths
/// the rules read, borrowed from the JSON text; every other field is skipped unparsed.
#[derive(serde::Deserialize)]
struct Targeted<'a> {
    #[serde(borrow)]
    cookie: Option<TargetedCookie<'a>>,
    #[serde(borrow)]
    passport: Option<TargetedPassport<'a>>,
    #[serde(borrow)]
    user: Option<TargetedUser<'a>>,
}

#[derive(serde::Deserialize)]
struct TargetedCookie<'a> {
    #[serde(borrow)]
    expires: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct TargetedPassport<'a> {
    #[serde(borrow)]
    user: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct TargetedUser<'a> {
    #[serde(borrow)]
    roles: Option<Vec<&'a str>>,
    banned: Option<bool>,
}

fn hmac_raw(secret: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

fn hmac_prekeyed(keyed: &Hmac<Sha256>, msg: &[u8]) -> [u8; 32] {
    let mut mac = keyed.clone();
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

fn criterion_benches(c: &mut Criterion, fx: &Fixture) {
    let mut group = c.benchmark_group("auth_path");
    group.bench_function("decide", |b| b.iter(|| black_box(fx.decide())));
    group.bench_function("session_decode", |b| {
        b.iter(|| SessionView::decode(black_box(SESSION), &fx.config.session_paths).is_ok())
    });
    group.finish();

    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    let mut group = c.benchmark_group("hmac");
    group.bench_function("raw_per_call", |b| {
        b.iter(|| hmac_raw(black_box(SECRET.as_bytes()), black_box(SID.as_bytes())))
    });
    group.bench_function("prekeyed_clone", |b| {
        b.iter(|| hmac_prekeyed(black_box(&keyed), black_box(SID.as_bytes())))
    });
    group.finish();
}

/// ns per call of `f`, best of `rounds` rounds of `iters` calls (after a warm-up round).
fn ns_per_op<R>(iters: u32, rounds: u32, mut f: impl FnMut() -> R) -> f64 {
    for _ in 0..iters / 4 {
        black_box(f());
    }
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        best = best.min(start.elapsed());
    }
    best.as_nanos() as f64 / f64::from(iters)
}

/// ns per call of each closure, best of `rounds` rounds. Each round times every closure in
/// turn (`iters` calls each), so a change of load on the machine (this one is shared) hits the
/// figures a ratio is made of alike.
fn interleaved<const N: usize>(
    rounds: u32,
    iters: [u32; N],
    mut fs: [&mut dyn FnMut(); N],
) -> [f64; N] {
    for (f, &n) in fs.iter_mut().zip(&iters) {
        for _ in 0..n / 4 {
            f();
        }
    }
    let mut best = [Duration::MAX; N];
    for _ in 0..rounds {
        for ((f, &n), best) in fs.iter_mut().zip(&iters).zip(&mut best) {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            *best = (*best).min(start.elapsed());
        }
    }
    std::array::from_fn(|i| best[i].as_nanos() as f64 / f64::from(iters[i]))
}

fn summary(fx: &Fixture) {
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    let [full, raw, pre] = interleaved(
        15,
        [50_000, 200_000, 200_000],
        [
            &mut || {
                let _ = black_box(fx.decide());
            },
            &mut || {
                black_box(hmac_raw(
                    black_box(SECRET.as_bytes()),
                    black_box(SID.as_bytes()),
                ));
            },
            &mut || {
                black_box(hmac_prekeyed(black_box(&keyed), black_box(SID.as_bytes())));
            },
        ],
    );

    // Stages of the full path, each on its own.
    let header = fx.cookie_header.as_str();
    let find = ns_per_op(1_000_000, 5, || {
        sessiongate::cookie::find(black_box(header), "connect.sid")
    });
    let raw_value = sessiongate::cookie::find(header, "connect.sid")
        .unwrap()
        .into_owned();
    let unsign = ns_per_op(1_000_000, 5, || {
        CookieFormat::ExpressSession
            .sid(&fx.secrets, black_box(&raw_value))
            .map(str::len)
    });
    let load = ns_per_op(1_000_000, 5, || fx.store.load(black_box(&fx.store.key)));
    let session = ns_per_op(200_000, 5, || Session::from_json(black_box(SESSION)));
    // What decide() runs: only the paths the config reads.
    let picked = ns_per_op(200_000, 5, || {
        SessionView::decode(black_box(SESSION), &fx.config.session_paths).map(|s| s.expires_at_ms())
    });
    let value = ns_per_op(200_000, 5, || {
        serde_json::from_str::<serde_json::Value>(black_box(SESSION)).map(|_| ())
    });
    let validate = ns_per_op(200_000, 5, || {
        serde_json::from_str::<serde::de::IgnoredAny>(black_box(SESSION)).map(|_| ())
    });
    let drop_session = {
        // How much of from_json is freeing the Map: build 256 (cache-warm), time dropping them.
        let mut best = f64::MAX;
        for _ in 0..200 {
            let parsed: Vec<Session> = (0..256)
                .map(|_| Session::from_json(black_box(SESSION)).unwrap())
                .collect();
            let start = Instant::now();
            drop(black_box(parsed));
            best = best.min(start.elapsed().as_nanos() as f64 / 256.0);
        }
        best
    };
    let targeted = ns_per_op(200_000, 5, || {
        serde_json::from_str::<Targeted<'_>>(black_box(SESSION)).map(|t| {
            let expires = t
                .cookie
                .and_then(|c| c.expires)
                .and_then(sessiongate::time::parse_rfc3339_ms);
            let user = t.user.as_ref();
            let ok = t.passport.and_then(|p| p.user).is_some()
                && user
                    .and_then(|u| u.roles.as_ref())
                    .is_some_and(|r| r.contains(&"chat"))
                && user.and_then(|u| u.banned) != Some(true);
            (expires, ok)
        })
    });
    let s = SessionView::decode(SESSION, &fx.config.session_paths).unwrap();
    let route = &fx.config.routes[0];
    let params = route.path.match_path("/ws/rooms/lobby").unwrap();
    let headers = fx.headers.clone();
    let rules = ns_per_op(1_000_000, 5, || {
        let ctx = RuleContext {
            session: black_box(&s),
            params: &params,
            query: "",
            headers: &headers,
        };
        route.rules.check(&ctx, |_| {}).is_ok()
    });
    let route_match = ns_per_op(1_000_000, 5, || {
        route
            .path
            .match_path(black_box("/ws/rooms/lobby"))
            .is_some()
    });

    println!();
    println!("== auth_path summary (std::time::Instant; the first three best of 15 interleaved rounds, stages best of 5) ==");
    // Both sides are built at the same opt-level, sha2 included. At "z" the SHA-NI intrinsics
    // are not inlined and a raw HMAC is about 3x slower than at 3, which flatters the ratio:
    // figures.sh runs this bench at both.
    println!(
        "built at opt-level {}",
        option_env!("CARGO_PROFILE_RELEASE_OPT_LEVEL")
            .map_or("\"z\" (the release profile)".to_owned(), |o| format!(
                "{o} (CARGO_PROFILE_RELEASE_OPT_LEVEL)"
            ))
    );
    println!("full auth path (decide)            {full:8.1} ns/op");
    println!("raw HMAC-SHA256, key setup per call {raw:8.1} ns/op");
    println!("HMAC-SHA256, pre-keyed clone        {pre:8.1} ns/op");
    println!("ratio full/raw                      {:8.2}x", full / raw);
    println!("ratio full/pre-keyed                {:8.2}x", full / pre);
    println!("-- stages of the full path --");
    println!("route match_path                    {route_match:8.1} ns/op");
    println!("cookie::find (4 cookies)            {find:8.1} ns/op");
    println!("CookieFormat::sid                   {unsign:8.1} ns/op");
    println!(
        "store load (String clone, ~{}B)    {load:8.1} ns/op",
        SESSION.len()
    );
    println!("SessionView::decode (decide's)      {picked:8.1} ns/op");
    println!("Session::from_json (incl. drop)     {session:8.1} ns/op");
    println!("  serde_json::Value parse+drop      {value:8.1} ns/op");
    println!("  of which drop of the Map          {drop_session:8.1} ns/op");
    println!("  JSON validation only (IgnoredAny) {validate:8.1} ns/op");
    println!(
        "  targeted borrowed parse + 3 rules {targeted:8.1} ns/op (only what the config reads)"
    );
    println!("3 rules (RuleSet::check)            {rules:8.1} ns/op");
    println!(
        "stage sum                           {:8.1} ns/op (rest of decide: {:.1} ns)",
        route_match + find + unsign + load + picked + rules,
        full - (route_match + find + unsign + load + picked + rules)
    );
}

fn main() {
    let fx = Fixture::new();
    match fx.decide() {
        Ok(a) => assert_eq!((a.room.as_ref(), a.sid()), ("lobby", SID)),
        Err(d) => panic!("bench handshake must be admitted: {d:?}"),
    }
    // `AUTH_PATH_LOOP=N`: only N decisions, nothing else (for `valgrind --tool=callgrind`,
    // whose instruction counts are stable on a shared machine, or for counting allocations:
    // memcheck's heap summary at N and at 0, the difference over N).
    if let Some(n) = std::env::var("AUTH_PATH_LOOP")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    {
        for _ in 0..n {
            let _ = black_box(fx.decide());
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &fx);
    c.final_summary();
    // `--profile-time N` (criterion's profiling mode, e.g. under perf): only the benchmark loop.
    if !std::env::args().any(|a| a == "--profile-time") {
        summary(&fx);
    }
}
