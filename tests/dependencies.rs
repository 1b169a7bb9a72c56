//! The direction of dependencies between the crate's top-level rooms, read
//! from the source (every `crate::<room>` outside comments and tests).
//!
//! Low rooms (protocols, value types, transport, the journal) know bytes,
//! `model` and each other as listed in [`LOW`]; they never import a policy
//! room (scheduling, admission, receipts, config, gateway...). No two rooms
//! import each other, directly or around a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Low rooms and the only rooms each may import.
const LOW: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("shaping", &[]),
    ("accept", &[]),
    ("external", &[]),
    ("tls", &[]),
    ("wire", &[]),
    ("door", &["accept", "tls"]),
    ("httpd", &["door"]),
    ("smpp", &["model", "shaping", "wire"]),
    ("mm7", &["model", "door", "httpd", "tls"]),
    ("media", &["model"]),
    ("suppression", &["model"]),
    ("journal", &["model", "wire"]),
    ("history", &["model"]),
    (
        "settings",
        &["model", "journal", "history", "smpp", "mm7", "tls"],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Top-level rooms: `src/<room>.rs` or `src/<room>/`.
fn rooms() -> BTreeSet<String> {
    std::fs::read_dir(src())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if e.file_type().unwrap().is_dir() {
                Some(name)
            } else {
                let stem = name.strip_suffix(".rs")?;
                (stem != "lib" && stem != "main").then(|| stem.to_string())
            }
        })
        .collect()
}

/// A room's non-test source files.
fn files(room: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src().join(format!("{room}.rs"));
    if file.exists() {
        out.push(file);
    }
    let mut dirs = vec![src().join(room)];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap();
            if p.is_dir() {
                if name != "tests" {
                    dirs.push(p);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                out.push(p);
            }
        }
    }
    out
}

/// The code lines of a room's file, numbered from 1: inline test modules
/// (which close a file by convention) and comments left out.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default();
    code.lines()
        .enumerate()
        .map(|(n, line)| {
            (
                n + 1,
                line.split("//").next().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Rooms `room` imports, each with the first place it does.
fn imports(room: &str, all: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for path in files(room) {
        for (n, line) in code_lines(&path) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name != room && all.contains(&name) {
                    found
                        .entry(name)
                        .or_insert_with(|| format!("{}:{}", path.display(), n));
                }
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let all = rooms();
    all.iter().map(|r| (r.clone(), imports(r, &all))).collect()
}

/// Strongly connected components of more than one room (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        g: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        for w in s.g[v].keys() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = BTreeSet::new();
            loop {
                let w = s.stack.pop().unwrap();
                comp.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn low_rooms_import_only_what_they_are_allowed() {
    let g = graph();
    let mut wrong = Vec::new();
    for (room, allowed) in LOW {
        let imported = g
            .get(*room)
            .unwrap_or_else(|| panic!("no room {room} in src/"));
        for (dep, at) in imported {
            if !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{room} imports {dep} ({at})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies pointing the wrong way:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_cycle_between_rooms() {
    let found = cycles(&graph());
    assert!(found.is_empty(), "rooms in a cycle: {found:?}");
}

/// Rooms that may name the framed protocol's generated `pb` types: the
/// door itself, the gRPC door (its service speaks the same messages), the
/// tools (their clients) and the fuzz targets of its decoder. Every other
/// room works with domain types (`model::submit`, `events::Notice`),
/// converted at the door (`ingest::convert`, `ingest::event_wire`).
const WIRE_ROOMS: &[&str] = &["ingest", "grpc", "tools", "fuzzing"];

/// Places in `code` that name `pb` types.
fn names_pb(code: &str) -> bool {
    code.contains("ingest::pb")
        || code.match_indices("pb::").any(|(i, _)| {
            i == 0 || {
                let before = code.as_bytes()[i - 1];
                !(before.is_ascii_alphanumeric() || before == b'_')
            }
        })
}

#[test]
fn the_wire_types_stay_behind_their_door() {
    let mut wrong = Vec::new();
    for room in rooms() {
        if WIRE_ROOMS.contains(&room.as_str()) {
            continue;
        }
        for path in files(&room) {
            for (n, line) in code_lines(&path) {
                if names_pb(&line) {
                    wrong.push(format!("{}:{}: {}", path.display(), n, line.trim()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "wire types outside their door:\n{}",
        wrong.join("\n")
    );
    assert!(names_pb("use crate::ingest::pb;") && names_pb("x: pb::Event") && !names_pb("rpb::x"));
}

#[test]
fn the_checker_sees_a_wrong_import_and_a_cycle() {
    // The scan and the cycle search themselves, on a made-up graph.
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (a, b) in [
        ("smpp", "schedule"),
        ("schedule", "smpp"),
        ("model", "smpp"),
    ] {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), "here".into());
        g.entry(b.into()).or_default();
    }
    let c = cycles(&g);
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0],
        ["schedule", "smpp"].iter().map(|s| s.to_string()).collect()
    );
    // The real smpp room imports something, so the scan reads files.
    let all = rooms();
    assert!(imports("smpp", &all).contains_key("model"));
}
