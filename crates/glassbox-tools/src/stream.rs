//! Calls found as text streams in: content goes out as soon as it cannot be the start of a
//! call; a call goes out once it is complete (name and arguments in one delta, as OpenAI sends
//! the first delta of a call followed by argument fragments — here a single fragment).

use crate::format::Format;
use crate::parse::{block_calls, closer, next_open, whole_reply, Call, FENCE, HERMES_OPEN};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    Content(String),
    Call(Call),
}

pub struct CallStream {
    format: Format,
    names: Vec<String>,
    buf: String,
    /// The opening tag of the block being read (`<tool_call>` or a code fence).
    in_call: Option<&'static str>,
    /// Llama 3 / Mistral: the reply started like a call, so all of it is held to the end.
    holding: bool,
    started: bool,
    /// Every reply is calls (`required`, a named function).
    forced: bool,
    pub calls: usize,
}

/// The longest suffix of `s` that is a proper prefix of `tag`.
fn partial_tag(s: &str, tag: &str) -> usize {
    (1..tag.len().min(s.len() + 1)).rev().find(|&n| s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..])).unwrap_or(0)
}

impl CallStream {
    pub fn new(format: Format, names: &[&str], forced: bool) -> CallStream {
        CallStream { format, names: names.iter().map(|s| s.to_string()).collect(), buf: String::new(), in_call: None, holding: forced, started: false, forced, calls: 0 }
    }

    fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    fn call(&mut self, c: Call, out: &mut Vec<Delta>) {
        self.calls += 1;
        out.push(Delta::Call(c));
    }

    pub fn push(&mut self, text: &str) -> Vec<Delta> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        match self.format {
            Format::Hermes if !self.started && !self.buf.trim().is_empty() && self.buf.trim_start().starts_with('{') => {
                // A reply that starts as a bare JSON object may be a call: held to the end.
                self.started = true;
                self.holding = true;
            }
            Format::Hermes if self.holding && !self.forced => {}
            Format::Hermes => loop {
                if !self.buf.trim().is_empty() {
                    self.started = true;
                }
                if let Some(open) = self.in_call {
                    let close = closer(open);
                    let Some(j) = self.buf.find(close) else { break };
                    let body = self.buf[..j].to_owned();
                    self.buf.drain(..j + close.len());
                    self.in_call = None;
                    match block_calls(open, &body, &self.names()) {
                        Some(cs) => cs.into_iter().for_each(|c| self.call(c, &mut out)),
                        None => out.push(Delta::Content(format!("{open}{body}{close}"))),
                    }
                } else if let Some((i, open)) = next_open(&self.buf) {
                    let before: String = self.buf.drain(..i + open.len()).take(i).collect();
                    if !before.trim().is_empty() {
                        out.push(Delta::Content(before));
                    }
                    self.in_call = Some(open);
                } else {
                    let keep = partial_tag(&self.buf, HERMES_OPEN).max(partial_tag(&self.buf, FENCE));
                    let ready = self.buf.len() - keep;
                    // Whitespace waits: it may only separate calls.
                    if ready > 0 && !self.buf[..ready].trim().is_empty() {
                        out.push(Delta::Content(self.buf.drain(..ready).collect()));
                    }
                    break;
                }
            },
            Format::Llama3 | Format::Mistral => {
                if !self.started && !self.buf.trim().is_empty() {
                    self.started = true;
                    let t = self.buf.trim_start();
                    self.holding |= t.starts_with('{') || t.starts_with('[') || t.starts_with(crate::parse::PYTHON_TAG);
                }
                if self.started && !self.holding {
                    out.push(Delta::Content(std::mem::take(&mut self.buf)));
                }
            }
        }
        out
    }

    /// The end of the reply: whatever was held, as calls or as content.
    pub fn finish(&mut self) -> Vec<Delta> {
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.buf);
        match self.format {
            Format::Hermes if self.holding && !self.forced => {
                let p = crate::parse::parse_output(Format::Hermes, &rest, &self.names());
                if let Some(c) = p.content {
                    out.push(Delta::Content(c));
                }
                p.calls.into_iter().for_each(|c| self.call(c, &mut out));
            }
            Format::Hermes => {
                if let Some(open) = self.in_call {
                    match block_calls(open, &rest, &self.names()) {
                        Some(cs) => cs.into_iter().for_each(|c| self.call(c, &mut out)),
                        None => out.push(Delta::Content(format!("{open}{rest}"))),
                    }
                } else if !rest.trim().is_empty() || (self.calls == 0 && !rest.is_empty() && !self.forced) {
                    out.push(Delta::Content(rest));
                }
            }
            Format::Llama3 | Format::Mistral => match whole_reply(self.format, &rest, &self.names()) {
                Some(calls) => calls.into_iter().for_each(|c| self.call(c, &mut out)),
                None if !rest.is_empty() => out.push(Delta::Content(rest)),
                None => {}
            },
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_output;

    fn run(format: Format, pieces: &[&str]) -> Vec<Delta> {
        let mut s = CallStream::new(format, &["get_weather", "time"], false);
        let mut out: Vec<Delta> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn hermes_split_anywhere_matches_whole_parse() {
        let text = "Sure <b>.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"time\", \"arguments\": {}}\n</tool_call>";
        let whole = parse_output(Format::Hermes, text, &["get_weather", "time"]);
        for a in 0..text.len() {
            for b in [a, (a + 7).min(text.len())] {
                if !text.is_char_boundary(a) || !text.is_char_boundary(b) {
                    continue;
                }
                let d = run(Format::Hermes, &[&text[..a], &text[a..b], &text[b..]]);
                let calls: Vec<&Call> = d.iter().filter_map(|d| if let Delta::Call(c) = d { Some(c) } else { None }).collect();
                let content: String = d.iter().filter_map(|d| if let Delta::Content(c) = d { Some(c.as_str()) } else { None }).collect();
                assert_eq!(calls.len(), 2, "split {a} {b}");
                assert_eq!(*calls[0], whole.calls[0]);
                assert_eq!(content.trim(), whole.content.as_deref().unwrap_or(""), "split {a} {b}");
                assert!(!content.contains('<') || content.contains("<b>"), "a tag leaked: {content:?}");
            }
        }
    }

    #[test]
    fn fenced_and_bare_calls_stream_like_whole_parses() {
        let names = ["get_weather", "time"];
        for text in ["Calling:\n```json\n{\"name\": \"time\", \"arguments\": {}}\n```", "{\"name\": \"time\", \"arguments\": {}}", "```python\nprint(1)\n``` done", "{\"a\": 1}"] {
            let whole = parse_output(Format::Hermes, text, &names);
            for cut in (0..=text.len()).filter(|&c| text.is_char_boundary(c)) {
                let d = run(Format::Hermes, &[&text[..cut], &text[cut..]]);
                let calls: Vec<Call> = d.iter().filter_map(|d| if let Delta::Call(c) = d { Some(c.clone()) } else { None }).collect();
                let content: String = d.iter().filter_map(|d| if let Delta::Content(c) = d { Some(c.as_str()) } else { None }).collect();
                assert_eq!(calls, whole.calls, "{text} cut at {cut}");
                assert_eq!(content.trim(), whole.content.as_deref().unwrap_or("").trim(), "{text} cut at {cut}");
            }
        }
    }

    #[test]
    fn plain_text_streams_at_once() {
        let mut s = CallStream::new(Format::Hermes, &["time"], false);
        assert_eq!(s.push("Hello wor"), vec![Delta::Content("Hello wor".into())]);
        assert_eq!(s.push("ld <tool"), vec![Delta::Content("ld ".into())]);
        assert_eq!(s.push("box>"), vec![Delta::Content("<toolbox>".into())]);
        let mut s = CallStream::new(Format::Llama3, &["time"], false);
        assert_eq!(s.push("The time"), vec![Delta::Content("The time".into())]);
        assert_eq!(run(Format::Llama3, &["{\"name\": \"time\", ", "\"parameters\": {}}"]), vec![Delta::Call(Call { name: "time".into(), arguments: "{}".into() })]);
        assert_eq!(run(Format::Llama3, &["{\"x\": 1}"]), vec![Delta::Content("{\"x\": 1}".into())]);
    }
}
