//! `sessiongate explain`: the decision's steps, one line each, for a person asking "would this
//! user get into this room?". It calls the same two steps the gate calls and describes them;
//! nothing is threaded through the hot path.

use crate::config::Config;
use crate::decision::{check_request, check_session, Check, Checked, Decision, Handshake, Stored};
use crate::rules::{RuleContext, RuleKind};
use crate::session_view::SessionView;
use crate::signature::Secrets;

/// One line of an explanation: the check, whether it held, and what it looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub check: String,
    pub held: bool,
    pub detail: String,
}

fn step(check: &str, held: bool, detail: impl Into<String>) -> Step {
    Step {
        check: check.to_owned(),
        held,
        detail: detail.into(),
    }
}

/// The request checks in order, as lines: those before `failed` held.
const REQUEST_CHECKS: [Check; 6] = [
    Check::Route,
    Check::Upgrade,
    Check::Bounds,
    Check::Origin,
    Check::Cookie,
    Check::Signature,
];

/// Decides the handshake with `stored` as the store's answer and lists every step.
pub fn explain<'a>(
    req: &Handshake<'a>,
    secrets: &Secrets,
    config: &'a Config,
    stored: Stored<'_>,
    now_ms: i64,
) -> (Decision<'a>, Vec<Step>) {
    let mut steps = Vec::new();
    let checked = check_request(req, secrets, config);
    let failed = checked.as_ref().err().map(|d| d.check());
    for check in REQUEST_CHECKS {
        let held = failed != Some(check);
        steps.push(step(
            check.as_str(),
            held,
            request_detail(check, req, config, &checked),
        ));
        if !held {
            break;
        }
    }
    let checked = match checked {
        Ok(c) => c,
        Err(d) => return (Err(d), steps),
    };
    steps.push(step(
        "store",
        matches!(stored, Ok(Some(_))),
        match &stored {
            Ok(Some(_)) => "found".to_owned(),
            Ok(None) => "no such key".to_owned(),
            Err(e) => e.0.clone(),
        },
    ));
    if let Ok(Some(json)) = &stored {
        session_steps(&checked, json, config, now_ms, &mut steps);
    }
    let decision = check_session(checked, stored, config, now_ms);
    if let Ok(admission) = &decision {
        steps.push(step("room", true, admission.room.as_ref()));
    }
    (decision, steps)
}

fn request_detail(
    check: Check,
    req: &Handshake<'_>,
    config: &Config,
    checked: &Result<Checked<'_>, crate::decision::Denial>,
) -> String {
    match check {
        Check::Route => match checked
            .as_ref()
            .map(|c| c.route)
            .or_else(|d| d.route.ok_or(()))
        {
            Ok(i) => config.routes[i].path.as_str().to_owned(),
            Err(()) => req.path.to_owned(),
        },
        Check::Upgrade => match checked {
            Err(d) if d.check() == Check::Upgrade => d.refusal.reason().to_owned(),
            _ => "RFC 6455 handshake".to_owned(),
        },
        Check::Bounds => match checked {
            Err(d) if d.check() == Check::Bounds => d.refusal.reason().to_owned(),
            _ => "parameters, query and headers".to_owned(),
        },
        Check::Origin => req.headers.header("origin").map_or_else(
            || "no Origin header (allow_missing_origin)".to_owned(),
            |o| o.into_owned(),
        ),
        Check::Cookie => config.cookie_name.clone(),
        _ => match checked {
            Err(d) if d.check() == Check::Signature => "not signed, or a bad signature".to_owned(),
            _ => format!("signed ({})", config.cookie_format.as_str()),
        },
    }
}

/// Expiry and every rule evaluated, global ones first, stopping where the decision stops.
fn session_steps(
    checked: &Checked<'_>,
    json: &str,
    config: &Config,
    now_ms: i64,
    steps: &mut Vec<Step>,
) {
    let Ok(session) = SessionView::decode(json, &config.session_paths) else {
        steps.push(step("session", false, "unreadable session record"));
        return;
    };
    let expires = session.expires_at_ms().map_or_else(
        || "no expiry (browser-session cookie)".to_owned(),
        crate::time::format_rfc3339_ms,
    );
    let expired = session.is_expired(now_ms);
    steps.push(step("expiry", !expired, expires));
    if expired {
        return;
    }
    let ctx = RuleContext {
        session: &session,
        params: &checked.params,
        query: checked.query,
        headers: checked.headers,
    };
    let scopes = [
        (String::new(), &config.rules),
        (
            format!("routes[{}].", checked.route),
            &config.routes[checked.route].rules,
        ),
    ];
    for (prefix, rules) in scopes {
        let result = rules.check(&ctx, |o| {
            // An exclude condition passes when it does not hold.
            let passed = o.held != (o.kind == RuleKind::Exclude);
            let held = if o.held { "held" } else { "did not hold" };
            let name = format!("{prefix}{}[{}]", o.kind.as_str(), o.index);
            steps.push(step(&name, passed, format!("{} ({held})", o.text)));
        });
        if result.is_err() {
            return;
        }
    }
}
