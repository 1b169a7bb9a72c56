//! Inbound keyword classification: is this message a STOP, a START or a HELP?
//!
//! A keyword is the WHOLE message (US CTIA rules): "Stop please" is not an
//! opt-out unless a program configures that phrase. Before matching, a
//! message is normalised:
//! - whitespace, control characters, punctuation (ASCII and the common
//!   Unicode ones: `¡ ¿ « » … “ ” 。 ！`, Arabic/Hebrew/Devanagari marks, …),
//!   zero-width and format characters, and emoji or symbols are trimmed from
//!   both ends (so `¡STOP!`, `"stop."` and `STOP 🛑` are opt-outs);
//! - inside, runs of whitespace become one space (`STOP   ALL`), Unicode
//!   dashes become `-` (`OPT–OUT`), fullwidth ASCII becomes ASCII (`ＳＴＯＰ`);
//! - case is folded (`to_uppercase().to_lowercase()`, so `ß` matches `SS`
//!   and Greek final sigma matches).
//!
//! Configured words go through the same normalisation, in any language.
//!
//! The common path (a message whose trimmed core is ASCII) folds into a
//! 64-byte stack buffer and allocates nothing; a message longer than the
//! longest keyword is rejected after reading at most that many characters
//! of its core.

use std::collections::HashMap;
use std::fmt;

/// What an inbound keyword asks for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Keyword {
    /// Stop messages from this program; `all` for STOPALL / STOP ALL (every
    /// program of the sender, per the gateway's policy).
    OptOut {
        /// STOPALL or STOP ALL.
        all: bool,
    },
    /// Resume messages (START, UNSTOP, YES).
    OptIn,
    /// Send the program's help text (HELP, INFO).
    Help,
}

impl Keyword {
    /// `opt-out`, `opt-out-all`, `opt-in` or `help` (what [`str::parse`] reads).
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::OptOut { all: false } => "opt-out",
            Keyword::OptOut { all: true } => "opt-out-all",
            Keyword::OptIn => "opt-in",
            Keyword::Help => "help",
        }
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A keyword kind in config that is not `opt-out`, `opt-out-all`, `opt-in` or `help`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown keyword kind {0:?} (expected opt-out, opt-out-all, opt-in or help)")]
pub struct UnknownKeywordKind(pub String);

impl std::str::FromStr for Keyword {
    type Err = UnknownKeywordKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "opt-out" | "optout" | "stop" => Ok(Keyword::OptOut { all: false }),
            "opt-out-all" | "optout-all" | "stopall" => Ok(Keyword::OptOut { all: true }),
            "opt-in" | "optin" | "start" => Ok(Keyword::OptIn),
            "help" => Ok(Keyword::Help),
            _ => Err(UnknownKeywordKind(s.to_owned())),
        }
    }
}

/// The CTIA keywords every program honours.
pub const DEFAULT_KEYWORDS: &[(&str, Keyword)] = &[
    ("STOP", Keyword::OptOut { all: false }),
    ("STOPALL", Keyword::OptOut { all: true }),
    ("STOP ALL", Keyword::OptOut { all: true }),
    ("UNSUBSCRIBE", Keyword::OptOut { all: false }),
    ("CANCEL", Keyword::OptOut { all: false }),
    ("END", Keyword::OptOut { all: false }),
    ("QUIT", Keyword::OptOut { all: false }),
    ("REVOKE", Keyword::OptOut { all: false }),
    ("OPTOUT", Keyword::OptOut { all: false }),
    ("OPT-OUT", Keyword::OptOut { all: false }),
    ("START", Keyword::OptIn),
    ("UNSTOP", Keyword::OptIn),
    ("YES", Keyword::OptIn),
    ("HELP", Keyword::Help),
    ("INFO", Keyword::Help),
];

/// Why a configured keyword was refused by [`Keywords::add`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeywordError {
    /// The word is nothing but whitespace and punctuation.
    #[error("keyword {0:?} is empty once whitespace and punctuation are trimmed")]
    Empty(String),
    /// The word is a standard opt-out keyword and would no longer opt out.
    #[error("keyword {word:?} is a standard opt-out keyword and cannot become {kind}")]
    WeakensOptOut {
        /// The configured word.
        word: String,
        /// What the configuration asked for.
        kind: Keyword,
    },
}

/// A match: the keyword and the table word it matched (for the opt-out proof).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Match<'a> {
    /// What the message asks for.
    pub keyword: Keyword,
    /// The normalised (case-folded) word that matched, e.g. `stop all`.
    pub word: &'a str,
}

// === impl Keywords ===

/// Keyword table of one program: the defaults plus its own words.
#[derive(Clone, Debug)]
pub struct Keywords {
    words: HashMap<Box<str>, Keyword>,
    /// Most characters of a normalised word.
    max_chars: usize,
}

impl Default for Keywords {
    fn default() -> Self {
        Self::new()
    }
}

/// Size of the stack buffer of the allocation-free path.
const STACK: usize = 64;

impl Keywords {
    /// The [`DEFAULT_KEYWORDS`].
    pub fn new() -> Self {
        let mut k = Keywords::empty();
        for &(w, kw) in DEFAULT_KEYWORDS {
            k.insert(normalize(w).expect("default keywords are not empty"), kw);
        }
        k
    }

    /// No keywords at all (for tests; programs start from [`Keywords::new`]).
    pub fn empty() -> Self {
        Keywords {
            words: HashMap::new(),
            max_chars: 0,
        }
    }

    /// Adds (or redefines) a word, e.g. `ARRET` → opt-out, `AIDE` → help,
    /// `STOP PLEASE` → opt-out. A later definition of a word replaces an
    /// earlier one, except that a standard opt-out word stays an opt-out.
    ///
    /// # Errors
    /// [`KeywordError::Empty`] for a word of only whitespace/punctuation;
    /// [`KeywordError::WeakensOptOut`] for mapping a standard opt-out word
    /// to anything but an opt-out.
    pub fn add(&mut self, word: &str, keyword: Keyword) -> Result<(), KeywordError> {
        let norm = normalize(word).ok_or_else(|| KeywordError::Empty(word.to_owned()))?;
        let is_default_opt_out = DEFAULT_KEYWORDS.iter().any(|&(w, k)| {
            matches!(k, Keyword::OptOut { .. }) && normalize(w).as_deref() == Some(norm.as_str())
        });
        if is_default_opt_out && !matches!(keyword, Keyword::OptOut { .. }) {
            return Err(KeywordError::WeakensOptOut {
                word: word.to_owned(),
                kind: keyword,
            });
        }
        self.insert(norm, keyword);
        Ok(())
    }

    /// [`Keywords::add`] for a builder chain.
    ///
    /// # Errors
    /// As [`Keywords::add`].
    pub fn with(mut self, word: &str, keyword: Keyword) -> Result<Self, KeywordError> {
        self.add(word, keyword)?;
        Ok(self)
    }

    fn insert(&mut self, norm: String, keyword: Keyword) {
        self.max_chars = self.max_chars.max(norm.chars().count());
        self.words.insert(norm.into_boxed_str(), keyword);
    }

    /// What the whole message asks for, if it is a keyword.
    pub fn classify(&self, text: &str) -> Option<Keyword> {
        self.matched(text).map(|m| m.keyword)
    }

    /// Like [`Keywords::classify`], also naming the word that matched.
    pub fn matched(&self, text: &str) -> Option<Match<'_>> {
        let core = text.trim_matches(is_edge);
        if core.is_empty() {
            return None;
        }
        if core.is_ascii() && self.max_chars <= STACK {
            let mut buf = [0u8; STACK];
            let len = fold_ascii(core, &mut buf, self.max_chars)?;
            // Only ASCII bytes were written.
            let word = std::str::from_utf8(&buf[..len]).ok()?;
            return self.lookup(word);
        }
        let word = normalize_core(core, self.max_chars)?;
        self.lookup(&word)
    }

    /// Fuzzing hook: [`Keywords::matched`] through the general path only
    /// (never the ASCII fast path), to check that both agree.
    #[doc(hidden)]
    pub fn fuzz_matched_slow(&self, text: &str) -> Option<Match<'_>> {
        let core = text.trim_matches(is_edge);
        if core.is_empty() {
            return None;
        }
        normalize_core(core, self.max_chars).and_then(|w| self.lookup(&w))
    }

    fn lookup(&self, word: &str) -> Option<Match<'_>> {
        self.words
            .get_key_value(word)
            .map(|(w, &keyword)| Match { keyword, word: w })
    }
}

/// Lowercases an ASCII core into `buf`, collapsing whitespace runs; `None`
/// when it is longer than `max` (no word can match).
fn fold_ascii(core: &str, buf: &mut [u8; STACK], max: usize) -> Option<usize> {
    let mut len = 0;
    let mut in_space = false;
    for b in core.bytes() {
        let out = if b.is_ascii_whitespace() || b.is_ascii_control() {
            if in_space {
                continue;
            }
            in_space = true;
            b' '
        } else {
            in_space = false;
            b.to_ascii_lowercase()
        };
        if len >= max {
            return None;
        }
        buf[len] = out;
        len += 1;
    }
    Some(len)
}

/// The normalised form of a word or message (`None` if nothing is left).
pub fn normalize(text: &str) -> Option<String> {
    let core = text.trim_matches(is_edge);
    if core.is_empty() {
        return None;
    }
    normalize_core(core, usize::MAX)
}

/// Normalises a trimmed core; `None` when it has more than `max` characters
/// (folding never makes a string shorter in characters, so it cannot match).
fn normalize_core(core: &str, max: usize) -> Option<String> {
    let mut s = String::with_capacity(core.len().min(4 * max.min(STACK)));
    let mut chars = 0;
    let mut in_space = false;
    for c in core.chars() {
        let mapped = if c.is_whitespace() || c.is_control() {
            if in_space {
                continue;
            }
            in_space = true;
            ' '
        } else {
            in_space = false;
            match c {
                '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => '-',
                // Fullwidth ASCII: U+FF01..U+FF5E are U+0021..U+007E + 0xFEE0.
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                _ => c,
            }
        };
        chars += 1;
        if chars > max {
            return None;
        }
        s.push(mapped);
    }
    let folded = s.to_uppercase().to_lowercase();
    (folded.chars().count() <= max).then_some(folded)
}

/// Characters ignored at either end of a message.
fn is_edge(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_whitespace() || c.is_ascii_punctuation() || c.is_ascii_control();
    }
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            // Latin-1 punctuation and format: ¡ § « soft-hyphen ¶ · » ¿
            '\u{A1}' | '\u{A7}' | '\u{AB}' | '\u{AD}' | '\u{B6}' | '\u{B7}' | '\u{BB}' | '\u{BF}'
            // Greek, Armenian, Hebrew, Arabic, Devanagari, Thai punctuation
            | '\u{37E}' | '\u{387}' | '\u{55A}'..='\u{55F}' | '\u{589}' | '\u{5BE}' | '\u{5C0}'
            | '\u{5C3}' | '\u{5F3}' | '\u{5F4}' | '\u{60C}' | '\u{61B}' | '\u{61F}'
            | '\u{66A}'..='\u{66D}' | '\u{6D4}' | '\u{964}' | '\u{965}' | '\u{E4F}' | '\u{E5A}'
            | '\u{E5B}'
            // General Punctuation (dashes, quotes, …, ‼, zero-width and bidi marks)
            | '\u{2000}'..='\u{206F}'
            // Arrows, technical and misc symbols, dingbats (✋ ❌ ⛔)
            | '\u{2190}'..='\u{2BFF}'
            // CJK punctuation: 、。〃 〈〉《》「」『』【】 〔〕…
            | '\u{3001}'..='\u{3003}' | '\u{3008}'..='\u{3011}' | '\u{3014}'..='\u{301F}'
            // Variation selectors (emoji presentation), vertical and small forms
            | '\u{FE00}'..='\u{FE19}' | '\u{FE30}'..='\u{FE6B}'
            // Byte order mark
            | '\u{FEFF}'
            // Fullwidth punctuation
            | '\u{FF01}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}' | '\u{FF3B}'..='\u{FF40}'
            | '\u{FF5B}'..='\u{FF65}'
            // Emoji and pictographs, skin tones, tags
            | '\u{1F000}'..='\u{1FAFF}' | '\u{E0000}'..='\u{E007F}'
        )
}

#[cfg(test)]
mod tests;
