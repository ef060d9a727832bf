//! A user's own list of terms (names, project code names, customer ids …), found as Presidio's
//! `PatternRecognizer(deny_list=…)` finds them: case-insensitive, whole words only (a non-word
//! character or the text's edge on both sides), the first listed term that fits at a place wins,
//! score 1.0. Names and postal addresses have no recogniser of their own: this list is how a
//! deployment covers the ones it knows.

use std::collections::HashSet;

use crate::window::{char_before, is_word, matches_unless};
use crate::{Entity, Error, Finding};

/// Most terms in one list.
pub const MAX_TERMS: usize = 10_000;
/// Longest term (characters).
pub const MAX_TERM_CHARS: usize = 128;
/// Largest deny-list file (bytes).
pub const MAX_FILE: usize = 4 << 20;

/// A compiled deny list.
#[derive(Debug)]
pub struct DenyList {
    re: regex::Regex,
    /// Every prefix of every term, case-folded (what a streamed text may still be completing).
    prefixes: HashSet<String>,
    longest: usize,
    len: usize,
}

/// Case folding as the regex crate's case-insensitive matching has it, for the characters where
/// lower-casing differs (so a held-back prefix is recognised however it is written).
pub(crate) fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            '\u{3C2}' => '\u{3C3}',
            '\u{3D0}' => '\u{3B2}',
            '\u{3D1}' => '\u{3B8}',
            '\u{3D5}' => '\u{3C6}',
            '\u{3D6}' => '\u{3C0}',
            '\u{3F0}' => '\u{3BA}',
            '\u{3F1}' => '\u{3C1}',
            '\u{3F5}' => '\u{3B5}',
            '\u{1FBE}' => '\u{3B9}',
            c => c,
        })
        .collect()
}

impl DenyList {
    /// The list from its terms, in priority order; empty lines are refused, as are lists or
    /// terms over the limits.
    pub fn new<S: AsRef<str>>(terms: &[S]) -> Result<DenyList, Error> {
        if terms.is_empty() || terms.len() > MAX_TERMS {
            return Err(Error::DenyList(format!("{} terms; between 1 and {MAX_TERMS} are accepted", terms.len())));
        }
        let mut alternatives = Vec::with_capacity(terms.len());
        let mut prefixes = HashSet::new();
        let mut longest = 0;
        for (i, t) in terms.iter().enumerate() {
            let t = t.as_ref();
            let n = t.chars().count();
            if t.trim().is_empty() || n > MAX_TERM_CHARS {
                return Err(Error::DenyList(format!("term {} is empty or longer than {MAX_TERM_CHARS} characters", i + 1)));
            }
            longest = longest.max(n);
            let folded = fold(t);
            for (j, _) in folded.char_indices().skip(1) {
                prefixes.insert(folded[..j].to_string());
            }
            prefixes.insert(folded);
            alternatives.push(regex::escape(t));
        }
        // Presidio: (?:^|(?<=\W))(t1|t2|…)(?:(?=\W)|$). The look-behind is checked by hand; the
        // look-ahead is consumed (a non-word character or the end) and the term is group 1.
        let pattern = format!(r"(?i)({})(?:\W|$)", alternatives.join("|"));
        let re = regex::RegexBuilder::new(&pattern).size_limit(64 << 20).build().map_err(|e| Error::DenyList(format!("the list does not compile: {e}")))?;
        Ok(DenyList { re, prefixes, longest, len: terms.len() })
    }

    /// The list from a file's text: one term per line; blank lines and lines starting with `#`
    /// are skipped; surrounding white space is trimmed.
    pub fn parse(text: &str) -> Result<DenyList, Error> {
        let terms: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        DenyList::new(&terms)
    }

    /// The list from a file (at most [`MAX_FILE`] bytes of UTF-8).
    pub fn read(path: &std::path::Path) -> Result<DenyList, Error> {
        let name = path.display();
        let f = std::fs::File::open(path).map_err(|e| Error::DenyList(format!("{name}: {e}")))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE as u64 + 1), &mut bytes).map_err(|e| Error::DenyList(format!("{name}: {e}")))?;
        if bytes.len() > MAX_FILE {
            return Err(Error::DenyList(format!("{name}: over {MAX_FILE} bytes")));
        }
        let text = String::from_utf8(bytes).map_err(|_| Error::DenyList(format!("{name}: not UTF-8 text")))?;
        DenyList::parse(&text).map_err(|e| match e {
            Error::DenyList(m) => Error::DenyList(format!("{name}: {m}")),
            e => e,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn find(&self, text: &str) -> Vec<Finding> {
        matches_unless(&self.re, text, 1, |t, s| char_before(t, s).is_some_and(is_word))
            .into_iter()
            .map(|m| Finding { entity: Entity::DenyList, start: m.start, end: m.end, score: 1.0 })
            .collect()
    }

    /// Where a term that `text` may still be completing starts (the longest end of `text` that
    /// is a term or the start of one, after a non-word character; a whole term too, since what
    /// follows decides whether it is a whole word); `text.len()` when none.
    pub(crate) fn pending_start(&self, text: &str) -> usize {
        let mut start = text.len();
        for (i, _) in text.char_indices().rev().take(self.longest) {
            // A term matches only after a non-word character (or at the start).
            if char_before(text, i).is_some_and(is_word) {
                continue;
            }
            if self.prefixes.contains(&fold(&text[i..])) {
                start = i;
            }
        }
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_first_term_wins_any_case() {
        let d = DenyList::parse("# codenames\nBlue Falcon\n\nblue\nAcme Corp\n").unwrap();
        assert_eq!(d.len(), 3);
        let t = "the BLUE FALCON and blue-ish, Acme Corporation, acme corp. blues";
        let got: Vec<&str> = d.find(t).iter().map(|f| &t[f.start..f.end]).collect();
        assert_eq!(got, ["BLUE FALCON", "blue", "acme corp"]);
        // Folding: the long s matches an s.
        let d = DenyList::new(&["secret"]).unwrap();
        assert_eq!(d.find("a \u{17F}ecret b").len(), 1);
        assert_eq!(d.pending_start("a \u{17F}ecr"), 2);
        assert_eq!(d.pending_start("a secret"), 2);
        assert_eq!(d.pending_start("a secretx"), 9);
        assert_eq!(d.pending_start("a xsecr"), 7);
        assert!(DenyList::new::<&str>(&[]).is_err() && DenyList::new(&[" "]).is_err() && DenyList::new(&["x".repeat(129)]).is_err());
    }
}
