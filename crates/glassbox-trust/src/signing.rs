//! OpenSSF model-signing v1.0 (key method): a Sigstore bundle (v0.3 JSON) holding a DSSE
//! envelope whose payload is an in-toto statement with predicate
//! `https://model_signing/signature/v1.0`; the signature is ECDSA (P-256/SHA-256,
//! P-384/SHA-384, P-521/SHA-512, DER) over the DSSE pre-authentication encoding.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::manifest::{HashType, Method, Resource, list_files, resources, subject_digest};

pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const MAX_BUNDLE_BYTES: u64 = 64 << 20;
const DEFAULT_IGNORE: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("signature {path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("key {path}: {msg}")]
    Key { path: PathBuf, msg: String },
    #[error("signature {path} does not verify with key {key}: the signature or its payload was modified, or it was made with another key")]
    BadSignature { path: PathBuf, key: PathBuf },
    #[error("signature {path} fails keyless (sigstore) verification: {msg}")]
    Keyless { path: PathBuf, msg: String },
    #[error("trusted root {path}: {msg}")]
    TrustRoot { path: PathBuf, msg: String },
    #[error("model {model} does not match signature {sig}: {problems}")]
    Mismatch { model: PathBuf, sig: PathBuf, problems: String },
}

pub type Result<T, E = SignError> = std::result::Result<T, E>;

fn pae(payload: &[u8]) -> Vec<u8> {
    let mut v = format!("DSSEv1 {} {} {} ", PAYLOAD_TYPE.len(), PAYLOAD_TYPE, payload.len()).into_bytes();
    v.extend_from_slice(payload);
    v
}

/// A public key for verification, with the PEM text its hint is computed over.
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

impl PublicKey {
    pub fn from_pem_file(path: &Path) -> Result<PublicKey> {
        use p256::pkcs8::DecodePublicKey;
        let pem = std::fs::read_to_string(path).map_err(|source| SignError::Io { path: path.to_owned(), source })?;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(&pem) {
            return Ok(PublicKey::P384(k));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_pem(&pem) {
            let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(&k.to_sec1_bytes()).map_err(|e| SignError::Key { path: path.to_owned(), msg: e.to_string() })?;
            return Ok(PublicKey::P521(vk));
        }
        Err(SignError::Key { path: path.to_owned(), msg: "not a PEM public key on NIST P-256, P-384 or P-521 (the curves model-signing accepts)".into() })
    }

    fn verify(&self, msg: &[u8], der: &[u8]) -> bool {
        use ecdsa::signature::Verifier;
        match self {
            PublicKey::P256(k) => p256::ecdsa::Signature::from_der(der).is_ok_and(|s| k.verify(msg, &s).is_ok()),
            PublicKey::P384(k) => p384::ecdsa::Signature::from_der(der).is_ok_and(|s| k.verify(msg, &s).is_ok()),
            PublicKey::P521(k) => p521::ecdsa::Signature::from_der(der).is_ok_and(|s| k.verify(msg, &s).is_ok()),
        }
    }
}

/// What a valid signature says about the model.
#[derive(Debug)]
pub struct SignatureReport {
    /// Who signed, for keyless signatures (checked against the caller's policy).
    pub keyless: Option<crate::sigstore::KeylessSigner>,
    pub subject_name: String,
    pub subject_sha256: String,
    pub method: String,
    pub hash_type: String,
    pub files: usize,
}

fn field<'a>(v: &'a Value, path: &[&str], sig: &Path) -> Result<&'a Value> {
    let mut cur = v;
    for k in path {
        cur = cur.get(*k).ok_or_else(|| SignError::Format { path: sig.to_owned(), msg: format!("missing field {}", path.join(".")) })?;
    }
    Ok(cur)
}

fn string<'a>(v: &'a Value, path: &[&str], sig: &Path) -> Result<&'a str> {
    field(v, path, sig)?.as_str().ok_or_else(|| SignError::Format { path: sig.to_owned(), msg: format!("field {} is not a string", path.join(".")) })
}

fn canonical(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|source| SignError::Io { path: p.to_owned(), source })
}

/// How the signer is identified.
pub enum Signer<'a> {
    /// A public key (key method).
    Key(&'a PublicKey, &'a Path),
    /// Trust anchors (PEM certificates) for the bundle's certificate chain (certificate method).
    Anchors(&'a Path),
    /// A Sigstore keyless signer: identity, OIDC issuer and trusted root (sigstore method).
    Keyless(crate::sigstore::KeylessPolicy<'a>),
}

/// A bundle's parts, decoded (nothing verified yet).
#[derive(Debug)]
pub struct ParsedBundle {
    pub payload: Vec<u8>,
    /// DER ECDSA signatures.
    pub signatures: Vec<Vec<u8>>,
    /// DER certificates (leaf first), empty for the key method.
    pub chain: Vec<Vec<u8>>,
}

/// Parse a Sigstore bundle (v0.1–v0.3 JSON) holding a DSSE envelope: every field is checked,
/// nothing is trusted. `sig` names the file in errors.
pub fn parse_bundle(text: &[u8], sig: &Path) -> Result<ParsedBundle> {
    let fmt = |msg: String| SignError::Format { path: sig.to_owned(), msg };
    if text.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(fmt(format!("{} bytes is over the {MAX_BUNDLE_BYTES}-byte limit", text.len())));
    }
    let bundle: Value = serde_json::from_slice(text).map_err(|e| fmt(format!("not JSON: {e}")))?;
    let env = field(&bundle, &["dsseEnvelope"], sig)?;
    if string(env, &["payloadType"], sig)? != PAYLOAD_TYPE {
        return Err(fmt(format!("payloadType is not {PAYLOAD_TYPE}")));
    }
    let payload = B64.decode(string(env, &["payload"], sig)?).map_err(|e| fmt(format!("payload is not base64: {e}")))?;
    let sigs = field(env, &["signatures"], sig)?.as_array().ok_or_else(|| fmt("signatures is not a list".into()))?;
    if sigs.is_empty() {
        return Err(fmt("the envelope carries no signature".into()));
    }
    let signatures = sigs
        .iter()
        .map(|s| B64.decode(string(s, &["sig"], sig)?).map_err(|e| fmt(format!("signature is not base64: {e}"))))
        .collect::<Result<_>>()?;
    let chain = match bundle.pointer("/verificationMaterial/x509CertificateChain/certificates") {
        None => vec![],
        Some(Value::Array(certs)) => certs
            .iter()
            .map(|c| c.get("rawBytes").and_then(Value::as_str).and_then(|b| B64.decode(b).ok()).ok_or_else(|| fmt("certificate rawBytes is not base64".into())))
            .collect::<Result<_>>()?,
        Some(_) => return Err(fmt("x509CertificateChain.certificates is not a list".into())),
    };
    Ok(ParsedBundle { payload, signatures, chain })
}

/// Verify `model` (folder or file) against the bundle at `sig` with `key`.
pub fn verify(model: &Path, sig: &Path, key: &PublicKey, key_path: &Path) -> Result<SignatureReport> {
    verify_with(model, sig, Signer::Key(key, key_path), &[])
}

/// Verify `model` against the bundle at `sig`, with a key or with certificate trust anchors.
/// `extra_ignore` adds paths (relative to the model) to those the statement ignores, for
/// signatures whose format did not record them (model-signing before v1.1).
pub fn verify_with(model: &Path, sig: &Path, signer: Signer, extra_ignore: &[String]) -> Result<SignatureReport> {
    let fmt = |msg: String| SignError::Format { path: sig.to_owned(), msg };
    let len = std::fs::metadata(sig).map_err(|source| SignError::Io { path: sig.to_owned(), source })?.len();
    if len > MAX_BUNDLE_BYTES {
        return Err(fmt(format!("{len} bytes is over the {MAX_BUNDLE_BYTES}-byte limit")));
    }
    let text = std::fs::read(sig).map_err(|source| SignError::Io { path: sig.to_owned(), source })?;
    let parsed = parse_bundle(&text, sig)?;
    let msg = pae(&parsed.payload);
    let payload = parsed.payload;
    let parse_payload = || serde_json::from_slice::<Value>(&payload).map_err(|e| fmt(format!("payload is not JSON: {e}")));
    let chain_key;
    let mut keyless = None;
    let checked_key: Option<(&PublicKey, &Path)> = match signer {
        Signer::Key(k, p) => Some((k, p)),
        Signer::Anchors(anchors) => {
            if parsed.chain.is_empty() {
                return Err(fmt("the bundle carries no x509CertificateChain (was it signed with a key?)".into()));
            }
            chain_key = crate::certs::validate_chain(&parsed.chain, anchors, sig)?;
            Some((&chain_key, anchors))
        }
        Signer::Keyless(policy) => {
            // Bind the signature to the subject digest the statement names; the statement's
            // resources are tied to that digest, and the model's files to them, below.
            let st = parse_payload()?;
            let claimed = st.pointer("/subject/0/digest/sha256").and_then(Value::as_str).ok_or_else(|| fmt("statement has no subject sha256 digest".into()))?;
            keyless = Some(crate::sigstore::verify_bundle(&text, claimed, &policy, sig)?);
            None
        }
    };
    if let Some((key, key_path)) = checked_key
        && !parsed.signatures.iter().any(|der| key.verify(&msg, der))
    {
        return Err(SignError::BadSignature { path: sig.to_owned(), key: key_path.to_owned() });
    }
    // The payload is authentic from here on; now check it describes this model.
    let st = parse_payload()?;
    if string(&st, &["predicateType"], sig)? != PREDICATE_TYPE {
        return Err(fmt(format!("predicateType is not {PREDICATE_TYPE}")));
    }
    let subject = field(&st, &["subject"], sig)?.get(0).ok_or_else(|| fmt("statement has no subject".into()))?;
    let subject_name = string(subject, &["name"], sig)?.to_owned();
    let subject_sha = string(subject, &["digest", "sha256"], sig)?.to_owned();
    let ser = field(&st, &["predicate", "serialization"], sig)?;
    let method_name = string(ser, &["method"], sig)?.to_owned();
    let hash_name = string(ser, &["hash_type"], sig)?.to_owned();
    let hash = HashType::parse(&hash_name).ok_or_else(|| fmt(format!("unsupported hash_type {hash_name:?}")))?;
    let method = match method_name.as_str() {
        "files" => Method::Files,
        "shards" => {
            let sz = field(ser, &["shard_size"], sig)?.as_f64().filter(|v| *v >= 1.0 && v.fract() == 0.0 && *v < 1e15).ok_or_else(|| fmt("shard_size is not a positive integer".into()))?;
            Method::Shards(sz as u64)
        }
        other => return Err(fmt(format!("unsupported serialization method {other:?}"))),
    };
    let allow_symlinks = ser.get("allow_symlinks").and_then(Value::as_bool).unwrap_or(false);
    let model_c = canonical(model)?;
    let mut ignore: Vec<PathBuf> = ser
        .get("ignore_paths")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(|p| model_c.join(p)).collect())
        .unwrap_or_default();
    ignore.extend(extra_ignore.iter().map(|p| model_c.join(p)));
    // The signature file itself, when it sits inside the model folder.
    ignore.push(canonical(sig)?);
    let signed: Vec<Resource> = serde_json::from_value::<Vec<Value>>(field(&st, &["predicate", "resources"], sig)?.clone())
        .map_err(|e| fmt(format!("resources: {e}")))?
        .iter()
        .map(|r| Ok(Resource { name: string(r, &["name"], sig)?.to_owned(), algorithm: string(r, &["algorithm"], sig)?.to_owned(), digest: string(r, &["digest"], sig)?.to_ascii_lowercase() }))
        .collect::<Result<_>>()?;
    let files = list_files(&model_c, &ignore, allow_symlinks).map_err(|source| SignError::Io { path: model.to_owned(), source })?;
    let actual = resources(&files, method, hash).map_err(|source| SignError::Io { path: model.to_owned(), source })?;
    let mut problems = Vec::new();
    let by_name = |v: &[Resource]| v.iter().map(|r| (r.name.clone(), r.clone())).collect::<std::collections::BTreeMap<_, _>>();
    let (s, a) = (by_name(&signed), by_name(&actual));
    for (n, r) in &s {
        match a.get(n) {
            None => problems.push(format!("{n} is signed but missing")),
            Some(x) if x.digest != r.digest || x.algorithm != r.algorithm => problems.push(format!("{n} changed ({} {} signed, {} now)", r.algorithm, r.digest, x.digest)),
            Some(_) => {}
        }
    }
    for n in a.keys().filter(|n| !s.contains_key(*n)) {
        problems.push(format!("{n} is not covered by the signature"));
    }
    if problems.is_empty() && subject_digest(&signed).map_err(fmt)? != subject_sha {
        problems.push("the statement's subject digest does not match its resources".into());
    }
    if !problems.is_empty() {
        return Err(SignError::Mismatch { model: model.to_owned(), sig: sig.to_owned(), problems: problems.join("; ") });
    }
    Ok(SignatureReport { keyless, subject_name, subject_sha256: subject_sha, method: method_name, hash_type: hash_name, files: files.len() })
}

/// Sign `model` with a P-256 private key (SEC1 or PKCS#8 PEM), writing a bundle that
/// `model_signing verify key` accepts. Serialization: files, SHA-256.
pub fn sign(model: &Path, private_key: &Path, out: &Path) -> Result<()> {
    use ecdsa::signature::Signer;
    use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let key_err = |msg: String| SignError::Key { path: private_key.to_owned(), msg };
    let pem = std::fs::read_to_string(private_key).map_err(|source| SignError::Io { path: private_key.to_owned(), source })?;
    let secret = p256::SecretKey::from_sec1_pem(&pem)
        .or_else(|_| p256::SecretKey::from_pkcs8_pem(&pem))
        .map_err(|_| key_err("not a P-256 private key in SEC1 or PKCS#8 PEM (glassbox signs with P-256)".into()))?;
    let signing = p256::ecdsa::SigningKey::from(&secret);
    let pub_pem = secret.public_key().to_public_key_pem(LineEnding::LF).map_err(|e| key_err(e.to_string()))?;
    let model_c = canonical(model)?;
    let mut ignore: Vec<PathBuf> = DEFAULT_IGNORE.iter().map(|p| model_c.join(p)).collect();
    let out_abs = std::fs::canonicalize(out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
        .map_err(|source| SignError::Io { path: out.to_owned(), source })?
        .join(out.file_name().unwrap_or_default());
    let mut ignore_names: Vec<String> = DEFAULT_IGNORE.iter().map(|s| s.to_string()).collect();
    if let Ok(rel) = out_abs.strip_prefix(&model_c) {
        ignore.push(out_abs.clone());
        ignore_names.push(rel.to_string_lossy().into_owned());
    }
    let files = list_files(&model_c, &ignore, false).map_err(|source| SignError::Io { path: model.to_owned(), source })?;
    let res = resources(&files, Method::Files, HashType::Sha256).map_err(|source| SignError::Io { path: model.to_owned(), source })?;
    let subject = subject_digest(&res).map_err(|msg| SignError::Format { path: out.to_owned(), msg })?;
    let name = model_c.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into());
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": subject}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": ignore_names},
            "resources": res.iter().map(|r| json!({"name": r.name, "algorithm": r.algorithm, "digest": r.digest})).collect::<Vec<_>>(),
        },
    });
    let payload = serde_json::to_vec(&statement).map_err(|e| SignError::Format { path: out.to_owned(), msg: e.to_string() })?;
    let sig: p256::ecdsa::Signature = signing.sign(&pae(&payload));
    let hint = crate::sha256_hex(&crate::sha256_of(pub_pem.as_bytes()));
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": {"payload": B64.encode(&payload), "payloadType": PAYLOAD_TYPE, "signatures": [{"sig": B64.encode(sig.to_der().as_bytes()), "keyid": ""}]},
    });
    crate::store::write_atomic(out, serde_json::to_string(&bundle).unwrap_or_default().as_bytes()).map_err(|e| SignError::Format { path: out.to_owned(), msg: e.to_string() })
}
