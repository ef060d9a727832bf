//! Many generations at once through the continuous-batching scheduler, for callers that have a
//! whole prompt set (evaluations): same tokens as [`Engine::generate`] one by one (a row's
//! logits depend on that row alone), far fewer passes over the weights.

use std::sync::{Arc, Mutex};

use crate::engine::{FinishReason, GenerateRequest, Generation};
use crate::scheduler::{EventSink, SchedRequest, SeqEvent};
use crate::{Engine, Error, Result};

#[derive(Default)]
struct Slot {
    text: String,
    ids: Vec<u32>,
    done: Option<(FinishReason, usize, usize)>,
    error: Option<String>,
}

struct Collect(Arc<Mutex<Slot>>);

impl EventSink for Collect {
    fn send(&mut self, ev: SeqEvent) -> bool {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match ev {
            SeqEvent::Token { token, text, .. } => {
                s.ids.push(token);
                s.text.push_str(&text);
            }
            SeqEvent::Text(t) => s.text.push_str(&t),
            SeqEvent::Done { finish_reason, prompt_tokens, completion_tokens, .. } => s.done = Some((finish_reason, prompt_tokens, completion_tokens)),
            SeqEvent::Error(e) => s.error = Some(e),
            SeqEvent::PromptLogprobs(_) => {}
        }
        true
    }
    fn is_closed(&self) -> bool {
        false
    }
}

impl Engine {
    /// Generate for every request, up to `parallel` sequences at a time (1 = one after the
    /// other); results in request order. `progress(done, total)` after each step that
    /// finished one. The first request that fails fails the call, naming it.
    pub fn generate_many(&mut self, reqs: &[GenerateRequest], parallel: usize, mut progress: impl FnMut(usize, usize)) -> Result<Vec<Generation>> {
        let chunk = self.batch_size;
        let slots: Vec<Arc<Mutex<Slot>>> = reqs.iter().map(|_| Arc::new(Mutex::new(Slot::default()))).collect();
        {
            let mut sched = self.scheduler(parallel.max(1), chunk);
            for (r, slot) in reqs.iter().zip(&slots) {
                sched.submit(SchedRequest { request: r.clone(), top_logprobs: None, prompt_logprobs: None, sink: Box::new(Collect(Arc::clone(slot))), adapter: None });
            }
            let mut finished = 0;
            while sched.step() {
                let now = slots.iter().filter(|s| s.lock().map(|s| s.done.is_some() || s.error.is_some()).unwrap_or(true)).count();
                if now != finished {
                    finished = now;
                    progress(finished, reqs.len());
                }
            }
        }
        slots
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let s = s.lock().map_err(|_| Error::Other(format!("request {i}: lost")))?;
                if let Some(e) = &s.error {
                    return Err(Error::Other(format!("request {i}: {e}")));
                }
                let (finish_reason, prompt_tokens, completion_tokens) = s.done.ok_or_else(|| Error::Other(format!("request {i}: never finished")))?;
                Ok(Generation { text: s.text.clone(), ids: s.ids.clone(), prompt_tokens, completion_tokens, finish_reason, constraint_s: None })
            })
            .collect()
    }
}
