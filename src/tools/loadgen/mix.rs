//! The message mix (`--mix gsm7=70,unicode=20,multipart=10`) and the
//! pre-built message templates the senders stamp batches from.
//!
//! Each kind has one template message, built once from
//! [`crate::tools::demo::demo_text`] with a sentinel number in it. A message is a
//! clone of its template with fixed-width digit slots overwritten in place
//! (client_ref, recipient, the order number in the text): no formatting, and
//! no allocation beyond the clone itself. Every message of a run is unique
//! in (sender, recipient, text) — the simulator counts repeats of that triple
//! as duplicates — and in client_ref (the gateway deduplicates on it).

use std::fmt;
use std::str::FromStr;

use crate::ingest::pb;

/// The kinds of message a mix draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A single-part GSM-7 text.
    Gsm7,
    /// A single-part UCS-2 text (accents and an emoji).
    Unicode,
    /// A three-part GSM-7 text.
    Multipart,
    /// A GSM-7 text to an invalid number: rejected at admission.
    Invalid,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Gsm7, Kind::Unicode, Kind::Multipart, Kind::Invalid];

    /// The name used in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gsm7 => "gsm7",
            Kind::Unicode => "unicode",
            Kind::Multipart => "multipart",
            Kind::Invalid => "invalid",
        }
    }

    /// The `i` for which `demo_text(i)` has this kind's text, with a
    /// ten-digit sentinel order number.
    fn sentinel(self) -> usize {
        match self {
            Kind::Gsm7 | Kind::Invalid => 1_000_000_000,
            Kind::Unicode => 1_000_000_006,
            Kind::Multipart => 1_000_000_008,
        }
    }
}

/// Largest sum of weights (the length of the round-robin table).
const MAX_TOTAL_WEIGHT: u32 = 10_000;

/// A weighted mix of message kinds, e.g. `gsm7=70,unicode=20,multipart=10`.
/// Weights are whole numbers and need not add up to 100; a bare name weighs 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
}

impl Mix {
    /// The kinds with a positive weight, in the order given.
    pub fn weights(&self) -> &[(Kind, u32)] {
        &self.weights
    }

    /// The kind of every slot of one round (length = sum of weights),
    /// interleaved by smooth weighted round-robin so that any stretch of
    /// consecutive messages follows the mix closely.
    fn table(&self) -> Vec<Kind> {
        let total: i64 = self.weights.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut current = vec![0i64; self.weights.len()];
        let mut out = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for (i, (_, w)) in self.weights.iter().enumerate() {
                current[i] += i64::from(*w);
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            out.push(self.weights[best].0);
        }
        out
    }
}

impl Default for Mix {
    fn default() -> Self {
        "gsm7=70,unicode=20,multipart=10"
            .parse()
            .expect("literal mix parses")
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut weights: Vec<(Kind, u32)> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, weight) = match item.split_once('=') {
                Some((n, w)) => (
                    n.trim(),
                    w.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("bad weight in `{item}`: expected a whole number"))?,
                ),
                None => (item, 1),
            };
            if name.eq_ignore_ascii_case("mms") {
                return Err("mms is not supported by the load tool yet".to_owned());
            }
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!("unknown kind `{name}` (expected gsm7, unicode, multipart or invalid)")
                })?;
            if weights.iter().any(|(k, _)| *k == kind) {
                return Err(format!("`{name}` given twice"));
            }
            if weight > 0 {
                weights.push((kind, weight));
            }
        }
        let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Err("the mix weights add up to zero".to_owned());
        }
        if total > u64::from(MAX_TOTAL_WEIGHT) {
            return Err(format!(
                "the mix weights add up to {total}; keep them at most {MAX_TOTAL_WEIGHT}"
            ));
        }
        Ok(Mix { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, w)) in self.weights.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={w}", k.name())?;
        }
        Ok(())
    }
}

// === impl Templates ===

/// Width of the sequence-number slots.
const SEQ_DIGITS: usize = 10;
/// Width of the subscriber-number slot of the recipient (`+1415` + 7 digits).
const TO_DIGITS: usize = 7;

#[derive(Debug)]
struct Template {
    message: pb::SubmitMessage,
    /// Byte offsets of the ten-digit slots in `message.text`.
    text_slots: Vec<usize>,
    /// Byte offset of the seven-digit slot in `message.to`, if it has one.
    to_slot: Option<usize>,
}

/// Pre-built messages for one run; [`Templates::message`] stamps message
/// `seq` from them.
#[derive(Debug)]
pub struct Templates {
    /// One per kind, indexed like `Kind::ALL`.
    kinds: Vec<Option<Template>>,
    /// The kind index of each slot of one round of the mix.
    table: Vec<u8>,
    /// Byte offset of the digit slot in `client_ref`.
    ref_slot: usize,
}

impl Templates {
    /// Templates for `mix`; `run` makes client_refs unique to this run.
    pub fn new(mix: &Mix, run: &str) -> Templates {
        let client_ref = format!("bench-{run}-{}", "0".repeat(SEQ_DIGITS));
        let ref_slot = client_ref.len() - SEQ_DIGITS;
        let mut kinds: Vec<Option<Template>> = Kind::ALL.iter().map(|_| None).collect();
        for (kind, _) in &mix.weights {
            let sentinel = kind.sentinel();
            let text = crate::tools::demo::demo_text(sentinel);
            let text_slots = text
                .match_indices(&sentinel.to_string())
                .map(|(i, _)| i)
                .collect();
            let (to, to_slot) = match kind {
                Kind::Invalid => ("+1555".to_owned(), None),
                _ => (format!("+1415{}", "0".repeat(TO_DIGITS)), Some(5)),
            };
            kinds[*kind as usize] = Some(Template {
                message: pb::SubmitMessage {
                    client_ref: client_ref.clone(),
                    to,
                    from: "12345".into(),
                    text,
                    campaign_id: "bench".into(),
                    priority: pb::PriorityClass::PriorityMarketing as i32,
                    ..Default::default()
                },
                text_slots,
                to_slot,
            });
        }
        Templates {
            kinds,
            table: mix.table().into_iter().map(|k| k as u8).collect(),
            ref_slot,
        }
    }

    /// Every message ends with a link and asks for it to be tracked
    /// (`sluice bench --track-links`).
    #[must_use]
    pub fn tracking_links(mut self, on: bool) -> Templates {
        if on {
            for t in self.kinds.iter_mut().flatten() {
                t.message.text.push_str(" https://shop.example/sale");
                t.message.track_links = Some(true);
            }
        }
        self
    }

    /// The kind of message `seq`.
    pub fn kind(&self, seq: u64) -> Kind {
        Kind::ALL[self.table[(seq % self.table.len() as u64) as usize] as usize]
    }

    /// Message `seq`: its kind's template with the digit slots set to `seq`
    /// (mod 10^10); every 20th is transactional.
    pub fn message(&self, seq: u64) -> pb::SubmitMessage {
        let t = self.kinds[self.kind(seq) as usize]
            .as_ref()
            .expect("the table only names kinds with a template");
        let digits = seq_digits(seq);
        let digits = std::str::from_utf8(&digits).expect("ASCII digits");
        let mut m = t.message.clone();
        // Same-length replacements: no reallocation.
        m.client_ref
            .replace_range(self.ref_slot..self.ref_slot + SEQ_DIGITS, digits);
        for &p in &t.text_slots {
            m.text.replace_range(p..p + SEQ_DIGITS, digits);
        }
        if let Some(p) = t.to_slot {
            m.to.replace_range(p..p + TO_DIGITS, &digits[SEQ_DIGITS - TO_DIGITS..]);
        }
        if seq.is_multiple_of(20) {
            m.priority = pb::PriorityClass::PriorityTransactional as i32;
        }
        m
    }

    /// Messages `first..first + n`.
    pub fn batch(&self, first: u64, n: usize) -> Vec<pb::SubmitMessage> {
        (first..first + n as u64).map(|s| self.message(s)).collect()
    }
}

/// `seq` mod 10^10 as ten ASCII digits.
fn seq_digits(mut seq: u64) -> [u8; SEQ_DIGITS] {
    let mut out = [b'0'; SEQ_DIGITS];
    for d in out.iter_mut().rev() {
        *d = b'0' + (seq % 10) as u8;
        seq /= 10;
    }
    out
}
