//! Replacing findings: numbered placeholders (`[EMAIL_1]`, the same value the same number
//! within one text, so a model can still refer to it), masks of the same length, or salted
//! hashes; and the findings' character offsets, as Presidio reports them.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::{Entity, Finding};

/// How a finding is replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `[EMAIL_1]`, `[PHONE_2]`, …: numbered per type in order of first appearance.
    Placeholder,
    /// One `*` per character.
    Mask,
    /// `[EMAIL:<first 12 hex of SHA-256(salt ‖ value)>]`: equal values give equal tags under one
    /// salt; without the salt a tag cannot be checked against guessed values.
    Hash { salt: Vec<u8> },
}

impl Mode {
    pub fn from_name(name: &str, salt: Vec<u8>) -> Option<Mode> {
        Some(match name {
            "placeholder" => Mode::Placeholder,
            "mask" => Mode::Mask,
            "hash" => Mode::Hash { salt },
            _ => return None,
        })
    }
}

impl Entity {
    /// The short name used in placeholders and on the command line.
    pub fn short(self) -> &'static str {
        match self {
            Entity::EmailAddress => "EMAIL",
            Entity::CreditCard => "CARD",
            Entity::IbanCode => "IBAN",
            Entity::UsSsn => "SSN",
            Entity::IpAddress => "IP",
            Entity::PhoneNumber => "PHONE",
        }
    }

    /// A type by its short (`EMAIL`) or Presidio (`EMAIL_ADDRESS`) name, any case.
    pub fn from_name(name: &str) -> Option<Entity> {
        let n = name.to_ascii_uppercase();
        Entity::ALL.into_iter().find(|e| e.short() == n || e.name() == n)
    }
}

/// One replaced span: the finding, its text, character offsets into the original text, and
/// what replaced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Replaced {
    pub entity: Entity,
    pub start_char: usize,
    pub end_char: usize,
    pub text: String,
    pub score: f64,
    pub replacement: String,
}

/// `text` with the findings of the `keep` types replaced; overlapping findings are replaced once
/// as their union (named by the first), as [`crate::redact`] does.
pub fn anonymize(text: &str, findings: &[Finding], keep: &[Entity], mode: &Mode) -> (String, Vec<Replaced>) {
    let fits = |f: &&Finding| f.start < f.end && f.end <= text.len() && text.is_char_boundary(f.start) && text.is_char_boundary(f.end) && keep.contains(&f.entity);
    let mut spans: Vec<&Finding> = findings.iter().filter(fits).collect();
    spans.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    let mut numbers: HashMap<(Entity, String), usize> = HashMap::new();
    let mut counts: HashMap<Entity, usize> = HashMap::new();
    let (mut out, mut replaced) = (String::with_capacity(text.len()), Vec::new());
    let (mut at, mut chars_at, mut i) = (0usize, 0usize, 0usize);
    while i < spans.len() {
        let first = spans[i];
        let mut end = first.end;
        i += 1;
        while i < spans.len() && spans[i].start < end {
            end = end.max(spans[i].end);
            i += 1;
        }
        let value = &text[first.start..end];
        let rep = match mode {
            Mode::Placeholder => {
                let next = counts.get(&first.entity).copied().unwrap_or(0) + 1;
                let n = *numbers.entry((first.entity, value.to_string())).or_insert_with(|| {
                    counts.insert(first.entity, next);
                    next
                });
                format!("[{}_{n}]", first.entity.short())
            }
            Mode::Mask => "*".repeat(value.chars().count()),
            Mode::Hash { salt } => {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(value.as_bytes());
                let d = h.finalize();
                format!("[{}:{}]", first.entity.short(), d[..6].iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        let start_char = chars_at + text[at..first.start].chars().count();
        let end_char = start_char + value.chars().count();
        out.push_str(&text[at..first.start]);
        out.push_str(&rep);
        replaced.push(Replaced { entity: first.entity, start_char, end_char, text: value.to_string(), score: first.score, replacement: rep });
        chars_at = end_char;
        at = end;
    }
    out.push_str(&text[at..]);
    (out, replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_per_type_and_stable_for_a_value() {
        let t = "Écrivez à a@example.com, puis b@example.com, puis a@example.com; carte 4111 1111 1111 1111.";
        let f = crate::analyze(t).unwrap();
        let (out, r) = anonymize(t, &f, &Entity::ALL, &Mode::Placeholder);
        assert_eq!(out, "Écrivez à [EMAIL_1], puis [EMAIL_2], puis [EMAIL_1]; carte [CARD_1].");
        // Character offsets (É and à are one character, two bytes).
        assert_eq!((r[0].start_char, r[0].end_char, r[0].text.as_str()), (10, 23, "a@example.com"));
        assert_eq!(t.chars().skip(r[3].start_char).take(r[3].end_char - r[3].start_char).collect::<String>(), "4111 1111 1111 1111");
        let (masked, _) = anonymize(t, &f, &[Entity::CreditCard], &Mode::Mask);
        assert!(masked.contains("a@example.com") && masked.contains("carte *******************."));
        let salt = b"s".to_vec();
        let (h1, _) = anonymize(t, &f, &[Entity::EmailAddress], &Mode::Hash { salt: salt.clone() });
        let tags: Vec<&str> = h1.split(['[', ']']).filter(|s| s.starts_with("EMAIL:")).collect();
        assert_eq!((tags.len(), tags[0] == tags[2], tags[0] == tags[1]), (3, true, false));
        let (h2, _) = anonymize(t, &f, &[Entity::EmailAddress], &Mode::Hash { salt: b"other".to_vec() });
        assert_ne!(h1, h2);
        assert_eq!(Entity::from_name("email"), Some(Entity::EmailAddress));
        assert_eq!(Entity::from_name("US_SSN"), Some(Entity::UsSsn));
        assert_eq!(Entity::from_name("NAME"), None);
    }
}
