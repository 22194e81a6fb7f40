//! `sessiongate`: the core on the command line: sign and verify express-session cookies,
//! check a `wrangler.toml`, and explain the decision for one handshake.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

// The CLI is native only; the wasm build has the Worker instead.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    use clap::{Parser, Subcommand};
    use sessiongate::config::{Config, ConfigErrors, DenyWith};
    use sessiongate::cookie_format::{CookieFormat, Unsigned};
    use sessiongate::decision::Handshake;
    use sessiongate::explain::{self, Step};
    use sessiongate::signature::Secrets;

    #[derive(Parser)]
    #[command(
        name = "sessiongate",
        version,
        about = "Express session cookies and sessiongate configs on the command line"
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Print the cookie value express-session would set for SID (percent-encoded).
        Sign {
            /// The secret that signs (express-session's secrets[0]).
            #[arg(long)]
            secret: String,
            sid: String,
        },
        /// Verify the session cookie in a Cookie header; print its sid (exit 0) or a reason on
        /// stderr (exit 1).
        Unsign {
            /// Cookie name.
            #[arg(long, default_value = "connect.sid")]
            name: String,
            /// A secret; repeat for a rotation list (any one verifies).
            #[arg(long = "secret", required = true)]
            secrets: Vec<String>,
            /// The whole Cookie header value.
            #[arg(long)]
            header: String,
        },
        /// Validate [vars.SESSIONGATE] of a wrangler.toml and list its routes (exit 2 on errors).
        CheckConfig {
            #[arg(default_value = "wrangler.toml")]
            path: PathBuf,
            /// Read [env.ENV.vars.SESSIONGATE] instead of the top-level table.
            #[arg(long)]
            env: Option<String>,
        },
        /// Show the decision for one handshake, assuming a valid cookie for the given session.
        Explain {
            /// wrangler.toml holding [vars.SESSIONGATE].
            #[arg(long, default_value = "wrangler.toml")]
            config: PathBuf,
            #[arg(long)]
            env: Option<String>,
            /// The stored session JSON (what express-session's store holds).
            #[arg(long)]
            session: PathBuf,
            /// Request path, optionally with a query string: /ws/rooms/lobby?x=1
            #[arg(long)]
            path: String,
            /// The Origin header; none is sent without it.
            #[arg(long)]
            origin: Option<String>,
            /// The gate's own origin (always allowed).
            #[arg(long, default_value = "http://localhost:8787")]
            own_origin: String,
            /// An extra header, "Name: value"; repeatable.
            #[arg(long = "header")]
            headers: Vec<String>,
            /// The time to decide at (RFC 3339); default now.
            #[arg(long)]
            now: Option<String>,
        },
    }

    pub fn main() -> ExitCode {
        match Cli::parse().command {
            Command::Sign { secret, sid } => match Secrets::new(&[secret]) {
                Ok(secrets) => {
                    println!(
                        "{}",
                        CookieFormat::ExpressSession.cookie_value(&secrets, &sid)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => usage(&e.to_string()),
            },
            Command::Unsign {
                name,
                secrets,
                header,
            } => {
                let secrets = match Secrets::new(&secrets) {
                    Ok(s) => s,
                    Err(e) => return usage(&e.to_string()),
                };
                let Some(value) = sessiongate::cookie::find(&header, &name) else {
                    eprintln!("no cookie named {name:?} in the header");
                    return ExitCode::from(1);
                };
                match CookieFormat::ExpressSession.verify(&secrets, &value) {
                    Ok(sid) => {
                        println!("{sid}");
                        ExitCode::SUCCESS
                    }
                    Err(Unsigned::NotSigned) => {
                        eprintln!(
                            "cookie {name:?} is not signed (no \"s:\" prefix): not a session"
                        );
                        ExitCode::from(1)
                    }
                    Err(Unsigned::BadSignature) => {
                        eprintln!(
                            "signature does not verify with any of the {} secret(s)",
                            secrets.count()
                        );
                        ExitCode::from(1)
                    }
                }
            }
            Command::CheckConfig { path, env } => {
                let config = match load_config(&path, env.as_deref()) {
                    Ok(c) => c,
                    Err(code) => return code,
                };
                println!(
                    "{}: [{}] is valid",
                    path.display(),
                    table_name(env.as_deref())
                );
                for (i, route) in config.routes.iter().enumerate() {
                    let mode = match route.deny_with {
                        DenyWith::Status => "status",
                        DenyWith::Close => "close",
                    };
                    let rules = &route.rules;
                    println!(
                        "  routes[{i}] {} -> room {:?}  require {} include {} exclude {}  deny_with {mode}  app {}",
                        route.path.as_str(),
                        route.room.as_str(),
                        rules.require.len(),
                        rules.include.len(),
                        rules.exclude.len(),
                        route.app.as_str(),
                    );
                }
                let g = &config.rules;
                println!(
                    "  global rules: require {} include {} exclude {}",
                    g.require.len(),
                    g.include.len(),
                    g.exclude.len()
                );
                ExitCode::SUCCESS
            }
            Command::Explain {
                config,
                env,
                session,
                path,
                origin,
                own_origin,
                headers,
                now,
            } => explain(
                &config,
                env.as_deref(),
                &session,
                &path,
                origin,
                &own_origin,
                &headers,
                now.as_deref(),
            ),
        }
    }

    fn usage(message: &str) -> ExitCode {
        eprintln!("sessiongate: {message}");
        ExitCode::from(2)
    }

    fn table_name(env: Option<&str>) -> String {
        match env {
            Some(e) => format!("env.{e}.vars.SESSIONGATE"),
            None => "vars.SESSIONGATE".to_owned(),
        }
    }

    /// Reads and compiles the SESSIONGATE table; prints every error and returns exit 2.
    fn load_config(path: &Path, env: Option<&str>) -> Result<Config, ExitCode> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(&format!("cannot read {}: {e}", path.display())))?;
        let doc: toml::Table = toml::from_str(&text)
            .map_err(|e| usage(&format!("{} is not TOML: {e}", path.display())))?;
        let root = match env {
            None => Some(&doc),
            Some(e) => doc
                .get("env")
                .and_then(|envs| envs.get(e))
                .and_then(toml::Value::as_table),
        };
        let table = root
            .and_then(|r| r.get("vars"))
            .and_then(|v| v.get("SESSIONGATE"));
        let Some(table) = table else {
            return Err(usage(&format!(
                "{} has no [{}] table",
                path.display(),
                table_name(env)
            )));
        };
        let json = serde_json::to_value(table).map_err(|e| usage(&e.to_string()))?;
        let config = Config::from_value(&json).map_err(|ConfigErrors(errors)| {
            eprintln!(
                "{}: [{}] has {} error(s):",
                path.display(),
                table_name(env),
                errors.len()
            );
            for e in errors {
                eprintln!("  {e}");
            }
            ExitCode::from(2)
        })?;
        if let Some(command) = build_without_demo(&doc, env).filter(|_| config.demo_login) {
            eprintln!(
                "{}: [{}] has 1 error(s):\n  demo_login = true, but this environment's build (`{command}`) \
                 leaves the demo sign-in out, and the gate then answers 500 to every request: \
                 build it with `bash scripts/build.sh --demo` ([{}build]), for local use only",
                path.display(),
                table_name(env),
                env.map_or(String::new(), |e| format!("env.{e}.")),
            );
            return Err(ExitCode::from(2));
        }
        Ok(config)
    }

    /// The build command the environment runs, as wrangler picks it (the environment's
    /// `[build]`, else the top level's), when it is `scripts/build.sh` without `--demo`: a
    /// build whose wasm has no demo sign-in.
    fn build_without_demo<'t>(doc: &'t toml::Table, env: Option<&str>) -> Option<&'t str> {
        let build_of = |t: &'t toml::Table| t.get("build").and_then(toml::Value::as_table);
        let own = env
            .and_then(|e| doc.get("env")?.get(e)?.as_table())
            .and_then(build_of);
        let command = own.or_else(|| build_of(doc))?.get("command")?.as_str()?;
        let ours = command.contains("scripts/build.sh");
        (ours && !command.split_whitespace().any(|word| word == "--demo")).then_some(command)
    }

    #[allow(clippy::too_many_arguments)]
    fn explain(
        config_path: &Path,
        env: Option<&str>,
        session_path: &Path,
        path: &str,
        origin: Option<String>,
        own_origin: &str,
        extra_headers: &[String],
        now: Option<&str>,
    ) -> ExitCode {
        let config = match load_config(config_path, env) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let session = match std::fs::read_to_string(session_path) {
            Ok(s) => s,
            Err(e) => return usage(&format!("cannot read {}: {e}", session_path.display())),
        };
        let now_ms = match now {
            Some(text) => match sessiongate::time::parse_rfc3339_ms(text) {
                Some(ms) => ms,
                None => return usage(&format!("--now {text:?} is not an RFC 3339 time")),
            },
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        };
        // A cookie signed with a throwaway secret stands for "the browser's valid cookie".
        let secrets = match Secrets::new(&["sessiongate explain"]) {
            Ok(s) => s,
            Err(e) => return usage(&e.to_string()),
        };
        let sid = "explain-session-id";
        // A browser's handshake (RFC 6455 section 1.3's sample key).
        let mut headers: Vec<(String, String)> = vec![
            ("upgrade".into(), "websocket".into()),
            ("connection".into(), "Upgrade".into()),
            ("sec-websocket-version".into(), "13".into()),
            (
                "sec-websocket-key".into(),
                "dGhlIHNhbXBsZSBub25jZQ==".into(),
            ),
            (
                "cookie".into(),
                format!(
                    "{}={}",
                    config.cookie_name,
                    config.cookie_format.cookie_value(&secrets, sid)
                ),
            ),
        ];
        if let Some(o) = origin {
            headers.push(("origin".into(), o));
        }
        for h in extra_headers {
            let Some((name, value)) = h.split_once(':') else {
                return usage(&format!("--header {h:?} is not \"Name: value\""));
            };
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
        let request = Handshake {
            method: "GET",
            path: path_only,
            query,
            headers: &headers,
            own_origin,
        };
        let (decision, steps) =
            explain::explain(&request, &secrets, &config, Ok(Some(&session)), now_ms);
        let code = match &decision {
            Ok(a) => {
                println!("admit room={}", a.room);
                ExitCode::SUCCESS
            }
            Err(d) => {
                println!("deny {} {}", d.refusal.status(), d.refusal.reason());
                ExitCode::from(1)
            }
        };
        for Step {
            check,
            held,
            detail,
        } in &steps
        {
            println!(
                "  {:<4} {check:<22} {detail}",
                if *held { "ok" } else { "FAIL" }
            );
        }
        match decision {
            Ok(a) => println!("  session seen by the room: {}", a.projection),
            Err(d) => {
                if let Some(detail) = d.detail {
                    println!("  failed: {detail}");
                }
            }
        }
        code
    }
}
