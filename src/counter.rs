//! The counter app's protocol (`app = "counter"`), the example of a second room app: every
//! socket of the room sees one number that any of them may add to.
//!
//! Room to client: `{"type":"count","value":N}` on joining and after every change (to every
//! socket, the adder's too). Client to room: `{"type":"add","by":INT}` with `by` an integer
//! in `-MAX_ADD..=MAX_ADD`. A refused frame gets the shared `error` frame.

use serde_json::json;

use crate::protocol::{typed_object, FrameError};

/// The largest step one `add` may take, either way.
pub const MAX_ADD: i64 = 1000;
/// The count stays where every client reads it exactly (JavaScript's safe integers).
pub const MAX_COUNT: i64 = (1 << 53) - 1;

/// Parses a client frame: the `by` of an `add`.
pub fn parse_add(text: &str) -> Result<i64, FrameError> {
    let (kind, map) = typed_object(text)?;
    if kind != "add" {
        return Err(FrameError::UnknownType(kind));
    }
    let by = map.get("by").ok_or(FrameError::MissingField("by"))?;
    by.as_i64()
        .filter(|by| (-MAX_ADD..=MAX_ADD).contains(by))
        .ok_or(FrameError::OutOfRange {
            field: "by",
            min: -MAX_ADD,
            max: MAX_ADD,
        })
}

/// The count after an `add`, if it stays within `-MAX_COUNT..=MAX_COUNT`.
pub fn add(count: i64, by: i64) -> Result<i64, FrameError> {
    count
        .checked_add(by)
        .filter(|n| n.abs() <= MAX_COUNT)
        .ok_or(FrameError::ValueOutOfRange(MAX_COUNT))
}

pub fn count(value: i64) -> String {
    json!({"type": "count", "value": value}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_parse_within_bounds() {
        assert_eq!(parse_add(r#"{"type":"add","by":5}"#), Ok(5));
        assert_eq!(parse_add(r#"{"type":"add","by":-1000}"#), Ok(-1000));
        let refused = |text: &str| parse_add(text).unwrap_err().to_string();
        let range = "\"by\" must be an integer from -1000 to 1000";
        assert_eq!(refused(r#"{"type":"add","by":1001}"#), range);
        assert_eq!(refused(r#"{"type":"add","by":1.5}"#), range);
        assert_eq!(refused(r#"{"type":"add","by":"1"}"#), range);
        assert_eq!(refused(r#"{"type":"add"}"#), "frame needs \"by\"");
        assert_eq!(
            refused(r#"{"type":"broadcast","data":1}"#),
            "unknown frame type \"broadcast\""
        );
        assert_eq!(refused("add"), "frame is not JSON");
    }

    #[test]
    fn the_count_stays_exact_for_clients() {
        assert_eq!(add(1, -3), Ok(-2));
        assert_eq!(add(MAX_COUNT - 1, 1), Ok(MAX_COUNT));
        assert_eq!(
            add(MAX_COUNT, 1),
            Err(FrameError::ValueOutOfRange(MAX_COUNT))
        );
        assert_eq!(
            add(-MAX_COUNT, -1).unwrap_err().to_string(),
            "the value must stay within -9007199254740991..9007199254740991"
        );
        assert_eq!(count(-2), r#"{"type":"count","value":-2}"#);
    }
}
