//! Reading Redis streams the way both followers do ([`super::optouts`],
//! [`super::receipts`]): entry ids ([`StreamId`]), a node's place in a
//! stream kept in a file ([`Cursor`]), the first and last ids, and a
//! blocking read of what follows a place ([`after`]).

use std::collections::HashMap;
use std::path::PathBuf;

use redis::Value;

use super::link::{BLOCK, Link, Reader};

/// A Redis stream entry id, `ms-seq`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    /// Reads `ms-seq`.
    pub fn parse(s: &str) -> Option<StreamId> {
        let (a, b) = s.split_once('-')?;
        Some(StreamId(a.parse().ok()?, b.parse().ok()?))
    }

    /// The id right after this one.
    pub fn next(self) -> StreamId {
        if self.1 == u64::MAX {
            StreamId(self.0.saturating_add(1), 0)
        } else {
            StreamId(self.0, self.1 + 1)
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A node's place in a stream, kept in a file (written whole, renamed
/// into place; losing it costs a re-read, never a skip).
#[derive(Debug)]
pub struct Cursor(PathBuf);

impl Cursor {
    /// The cursor kept at `path`.
    pub fn at(path: PathBuf) -> Cursor {
        Cursor(path)
    }

    /// The place kept, if any.
    pub fn load(&self) -> Option<StreamId> {
        StreamId::parse(std::fs::read_to_string(&self.0).ok()?.trim())
    }

    /// Keeps `id`.
    pub fn save(&self, id: StreamId) {
        let tmp = self.0.with_extension("tmp");
        if std::fs::write(&tmp, id.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.0);
        }
    }
}

/// One entry: its id and fields.
#[derive(Debug)]
pub struct Entry {
    /// Its id.
    pub id: StreamId,
    fields: HashMap<String, Value>,
}

impl Entry {
    /// A field's bytes (empty when absent or not a string).
    pub fn bytes(&self, name: &str) -> &[u8] {
        match self.fields.get(name) {
            Some(Value::BulkString(b)) => b,
            Some(Value::SimpleString(s)) => s.as_bytes(),
            _ => &[],
        }
    }

    /// A field as text (invalid UTF-8 replaced).
    pub fn text(&self, name: &str) -> String {
        String::from_utf8_lossy(self.bytes(name)).into_owned()
    }
}

/// The id of the first entry (`first`) or the last of `stream`; `None`
/// when it is empty.
///
/// # Errors
/// Redis could not be reached.
pub async fn edge(link: &Link, stream: &str, first: bool) -> redis::RedisResult<Option<StreamId>> {
    let (cmd, from, to) = if first {
        ("XRANGE", "-", "+")
    } else {
        ("XREVRANGE", "+", "-")
    };
    let one: Vec<(String, Vec<(String, Value)>)> = link
        .query(
            redis::cmd(cmd)
                .arg(stream)
                .arg(from)
                .arg(to)
                .arg("COUNT")
                .arg(1),
        )
        .await?;
    Ok(one.first().and_then(|(id, _)| StreamId::parse(id)))
}

/// Up to `count` entries of `stream` after `at`, waiting up to [`BLOCK`]
/// for one to come.
///
/// # Errors
/// Redis could not be reached.
pub async fn after(
    reader: &Reader,
    stream: &str,
    at: StreamId,
    count: usize,
) -> redis::RedisResult<Vec<Entry>> {
    let reply: Option<redis::streams::StreamReadReply> = reader
        .read(
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(stream)
                .arg(at.to_string()),
        )
        .await?;
    Ok(reply
        .map(|r| r.keys)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|k| k.ids)
        .filter_map(|e| {
            Some(Entry {
                id: StreamId::parse(&e.id)?,
                fields: e.map,
            })
        })
        .collect())
}
