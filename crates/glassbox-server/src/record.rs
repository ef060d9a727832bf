//! One audit-log record per request (`serve --audit-log FILE`): who asked (API key by name —
//! never the key — and client address), which model (id, SHA-256, adapter), how it ended
//! (status, finish reasons, token counts, latency) and, only with `--log-content`, the prompt
//! and completion with personal data redacted. Capacity is reserved before the request runs: a
//! log that has failed or fallen behind turns requests away with 503 instead of running them
//! unlogged. A record not finished explicitly (a dropped handler) is still written.

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::openai::ApiError;
use crate::{AppState, ModelHandle};

/// Who sent a request: set by the connection layer.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    pub addr: std::net::SocketAddr,
    /// The key's name (`key-N` for the N-th plain key; None without keys).
    pub key: Option<String>,
    /// Its index in `AppState::keys`.
    pub key_index: Option<usize>,
}

pub(crate) struct RequestRecord {
    permit: Option<glassbox_auditlog::Permit>,
    /// The key whose token budget the request's tokens come out of.
    key: Option<std::sync::Arc<crate::keys::KeyState>>,
    fields: Map<String, Value>,
    t0: Instant,
    log_content: bool,
    /// The operator's deny list (`--redact-deny-list`): its terms are kept out of logged content too.
    deny: Option<std::sync::Arc<glassbox_redact::DenyList>>,
}

impl RequestRecord {
    /// Reserve the record (503 when the log cannot take it); a no-op without `--audit-log`.
    pub fn open(st: &AppState, client: Option<&Client>, id: u64, endpoint: &str, t0: Instant) -> Result<RequestRecord, ApiError> {
        let permit = match &st.audit {
            None => None,
            Some(log) => Some(log.reserve().map_err(|e| {
                tracing::error!(error = %e, "audit log unavailable: refusing requests");
                ApiError { status: 503, message: "the audit log cannot record this request; retry later".into(), kind: "server_error", param: None, code: Some("audit_log_unavailable") }
            })?),
        };
        let mut fields = Map::new();
        fields.insert("type".into(), "request".into());
        fields.insert("request_id".into(), id.into());
        fields.insert("endpoint".into(), endpoint.into());
        fields.insert("client".into(), client.map(|c| c.addr.to_string()).into());
        fields.insert("key".into(), client.and_then(|c| c.key.clone()).into());
        let key = client.and_then(|c| c.key_index).and_then(|i| st.keys.get(i)).cloned();
        // The policies that apply to this request (what the decision below was taken under).
        let mut policy = Map::new();
        if let Some(rc) = &st.cfg.redact {
            policy.insert("redaction".into(), json!({"input": rc.input, "output": rc.output, "restore": rc.restore, "deny_list_terms": rc.deny.as_ref().map(|d| d.len()), "mode": format!("{:?}", rc.mode).split(' ').next().unwrap_or("").to_lowercase()}));
        }
        if let Some(k) = &key {
            let p = &k.policy;
            policy.insert("key".into(), json!({"models": p.models, "requests_per_minute": p.requests_per_minute, "tokens_per_minute": p.tokens_per_minute}));
        }
        if !policy.is_empty() {
            fields.insert("policy".into(), Value::Object(policy));
        }
        let deny = st.cfg.redact.as_ref().and_then(|rc| rc.deny.clone());
        Ok(RequestRecord { permit, key, fields, t0, log_content: st.cfg.log_content, deny })
    }

    pub fn enabled(&self) -> bool {
        self.permit.is_some()
    }

    /// The model the request ran on.
    pub fn model(&mut self, h: &ModelHandle) {
        if !self.enabled() {
            return;
        }
        self.fields.insert("model".into(), h.name.clone().into());
        self.fields.insert("model_sha256".into(), h.sha256.clone().into());
        let adapter = h.adapter_sha256.as_ref().map(|s| json!({"name": h.name, "parent": h.parent, "sha256": s}));
        self.fields.insert("adapter".into(), adapter.unwrap_or(Value::Null));
    }

    /// Prompt or completion text, kept only with `--log-content`, and then with every
    /// recognised piece of personal data (and deny-list term) replaced by its type (`<EMAIL_ADDRESS>`); the
    /// replacements are counted per type.
    pub fn content(&mut self, key: &str, text: &str) {
        if !self.enabled() || !self.log_content {
            return;
        }
        let (redacted, counts) = match glassbox_redact::analyze_with(text, self.deny.as_deref()) {
            Ok(f) => {
                let mut counts = Map::new();
                for x in &f {
                    let c = counts.entry(x.entity.name()).or_insert(Value::from(0u64));
                    *c = Value::from(c.as_u64().unwrap_or(0) + 1);
                }
                (glassbox_redact::redact(text, &f), counts)
            }
            // Not analysable (too long): never logged unredacted.
            Err(e) => (format!("<not logged: {e}>"), Map::new()),
        };
        let content = self.fields.entry("content").or_insert_with(|| json!({}));
        content[key] = redacted.into();
        let all = self.fields.entry("content_redactions").or_insert_with(|| json!({}));
        for (k, v) in counts {
            let n = all.get(&k).and_then(Value::as_u64).unwrap_or(0) + v.as_u64().unwrap_or(0);
            all[k] = n.into();
        }
    }

    /// Write the record with the outcome.
    pub fn finish(mut self, status: u16, outcome: Value) {
        self.write(status, outcome);
    }

    fn write(&mut self, status: u16, outcome: Value) {
        if let Some(k) = self.key.take() {
            let n = |f: &str| outcome.get(f).and_then(Value::as_u64).unwrap_or(0);
            k.spend(n("prompt_tokens") + n("completion_tokens"));
        }
        let Some(permit) = self.permit.take() else { return };
        let mut f = std::mem::take(&mut self.fields);
        f.insert("status".into(), status.into());
        let decision = match status {
            200..=299 => "served",
            403 => "denied",
            429 => "rate_limited",
            499 => "client_gone",
            400..=498 => "rejected",
            500.. => "failed",
            _ => "abandoned",
        };
        f.insert("decision".into(), decision.into());
        if let Value::Object(o) = outcome {
            f.extend(o);
        }
        f.insert("latency_ms".into(), (self.t0.elapsed().as_millis() as u64).into());
        permit.write(Value::Object(f));
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        if self.permit.is_some() || self.key.is_some() {
            self.write(0, json!({"outcome": "abandoned (the handler ended without an outcome)"}));
        }
    }
}
