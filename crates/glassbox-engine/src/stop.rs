//! Stop strings over streamed text: text that could still become a stop string is held back,
//! so a caller never sees a partial stop string, and the stop string itself is never emitted.

pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

pub enum StopEvent {
    /// Text safe to emit now.
    Emit(String),
    /// A stop string matched: emit this text, then stop.
    Stop(String),
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> StopMatcher {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), pending: String::new() }
    }

    pub fn push(&mut self, text: &str) -> StopEvent {
        self.pending.push_str(text);
        // Earliest complete stop string.
        if let Some(pos) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..pos].to_owned();
            self.pending.clear();
            return StopEvent::Stop(out);
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let mut hold = 0;
        for s in &self.stops {
            for (i, _) in self.pending.char_indices() {
                let suffix = &self.pending[i..];
                if suffix.len() < s.len() && s.starts_with(suffix) {
                    hold = hold.max(suffix.len());
                    break;
                }
            }
        }
        let cut = self.pending.len() - hold;
        let out = self.pending[..cut].to_owned();
        self.pending.drain(..cut);
        StopEvent::Emit(out)
    }

    /// End of generation: whatever was held back is real text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}
