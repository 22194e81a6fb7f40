//! The counter app (`app = "counter"`), the example of a second app: one number per room,
//! kept in the object's SQLite storage so it outlives hibernation. Every socket gets
//! `{"type":"count","value":N}` on joining and after every change; `{"type":"add","by":INT}`
//! changes it (see `crate::counter` and docs/PROTOCOL.md).

use crate::counter;
use crate::protocol::{self, FrameError};
use worker::Result;

use super::app::{App, Frame};
use super::members::{Member, RoomContext};

pub struct Counter;

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL)";

fn load(room: &RoomContext<'_>) -> Result<i64> {
    let sql = room.sql();
    sql.exec(SCHEMA, None)?;
    let mut rows = sql.exec("SELECT value FROM counter WHERE id = 0", None)?;
    // The cursor's own `next::<T>` would read the row through serde-wasm-bindgen.
    let Some(row) = Iterator::next(&mut rows).transpose()? else {
        return Ok(0);
    };
    // A row is an object by column name. SQLite's integer reaches JavaScript as a number; the
    // count stays within its safe range.
    let value = worker::js_sys::Reflect::get(&row, &"value".into())?;
    Ok(value.as_f64().map_or(0, |v| v as i64))
}

fn save(room: &RoomContext<'_>, value: i64) -> Result<()> {
    room.sql().exec(
        "INSERT INTO counter (id, value) VALUES (0, ?) ON CONFLICT (id) DO UPDATE SET value = excluded.value",
        vec![value.into()],
    )?;
    Ok(())
}

impl App for Counter {
    fn on_connect(&self, room: &RoomContext<'_>, me: &Member) -> Result<()> {
        me.send(&counter::count(load(room)?));
        Ok(())
    }

    fn on_message(&self, room: &RoomContext<'_>, me: &Member, frame: Frame<'_>) -> Result<()> {
        let Frame::Text(text) = frame else {
            me.send(&protocol::error(&FrameError::Binary));
            return Ok(());
        };
        let by = match counter::parse_add(text) {
            Ok(by) => by,
            Err(refused) => {
                me.send(&protocol::error(&refused));
                return Ok(());
            }
        };
        match counter::add(load(room)?, by) {
            Ok(value) => {
                save(room, value)?;
                room.broadcast(&counter::count(value), None);
            }
            Err(refused) => me.send(&protocol::error(&refused)),
        }
        Ok(())
    }
}
