//! Multiple-choice task files: JSONL, one question per line,
//! `{"id": "...", "context": "...", "choices": [" a", " b"], "gold": 1}` — each choice is the
//! exact continuation of the context (with its leading space). Optional: `"description"` (put
//! once before any few-shot examples, as lm-eval's task description), `"group"` (few-shot
//! examples are drawn from the same group, e.g. an MMLU subject; bias scores are also reported
//! per group), and for bias tasks `"biased"` (indices of the choices that reflect the social
//! bias under test: none, one or — in BBQ's intersectional categories — two) and `"unknown"`
//! (indices of choices that decline to answer).
//!
//! Task files are untrusted: every limit below is checked and a bad line is refused naming the
//! file and line; nothing is skipped or cut short.

use serde::Deserialize;

use crate::{Error, Result};

/// Longest line accepted (bytes).
pub const MAX_LINE: usize = 1 << 20;
/// Most questions in one file.
pub const MAX_ITEMS: usize = 1_000_000;
/// Most choices per question.
pub const MAX_CHOICES: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct McItem {
    pub id: String,
    pub context: String,
    pub choices: Vec<String>,
    pub gold: usize,
    pub description: Option<String>,
    pub group: Option<String>,
    pub biased: Vec<usize>,
    pub unknown: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: serde_json::Value,
    context: String,
    choices: Vec<String>,
    gold: serde_json::Value,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    biased: Vec<usize>,
    #[serde(default)]
    unknown: Vec<usize>,
}

/// The checks every JSONL task format shares: UTF-8, line length, blank lines skipped, at most
/// [`MAX_ITEMS`] lines, each a `T`, with a unique non-empty `"id"` (string or number). `each`
/// gets the line number, the id and the parsed line; errors name the file and line.
pub(crate) fn for_each_line<T: serde::de::DeserializeOwned>(
    name: &str,
    bytes: &[u8],
    id_of: impl Fn(&T) -> &serde_json::Value,
    mut each: impl FnMut(usize, String, T) -> Result<()>,
) -> Result<()> {
    let bad = |line: usize, msg: String| Error::Task { file: name.to_string(), line, msg };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        bad(line, "not UTF-8".into())
    })?;
    let mut ids = std::collections::HashSet::new();
    for (i, raw) in text.split('\n').enumerate() {
        let ln = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.len() > MAX_LINE {
            return Err(bad(ln, format!("line is {} bytes, the limit is {MAX_LINE}", raw.len())));
        }
        if raw.trim().is_empty() {
            continue;
        }
        if ids.len() == MAX_ITEMS {
            return Err(bad(ln, format!("more than {MAX_ITEMS} questions")));
        }
        let l: T = serde_json::from_str(raw).map_err(|e| bad(ln, format!("{e}")))?;
        let id = match id_of(&l) {
            serde_json::Value::String(s) if !s.is_empty() => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(bad(ln, "\"id\" must be a non-empty string or a number".into())),
        };
        if !ids.insert(id.clone()) {
            return Err(bad(ln, format!("id {id:?} appears twice")));
        }
        each(ln, id, l)?;
    }
    if ids.is_empty() {
        return Err(Error::Task { file: name.to_string(), line: 0, msg: "no questions".into() });
    }
    Ok(())
}

/// Parse a task file's bytes; `name` is the file name used in errors.
pub fn parse_jsonl(name: &str, bytes: &[u8]) -> Result<Vec<McItem>> {
    let bad = |line: usize, msg: String| Error::Task { file: name.to_string(), line, msg };
    let mut items = Vec::new();
    for_each_line(name, bytes, |l: &Line| &l.id, |ln, id, l: Line| {
        let n = l.choices.len();
        if !(2..=MAX_CHOICES).contains(&n) {
            return Err(bad(ln, format!("{n} choices; a question needs 2 to {MAX_CHOICES}")));
        }
        if let Some(k) = l.choices.iter().position(String::is_empty) {
            return Err(bad(ln, format!("choice {k} is empty")));
        }
        let gold = l.gold.as_u64().filter(|&g| (g as usize) < n).ok_or_else(|| {
            bad(ln, format!("\"gold\" must be the index of one of the {n} choices (0..{}), not {}", n - 1, l.gold))
        })? as usize;
        if let Some(b) = l.biased.iter().find(|&&b| b >= n) {
            return Err(bad(ln, format!("\"biased\" names choice {b}, there are {n}")));
        }
        if let Some(u) = l.unknown.iter().find(|&&u| u >= n) {
            return Err(bad(ln, format!("\"unknown\" names choice {u}, there are {n}")));
        }
        items.push(McItem { id, context: l.context, choices: l.choices, gold, description: l.description, group: l.group, biased: l.biased, unknown: l.unknown });
        Ok(())
    })?;
    Ok(items)
}

/// One prompt of a generation task (refusal, over-refusal): the user's message and its
/// category.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptItem {
    pub id: String,
    pub prompt: String,
    pub category: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptLine {
    id: serde_json::Value,
    prompt: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    categories: Vec<String>,
}

/// Parse a prompt set: JSONL, `{"id": "...", "prompt": "...", "category"?: "...",
/// "categories"?: [...]}`, with the same limits and errors as multiple-choice files.
pub fn parse_prompt_jsonl(name: &str, bytes: &[u8]) -> Result<Vec<PromptItem>> {
    let bad = |line: usize, msg: String| Error::Task { file: name.to_string(), line, msg };
    let mut items = Vec::new();
    for_each_line(name, bytes, |l: &PromptLine| &l.id, |ln, id, l: PromptLine| {
        if l.prompt.trim().is_empty() {
            return Err(bad(ln, "the prompt is empty".into()));
        }
        if l.categories.len() > MAX_CHOICES {
            return Err(bad(ln, format!("more than {MAX_CHOICES} categories")));
        }
        items.push(PromptItem { id, prompt: l.prompt, category: l.category });
        Ok(())
    })?;
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_question_and_names_bad_lines() {
        let ok = br#"{"id": "q1", "context": "2+2=", "choices": [" 4", " 5"], "gold": 0}
{"id": 7, "context": "", "choices": [" a", " b", " c"], "gold": 2, "group": "g"}
"#;
        let items = parse_jsonl("t.jsonl", ok).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].id, "7");
        assert_eq!(items[1].gold, 2);
        for (bad, want) in [
            (r#"{"id": "a", "context": "", "choices": [" x"], "gold": 0}"#, "1 choices"),
            (r#"{"id": "a", "context": "", "choices": [" x", " y"], "gold": 2}"#, "\"gold\""),
            (r#"{"id": "a", "context": "", "choices": [" x", " y"], "gold": -1}"#, "\"gold\""),
            (r#"{"id": "a", "context": "", "choices": [" x", ""], "gold": 0}"#, "choice 1 is empty"),
            (r#"{"id": "a", "context": "", "choices": [" x", " y"], "gold": 0, "extra": 1}"#, "unknown field"),
            (r#"{"id": "", "context": "", "choices": [" x", " y"], "gold": 0}"#, "\"id\""),
            ("not json", "t.jsonl:2"),
            (r#"{"id": "a", "context": "", "choices": [" x", " y"], "gold": 0, "biased": [2]}"#, "\"biased\" names choice 2"),
            (r#"{"id": "a", "context": "", "choices": [" x", " y"], "gold": 0, "unknown": [5]}"#, "\"unknown\" names choice 5"),
        ] {
            let text = format!("{{\"id\": \"ok\", \"context\": \"c\", \"choices\": [\" x\", \" y\"], \"gold\": 1}}\n{bad}\n");
            let e = parse_jsonl("t.jsonl", text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains("t.jsonl:2") && e.contains(want), "{bad}: {e}");
        }
        let dup = "{\"id\": 1, \"context\": \"\", \"choices\": [\" x\", \" y\"], \"gold\": 1}\n".repeat(2);
        assert!(parse_jsonl("d", dup.as_bytes()).unwrap_err().to_string().contains("appears twice"));
        assert!(parse_jsonl("e", b"\n\n").unwrap_err().to_string().contains("no questions"));
        assert!(parse_jsonl("u", b"{\"id\": \xff}").unwrap_err().to_string().contains("not UTF-8"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = parse_jsonl("p", &bytes);
        }
    }
}

/// A closed-book question with every answer that counts as right (aliases).
#[derive(Clone, Debug, PartialEq)]
pub struct QaItem {
    pub id: String,
    pub question: String,
    pub answers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QaLine {
    id: serde_json::Value,
    question: String,
    answers: Vec<String>,
}

/// Parse a closed-book QA file: JSONL, `{"id": "...", "question": "...", "answers": ["...", ...]}`,
/// with the same limits and errors as multiple-choice files.
pub fn parse_qa_jsonl(name: &str, bytes: &[u8]) -> Result<Vec<QaItem>> {
    let bad = |line: usize, msg: String| Error::Task { file: name.to_string(), line, msg };
    let mut items = Vec::new();
    for_each_line(name, bytes, |l: &QaLine| &l.id, |ln, id, l: QaLine| {
        if l.question.trim().is_empty() {
            return Err(bad(ln, "the question is empty".into()));
        }
        if l.answers.is_empty() || l.answers.len() > MAX_CHOICES || l.answers.iter().any(|a| a.trim().is_empty()) {
            return Err(bad(ln, format!("\"answers\" needs 1 to {MAX_CHOICES} non-empty answers")));
        }
        items.push(QaItem { id, question: l.question, answers: l.answers });
        Ok(())
    })?;
    Ok(items)
}

#[cfg(test)]
mod qa_tests {
    use super::*;

    #[test]
    fn qa_lines_are_checked() {
        let ok = b"{\"id\": 1, \"question\": \"Who?\", \"answers\": [\"Ada\", \"Ada Lovelace\"]}\n";
        assert_eq!(parse_qa_jsonl("q", ok).unwrap()[0].answers.len(), 2);
        for (bad, want) in [
            ("{\"id\": 1, \"question\": \"Who?\", \"answers\": []}", "answers"),
            ("{\"id\": 1, \"question\": \" \", \"answers\": [\"a\"]}", "question is empty"),
            ("{\"id\": 1, \"question\": \"Q\", \"answers\": [\" \"]}", "answers"),
            ("{\"id\": 1, \"question\": \"Q\"}", "answers"),
        ] {
            let e = parse_qa_jsonl("q.jsonl", bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains("q.jsonl:1") && e.contains(want), "{e}");
        }
    }
}
