//! Personal data kept from the model and from clients (`serve --redact input,output`): input
//! texts are redacted before the chat template is rendered (placeholders `[EMAIL_1]` numbered
//! across the request, so the model can still refer to them), the model's output is redacted as
//! it streams (holding back only what could still complete a match), and optionally the
//! request's own placeholders are put back in its output (`--redact-restore`).

use glassbox_redact::{Entity, Mode, Redactor};

use crate::openai::{ApiError, Input, Prompt, Validated};

#[derive(Clone, Debug)]
pub struct RedactConfig {
    pub input: bool,
    pub output: bool,
    /// Put the originals of the request's own placeholders back into its output.
    pub restore: bool,
    pub entities: Vec<Entity>,
    pub mode: Mode,
    /// The operator's own terms, redacted beside the built-in types.
    pub deny: Option<std::sync::Arc<glassbox_redact::DenyList>>,
}

impl RedactConfig {
    /// Refuse what redaction cannot cover: token-array prompts (input), log-probabilities and
    /// echo (they carry token text past the output filter).
    pub fn check(&self, v: &Validated) -> Result<(), ApiError> {
        if self.input && matches!(v.input, Input::Prompt(Prompt::Tokens(_))) {
            return Err(ApiError::invalid("prompt", "this server redacts input: send the prompt as text, not token ids"));
        }
        if self.output && v.common.logprobs {
            return Err(ApiError::invalid("logprobs", "this server redacts output: log-probabilities would show the tokens it redacts"));
        }
        if (self.output || self.input) && v.common.echo {
            return Err(ApiError::invalid("echo", "this server redacts text: echo would bypass it"));
        }
        Ok(())
    }

    /// A redactor for one request, with its input redacted when configured.
    pub fn start(&self, input: &mut Input) -> Result<Redactor, ApiError> {
        let mut r = Redactor::new(self.mode.clone(), self.entities.clone());
        r.deny = self.deny.clone();
        if self.input {
            r.restorable = self.restore;
            let mut red = |param: &str, t: &mut String| -> Result<(), ApiError> {
                *t = r.redact(t).map_err(|e| ApiError::invalid(param, e.to_string()))?;
                Ok(())
            };
            match input {
                Input::Messages(m) => {
                    for msg in m.iter_mut() {
                        red("messages", &mut msg.content)?;
                    }
                }
                Input::Prompt(Prompt::Text(t)) => red("prompt", t)?,
                Input::Prompt(Prompt::Tokens(_)) => {}
            }
            r.restorable = false;
        }
        Ok(r)
    }
}
