//! Sigstore keyless signatures (model-signing's `sigstore` method), verified offline.
//!
//! The bundle's short-lived Fulcio certificate must chain to a certificate authority of the
//! trusted root, carry a valid SCT, and have been logged in a Rekor transparency log of that root
//! (inclusion proof, checkpoint and promise checked against the log's key) at a time the
//! certificate was valid; the DSSE signature must verify with the certificate's key; and the
//! certificate's identity (SAN) and OIDC issuer must equal what the caller requires. The checks
//! are the `sigstore-verify` crate's; this module only supplies the policy, the trusted root and
//! the statement's subject digest (which the caller then ties to the model's files).
//!
//! The trusted root is a `trusted_root.json` the user supplies, or the Sigstore public-good root
//! compiled into this binary. Nothing here touches the network.

use std::path::{Path, PathBuf};

use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_verify::types::{Artifact, ArtifactDigest, Bundle, Sha256Hash};
use sigstore_verify::{VerificationPolicy, verify};

use crate::signing::{Result, SignError};

/// A trusted root over this size is refused unread (the public-good one is ~8 KiB).
const MAX_TRUSTED_ROOT_BYTES: u64 = 4 << 20;

/// Who must have signed, and which roots of trust vouch for them.
#[derive(Debug, Clone, Copy)]
pub struct KeylessPolicy<'a> {
    /// The certificate's subject alternative name: an email address or a URI (workload identity).
    pub identity: &'a str,
    /// The OIDC issuer that authenticated the identity, e.g. `https://accounts.google.com`.
    pub issuer: &'a str,
    /// A Sigstore `trusted_root.json`; `None` uses the public-good root built into glassbox.
    pub trusted_root: Option<&'a Path>,
}

/// What a keyless verification established.
#[derive(Debug, Clone)]
pub struct KeylessSigner {
    pub identity: String,
    pub issuer: String,
    /// When the transparency log recorded the signature (RFC 3339), if it says.
    pub logged_at: Option<String>,
    /// Which trusted root vouched: a path or `built-in public-good root`.
    pub trusted_root: String,
}

fn load_root(path: Option<&Path>) -> Result<(TrustedRoot, String)> {
    let Some(path) = path else {
        let root = TrustedRoot::from_json(SIGSTORE_PRODUCTION_TRUSTED_ROOT)
            .map_err(|e| SignError::TrustRoot { path: PathBuf::from("<built-in>"), msg: e.to_string() })?;
        return Ok((root, "built-in Sigstore public-good root".into()));
    };
    let bad = |msg: String| SignError::TrustRoot { path: path.to_owned(), msg };
    let io = |source| SignError::Io { path: path.to_owned(), source };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_TRUSTED_ROOT_BYTES {
        return Err(bad(format!("{len} bytes is over the {MAX_TRUSTED_ROOT_BYTES}-byte limit")));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let root = TrustedRoot::from_json(&text).map_err(|e| bad(format!("not a Sigstore trusted root: {e}")))?;
    Ok((root, path.display().to_string()))
}

/// Verify the bundle `text` (from file `sig`) as a keyless signature over an in-toto statement
/// whose subject digest is `subject_sha256` (hex), under `policy`.
pub(crate) fn verify_bundle(text: &[u8], subject_sha256: &str, policy: &KeylessPolicy, sig: &Path) -> Result<KeylessSigner> {
    let fail = |msg: String| SignError::Keyless { path: sig.to_owned(), msg };
    let (root, root_name) = load_root(policy.trusted_root)?;
    let text = std::str::from_utf8(text).map_err(|_| SignError::Format { path: sig.to_owned(), msg: "not UTF-8".into() })?;
    let bundle = Bundle::from_json(text).map_err(|e| SignError::Format { path: sig.to_owned(), msg: format!("not a Sigstore bundle: {e}") })?;
    if bundle.signing_certificate().is_none() {
        return Err(fail("the bundle carries no signing certificate (was it signed with a key?)".into()));
    }
    let digest = Sha256Hash::from_hex(subject_sha256).map_err(|e| SignError::Format { path: sig.to_owned(), msg: format!("subject digest: {e}") })?;
    let rules = VerificationPolicy::any_identity().require_identity(policy.identity).require_issuer(policy.issuer);
    let r = verify(Artifact::from_digest(ArtifactDigest::sha256(digest)), &bundle, &rules, &root).map_err(|e| fail(e.to_string()))?;
    Ok(KeylessSigner {
        identity: r.identity().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        issuer: r.issuer().unwrap_or_default().to_owned(),
        logged_at: r.integrated_time().map(|t| t.to_string()),
        trusted_root: root_name,
    })
}
