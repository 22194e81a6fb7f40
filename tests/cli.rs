//! The `sessiongate` binary, run as a user would.

use std::process::{Command, Output};

fn sessiongate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run sessiongate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sign_prints_the_cookie_value_express_session_sets() {
    let o = sessiongate(&["sign", "--secret", "tobiiscool", "hello"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI\n"
    );
}

#[test]
fn unsign_prints_the_sid_and_accepts_any_rotation_secret() {
    let header =
        "theme=dark; connect.sid=s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI; x=1";
    let o = sessiongate(&[
        "unsign",
        "--name",
        "connect.sid",
        "--secret",
        "new",
        "--secret",
        "tobiiscool",
        "--header",
        header,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello\n");
}

#[test]
fn unsign_refusals_print_nothing_on_stdout_and_exit_1() {
    let cases = [
        (
            "connect.sid=s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QX",
            "signature does not verify",
        ),
        ("connect.sid=hello", "not signed"),
        ("other=1", "no cookie named"),
    ];
    for (header, why) in cases {
        let o = sessiongate(&[
            "unsign",
            "--name",
            "connect.sid",
            "--secret",
            "tobiiscool",
            "--header",
            header,
        ]);
        assert_eq!(o.status.code(), Some(1), "{header}");
        assert_eq!(stdout(&o), "", "{header}");
        assert!(stderr(&o).contains(why), "{header}: {}", stderr(&o));
    }
}

#[test]
fn check_config_accepts_the_repository_wrangler_toml_in_every_env() {
    for args in [
        vec!["check-config"],
        vec!["check-config", "--env", "dev"],
        vec!["check-config", "--env", "test"],
        vec!["check-config", "--env", "soak"],
        vec!["check-config", "--env", "bench"],
    ] {
        let o = sessiongate(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("routes[0] /ws/rooms/:room"),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn check_config_refuses_demo_login_where_the_build_has_no_demo() {
    let fixture = "tests/fixtures/demo-builds-wrangler.toml";
    for (env, build) in [(None, "[build]"), (Some("staging"), "[env.staging.build]")] {
        let mut args = vec!["check-config", fixture];
        args.extend(env.iter().flat_map(|e| ["--env", e]));
        let o = sessiongate(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains("demo_login = true, but this environment's build (`bash scripts/build.sh`) leaves the demo sign-in out")
                && err.contains(build),
            "{args:?}: {err}"
        );
    }
    for env in ["local", "production"] {
        let o = sessiongate(&["check-config", fixture, "--env", env]);
        assert_eq!(o.status.code(), Some(0), "{env}: {}", stderr(&o));
    }
}

#[test]
fn check_config_lists_every_error_and_exits_2() {
    let o = sessiongate(&["check-config", "tests/fixtures/bad-wrangler.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for want in [
        "cookie_nam: unknown key (did you mean \"cookie_name\"?)",
        "deny_with: expected \"status\" or \"close\", found \"drop\"",
        "routes[0].require[0]: unknown operator \"eq\" (did you mean \"equals\"?; operators: exists,",
        "routes[0].room: placeholder {rom} names no path parameter (route has: room)",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
}

#[test]
fn explain_admits_with_the_projection_and_a_trace() {
    let o = sessiongate(&[
        "explain",
        "--env",
        "test",
        "--session",
        "tests/fixtures/session-ada.json",
        "--path",
        "/ws/admin/ops",
        "--origin",
        "http://allowed.example",
        "--now",
        "2026-11-26T11:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().next(), Some("admit room=admin:ops"));
    assert!(out.contains("routes[2].require[0]"), "{out}");
    // Only the exposed fields reach the room.
    assert!(
        out.contains("\"name\":\"Ada\"") && !out.contains("ada@example.com"),
        "{out}"
    );
}

#[test]
fn explain_denies_with_status_reason_and_the_failing_rule() {
    let base = [
        "explain",
        "--env",
        "test",
        "--session",
        "tests/fixtures/session-ada.json",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        sessiongate(&args)
    };
    let o = run(&["--path", "/ws/users/u-7", "--now", "2026-11-26T11:00:00Z"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).lines().next(), Some("deny 403 rule denied"));
    assert!(
        stdout(&o).contains("failed: routes[4].require[0] (session passport.user equals \"{id}\")"),
        "{}",
        stdout(&o)
    );

    let o = run(&["--path", "/ws/rooms/lobby", "--now", "2026-11-26T12:00:00Z"]);
    assert_eq!(stdout(&o).lines().next(), Some("deny 401 session expired"));

    let o = run(&[
        "--path",
        "/ws/rooms/lobby",
        "--origin",
        "https://evil.example",
        "--now",
        "2026-11-26T11:00:00Z",
    ]);
    assert_eq!(
        stdout(&o).lines().next(),
        Some("deny 403 origin not allowed")
    );

    let o = run(&["--path", "/nope", "--now", "2026-11-26T11:00:00Z"]);
    assert_eq!(stdout(&o).lines().next(), Some("deny 404 no route"));
}

#[test]
fn explain_usage_errors_exit_2() {
    let o = sessiongate(&[
        "explain",
        "--session",
        "tests/fixtures/session-ada.json",
        "--path",
        "/ws/rooms/x",
        "--now",
        "yesterday",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not an RFC 3339 time"));
    let o = sessiongate(&[
        "explain",
        "--session",
        "missing.json",
        "--path",
        "/ws/rooms/x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = sessiongate(&[
        "explain",
        "--config",
        "tests/fixtures/bad-wrangler.toml",
        "--session",
        "tests/fixtures/session-ada.json",
        "--path",
        "/x",
    ]);
    assert_eq!(o.status.code(), Some(2));
}
