//! The policy gate: an organisation's rules (`policy.toml`) applied to an audit. Every rule
//! that applies yields a pass or a fail with its reason; the model passes when nothing fails.
//!
//! ```toml
//! [licenses]
//! allow = ["Apache-2.0", "MIT", "family:gemma"]   # ids or family:NAME; empty = any
//! deny  = ["family:llama"]                        # checked first
//! require_text = true        # a licence text must ship with the model (metadata labels alone fail)
//! allow_unknown = false      # an unidentified licence fails
//!
//! [use]
//! commercial = true                  # we use models commercially
//! monthly_active_users = 2_000_000   # compared with licences' user caps
//! train_other_models = false         # we train other models on outputs
//! distribute = false                 # we redistribute the model or derivatives
//!
//! [openness]
//! allow_pseudo_open = true   # false: open-weight-but-restricted licences fail
//! min_class = "III"          # "none" (default), "III", "II" or "I"
//!
//! [integrity]
//! require_lock = "glassbox.lock"                      # every weights file pinned there, and matching
//! require_signature = { signature = "model.sig", public_key = "vendor.pub.pem" }
//! # or { signature = …, certificate_chain = "ca.pem" } or { signature = …, identity = …, issuer = … }
//!
//! [require_eval]             # see policy_eval.rs
//! compare = "derived-vs-base.json"   # `glassbox eval compare --json` for this model's weights
//! max_refusal_drop = 10              # percentage points
//! ```
//! Relative paths are relative to the policy file.

use std::path::{Path, PathBuf};

use glassbox_license::{Topic, Verdict};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::assess::Assessment;
use crate::evidence::Evidence;
use crate::openness::Openness;

const MAX_POLICY_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub licenses: Licenses,
    #[serde(default, rename = "use")]
    pub usage: Usage,
    #[serde(default)]
    pub openness: OpennessRules,
    #[serde(default)]
    pub integrity: Integrity,
    /// Behaviour measured against the base model (`policy_eval.rs`).
    #[serde(default)]
    pub require_eval: Option<crate::policy_eval::RequireEval>,
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licenses {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub require_text: bool,
    #[serde(default)]
    pub allow_unknown: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    pub commercial: Option<bool>,
    pub monthly_active_users: Option<u64>,
    pub train_other_models: Option<bool>,
    pub distribute: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpennessRules {
    #[serde(default = "yes")]
    pub allow_pseudo_open: bool,
    #[serde(default)]
    pub min_class: Option<String>,
}

impl Default for OpennessRules {
    fn default() -> Self {
        OpennessRules { allow_pseudo_open: true, min_class: None }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integrity {
    pub require_lock: Option<PathBuf>,
    pub require_signature: Option<SignatureRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureRule {
    pub signature: PathBuf,
    pub public_key: Option<PathBuf>,
    pub certificate_chain: Option<PathBuf>,
    pub identity: Option<String>,
    pub issuer: Option<String>,
    pub trusted_root: Option<PathBuf>,
}

/// One rule's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub rule: String,
    pub pass: bool,
    pub reason: String,
}

impl Policy {
    /// Read and validate a policy file.
    pub fn load(path: &Path) -> Result<Policy, Error> {
        let bad = |msg: String| Error::Policy { path: path.to_owned(), msg };
        let len = std::fs::metadata(path).map_err(|source| Error::Io { path: path.to_owned(), source })?.len();
        if len > MAX_POLICY_BYTES {
            return Err(bad(format!("{len} bytes is over the {MAX_POLICY_BYTES}-byte limit")));
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let mut p: Policy = toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?;
        if let Some(c) = &p.openness.min_class
            && !["none", "III", "II", "I"].contains(&c.as_str()) {
                return Err(bad(format!("openness.min_class must be \"none\", \"III\", \"II\" or \"I\", not {c:?}")));
            }
        if let Some(s) = &p.integrity.require_signature {
            let n = usize::from(s.public_key.is_some()) + usize::from(s.certificate_chain.is_some()) + usize::from(s.identity.is_some());
            if n != 1 || s.identity.is_some() != s.issuer.is_some() {
                return Err(bad("integrity.require_signature needs exactly one of public_key, certificate_chain, or identity with issuer".into()));
            }
        }
        if let Some(r) = &p.require_eval {
            r.validate().map_err(bad)?;
        }
        for id in p.licenses.allow.iter().chain(&p.licenses.deny) {
            if id.trim().is_empty() {
                return Err(bad("licenses.allow/deny entries must not be empty".into()));
            }
        }
        p.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(p)
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_owned() } else { self.dir.join(p) }
    }

    /// Apply the policy. Every applicable rule appears in the result.
    pub fn check(&self, ev: &Evidence, a: &Assessment, o: &Openness) -> Vec<Check> {
        let mut out = vec![];
        let mut push = |rule: &str, pass: bool, reason: String| out.push(Check { rule: rule.to_owned(), pass, reason });
        let matches = |pat: &str, g: &crate::assess::Governing| match pat.strip_prefix("family:") {
            Some(fam) => g.entry().is_some_and(|e| e.family.eq_ignore_ascii_case(fam)),
            None => g.id.eq_ignore_ascii_case(pat) || g.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(pat)),
        };
        for g in &a.governing {
            if let Some(d) = self.licenses.deny.iter().find(|d| matches(d, g)) {
                push("licenses.deny", false, format!("{} ({}) is denied by {d:?}", g.name, g.id));
            } else if !self.licenses.allow.is_empty() {
                match self.licenses.allow.iter().find(|p| matches(p, g)) {
                    Some(p) => push("licenses.allow", true, format!("{} ({}) is allowed by {p:?}", g.name, g.id)),
                    None => push("licenses.allow", false, format!("{} ({}) is not in the allow list", g.name, g.id)),
                }
            }
            if g.id == "unknown" && g.key.is_none() && !self.licenses.allow_unknown {
                push("licenses.allow_unknown", false, format!("licence from {} is not identified", g.sources.join(", ")));
            }
        }
        if a.governing.is_empty() {
            push("licenses", false, "no licence found: no rights are granted".into());
        }
        for f in a.findings.iter().filter(|f| f.code == "licence-conflict" || f.code == "base-licence-not-carried") {
            push("licenses.conflicts", false, f.message.clone());
        }
        if self.licenses.require_text {
            let texts = a.governing.iter().filter(|g| g.basis == "text").count();
            push("licenses.require_text", texts > 0, if texts > 0 { "a licence text ships with the model".into() } else { "only metadata labels name the licence; no licence text ships with the model".into() });
        }
        // Use: judged on every governing licence's clause table.
        let clause_rule = |rule: &str, wanted: Option<bool>, topic: Topic, out: &mut Vec<Check>| {
            if wanted != Some(true) {
                return;
            }
            for g in &a.governing {
                let Some(e) = g.entry() else {
                    out.push(Check { rule: rule.into(), pass: false, reason: format!("{}: no clause table for {}, cannot confirm", topic.title(), g.name) });
                    continue;
                };
                match e.clause(topic) {
                    Some(c) if c.verdict == Verdict::Forbidden => out.push(Check { rule: rule.into(), pass: false, reason: format!("{} forbids it: {} — \"{}\"", e.name, c.summary, c.quote) }),
                    Some(c) if c.verdict == Verdict::Conditional => out.push(Check { rule: rule.into(), pass: true, reason: format!("{} allows it with conditions: {}", e.name, c.summary) }),
                    Some(c) => out.push(Check { rule: rule.into(), pass: true, reason: format!("{}: {}", e.name, c.summary) }),
                    None => out.push(Check { rule: rule.into(), pass: true, reason: format!("{}: not addressed", e.name) }),
                }
            }
        };
        clause_rule("use.commercial", self.usage.commercial, Topic::CommercialUse, &mut out);
        clause_rule("use.train_other_models", self.usage.train_other_models, Topic::TrainOtherModels, &mut out);
        clause_rule("use.distribute", self.usage.distribute, Topic::Distribution, &mut out);
        if let Some(mau) = self.usage.monthly_active_users {
            for e in a.governing.iter().filter_map(|g| g.entry()) {
                if let Some(cap) = e.clause(Topic::UserThreshold).and_then(|c| c.max_users) {
                    let pass = mau <= cap;
                    out.push(Check { rule: "use.monthly_active_users".into(), pass, reason: format!("{mau} monthly active users {} the {} cap of {cap}", if pass { "is within" } else { "exceeds" }, e.name) });
                }
            }
        }
        if !self.openness.allow_pseudo_open {
            out.push(Check { rule: "openness.allow_pseudo_open".into(), pass: !o.pseudo_open, reason: o.verdict.clone() });
        }
        if let Some(min) = self.openness.min_class.as_deref().filter(|c| *c != "none") {
            let need = match min { "I" => 1, "II" => 2, _ => 3 };
            let pass = o.class.is_some_and(|c| c <= need);
            out.push(Check { rule: "openness.min_class".into(), pass, reason: format!("required MOF Class {min}; {}", o.verdict) });
        }
        if let Some(lock) = &self.integrity.require_lock {
            out.push(self.lock_check(&self.path(lock), ev));
        }
        if let Some(sig) = &self.integrity.require_signature {
            out.push(self.signature_check(sig, ev));
        }
        if let Some(r) = &self.require_eval {
            out.extend(r.check(&self.path(&r.compare), ev));
        }
        out
    }

    fn lock_check(&self, lock: &Path, ev: &Evidence) -> Check {
        let rule = "integrity.require_lock".to_owned();
        let lf = match glassbox_trust::Lockfile::load(lock) {
            Ok(l) => l,
            Err(e) => return Check { rule, pass: false, reason: e.to_string() },
        };
        for w in &ev.weights {
            let canon = std::fs::canonicalize(&w.path).unwrap_or_else(|_| w.path.clone());
            match lf.pin_for(&canon) {
                None => return Check { rule, pass: false, reason: format!("{} is not pinned in {}", w.path.display(), lock.display()) },
                Some(pin) if !pin.sha256.eq_ignore_ascii_case(&w.sha256) => {
                    return Check { rule, pass: false, reason: format!("{}: sha256 {} does not match the pin {} in {}", w.path.display(), w.sha256, pin.sha256, lock.display()) };
                }
                Some(_) => {}
            }
        }
        Check { rule, pass: true, reason: format!("{} weights file(s) match their pins in {}", ev.weights.len(), lock.display()) }
    }

    fn signature_check(&self, s: &SignatureRule, ev: &Evidence) -> Check {
        use glassbox_trust::signing::{PublicKey, Signer, verify_with};
        let rule = "integrity.require_signature".to_owned();
        let sig = self.path(&s.signature);
        let result = if let Some(k) = &s.public_key {
            let k = self.path(k);
            PublicKey::from_pem_file(&k).and_then(|pk| verify_with(&ev.root, &sig, Signer::Key(&pk, &k), &[]))
        } else if let Some(c) = &s.certificate_chain {
            verify_with(&ev.root, &sig, Signer::Anchors(&self.path(c)), &[])
        } else {
            let root = s.trusted_root.as_ref().map(|p| self.path(p));
            let policy = glassbox_trust::sigstore::KeylessPolicy { identity: s.identity.as_deref().unwrap_or_default(), issuer: s.issuer.as_deref().unwrap_or_default(), trusted_root: root.as_deref() };
            verify_with(&ev.root, &sig, Signer::Keyless(policy), &[])
        };
        match result {
            Ok(r) => Check { rule, pass: true, reason: format!("signature {} verifies ({} files)", sig.display(), r.files) },
            Err(e) => Check { rule, pass: false, reason: e.to_string() },
        }
    }
}
