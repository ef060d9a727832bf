//! The call format a chat template teaches, read from the template's text.

/// How a model writes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Qwen2.5 / Hermes: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`, one
    /// block per call.
    Hermes,
    /// Llama 3.1–3.3: a JSON object `{"name": ..., "parameters": {...}}` as the whole reply
    /// (after `<|python_tag|>` when the model writes it).
    Llama3,
    /// Mistral: `[TOOL_CALLS]` then a JSON array of `{"name": ..., "arguments": {...}}`.
    Mistral,
}

impl Format {
    /// The format `template` renders calls in, or `None` when it renders no tools.
    pub fn detect(template: &str) -> Option<Format> {
        if !template.contains("tools") {
            return None;
        }
        if template.contains("<tool_call>") {
            Some(Format::Hermes)
        } else if template.contains("[TOOL_CALLS]") {
            Some(Format::Mistral)
        } else if template.contains("<|start_header_id|>") && template.contains("\"parameters\"") {
            Some(Format::Llama3)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Hermes => "hermes",
            Format::Llama3 => "llama3",
            Format::Mistral => "mistral",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_from_the_corpus() {
        let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/templates/renders.json")).unwrap()).unwrap();
        let t = |n: &str| Format::detect(fx["templates"][n].as_str().unwrap());
        assert_eq!(t("qwen2.5-coder-gguf"), Some(Format::Hermes));
        assert_eq!(t("Qwen-Qwen2.5-7B-Instruct"), Some(Format::Hermes));
        assert_eq!(t("Qwen-Qwen3-0.6B"), Some(Format::Hermes));
        assert_eq!(t("meta-llama-Llama-3.1-8B-Instruct"), Some(Format::Llama3));
        assert_eq!(t("mistralai-Mistral-Nemo-Instruct-2407"), Some(Format::Mistral));
        assert_eq!(t("smollm2-gguf"), None);
        assert_eq!(t("google-gemma-2-2b-it"), None);
    }
}
