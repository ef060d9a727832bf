//! A sequence's output held to a grammar: the sampled token is checked first and kept when the
//! grammar allows it; otherwise the disallowed tokens are masked and the draw repeated (llama.cpp's
//! order, which leaves greedy decoding exactly the masked argmax). With a trigger the output is
//! free until the trigger text appears, then each grammar sentence after it is enforced and the
//! trigger re-arms (tool calls in otherwise free text).

use std::sync::Arc;

use glassbox_constrain::{Grammar, Matcher, VocabIndex};
use glassbox_tokenizer::Tokenizer;

use crate::Result;

#[derive(Clone)]
pub struct Constraint {
    pub grammar: Arc<Grammar>,
    pub vocab: Arc<VocabIndex>,
    /// Free output until it ends with this text; then the grammar holds until its sentence ends.
    pub trigger: Option<String>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").field("rules", &self.grammar.n_rules()).field("trigger", &self.trigger).finish()
    }
}

/// The model's tokens as bytes for masks: control tokens are never produced under a grammar;
/// end-of-generation tokens are allowed where the grammar's text is complete.
pub fn vocab_index(tok: &Tokenizer) -> VocabIndex {
    let tokens: Vec<Option<Vec<u8>>> = (0..tok.n_vocab() as u32).map(|i| tok.token_bytes(i, false).ok().filter(|b| !b.is_empty())).collect();
    VocabIndex::new(&tokens, tok.eog_tokens())
}

pub(crate) struct Active {
    spec: Constraint,
    matcher: Option<Matcher>,
    tail: Vec<u8>,
}

impl Active {
    pub(crate) fn new(spec: Constraint) -> Result<Active> {
        let matcher = if spec.trigger.is_none() { Some(Matcher::new(spec.grammar.clone(), spec.vocab.clone())?) } else { None };
        Ok(Active { spec, matcher, tail: Vec::new() })
    }

    /// The matcher, while the grammar holds.
    pub(crate) fn armed(&mut self) -> Option<&mut Matcher> {
        self.matcher.as_mut()
    }

    /// Take the chosen (non end-of-generation) token; `true` when the output must end here.
    pub(crate) fn after(&mut self, tok: u32) -> Result<bool> {
        if let Some(m) = &mut self.matcher {
            m.advance(tok)?;
            if m.is_done() {
                if self.spec.trigger.is_some() {
                    self.matcher = None;
                    self.tail.clear();
                    return Ok(false);
                }
                return Ok(true);
            }
            return Ok(false);
        }
        let Some(trigger) = self.spec.trigger.as_deref() else { return Ok(false) };
        let t = trigger.as_bytes();
        self.tail.extend_from_slice(self.spec.vocab.token_bytes(tok));
        if let Some(pos) = self.tail.windows(t.len()).position(|w| w == t) {
            // The trigger, and whatever of the same token follows it, must start a sentence of
            // the grammar ("<tool_call>" then "\n"); a token that merely contains the trigger's
            // text (" the" in " there") does not arm it.
            let mut m = Matcher::new(self.spec.grammar.clone(), self.spec.vocab.clone())?;
            if m.advance_bytes(&self.tail[pos + t.len()..]).is_ok() {
                self.matcher = Some(m);
                self.tail.clear();
                return Ok(false);
            }
        }
        // Keep only what could still be the start of the trigger.
        let keep = self.tail.len().saturating_sub(t.len().saturating_sub(1));
        self.tail.drain(..keep);
        Ok(false)
    }
}
