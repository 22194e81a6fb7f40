//! The subject and operator tables: every name compiles, and round-trips through its enum.

use serde_json::{json, Value};

use super::*;
use crate::session_view::PathSet;

/// Values some operator takes; every operator must take one of them.
fn samples() -> [Value; 4] {
    [json!(true), json!("x"), json!(["x"]), json!(1)]
}

#[test]
fn every_operator_in_the_table_compiles_and_round_trips() {
    for &(name, text) in OperatorName::ALL {
        assert_eq!(name.as_str(), text);
        assert_eq!(OperatorName::from_name(text), Some(name));
        let compiled = samples().into_iter().find_map(|sample| {
            let mut item = json!({"session": "user.id"});
            item[text] = sample;
            Condition::compile(&item, &[], &mut PathSet::default()).ok()
        });
        let condition = compiled.unwrap_or_else(|| panic!("{text}: no sample value compiles"));
        assert_eq!(condition.operator.name(), name, "{text}");
        assert!(condition
            .text
            .starts_with(&format!("session user.id {text} ")));
    }
}

#[test]
fn every_subject_in_the_table_compiles_and_round_trips() {
    for &(name, text) in SubjectName::ALL {
        assert_eq!(name.as_str(), text);
        assert_eq!(SubjectName::from_name(text), Some(name));
        let item = json!({text: "room", "exists": true});
        let condition = Condition::compile(&item, &["room"], &mut PathSet::default()).unwrap();
        assert_eq!(condition.subject.name(), name, "{text}");
        assert_eq!(condition.subject.key(), "room");
        assert_eq!(condition.text, format!("{text} room exists true"));
    }
}

#[test]
fn names_are_unique_across_both_tables() {
    let mut all: Vec<&str> = SubjectName::names().chain(OperatorName::names()).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), SubjectName::ALL.len() + OperatorName::ALL.len());
}

#[test]
fn unknown_names_list_the_table() {
    let error = |item: Value| {
        let errors = Condition::compile(&item, &[], &mut PathSet::default()).unwrap_err();
        errors
            .iter()
            .map(|e| e.error.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        error(json!({"session": "a", "eq": 1})),
        [
            "unknown operator \"eq\" (did you mean \"equals\"?; operators: exists, equals, \
          not_equals, in, contains, matches, gt, gte, lt, lte)"
        ]
    );
    assert_eq!(
        error(json!({"session": "a", "between": [1, 2]})),
        [
            "unknown operator \"between\" (operators: exists, equals, not_equals, in, contains, \
          matches, gt, gte, lt, lte)"
        ]
    );
    assert_eq!(
        error(json!({"sesion": "a", "exists": true})),
        [
            "unknown subject \"sesion\" (did you mean \"session\"?; subjects: session, param, \
             query, header)",
            "needs exactly one subject: session, param, query or header",
        ]
    );
}
