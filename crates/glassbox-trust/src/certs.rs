//! The model-signing certificate method: the bundle carries the signing certificate chain
//! (leaf first); the user supplies trust anchors (PEM). Path building and validation are
//! rustls-webpki's: names chain, every signature verifies (ECDSA P-256/P-384/P-521 with
//! SHA-256/384/512, RSA PKCS#1 v1.5 with 2048-8192-bit keys), every issuer below the anchor has
//! basicConstraints cA=true and its pathLenConstraint holds, the leaf is not a CA, every
//! certificate below the anchor is valid now, and an extendedKeyUsage anywhere on the path
//! allows code signing. On top of that, what webpki leaves to its caller: the leaf must carry
//! the code-signing extended key usage (and digitalSignature, if it has a keyUsage); every issuer
//! must have a keyUsage with keyCertSign; the trust anchor itself must be a CA
//! (cA=true, keyCertSign), valid now, and its pathLenConstraint must hold.

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::aws_lc_rs as alg;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};

use crate::signing::{PublicKey, SignError};

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), the OID's DER contents.
const CODE_SIGNING: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 3];
/// More certificates than any real chain carries; the rest is not looked at.
const MAX_CHAIN: usize = 16;

/// The signature algorithms accepted on certificates (not on the model signature itself,
/// which is ECDSA on a NIST curve; see `cert_key`).
static ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    alg::ECDSA_P256_SHA256,
    alg::ECDSA_P256_SHA384,
    alg::ECDSA_P256_SHA512,
    alg::ECDSA_P384_SHA256,
    alg::ECDSA_P384_SHA384,
    alg::ECDSA_P384_SHA512,
    alg::ECDSA_P521_SHA256,
    alg::ECDSA_P521_SHA384,
    alg::ECDSA_P521_SHA512,
    alg::RSA_PKCS1_2048_8192_SHA256,
    alg::RSA_PKCS1_2048_8192_SHA384,
    alg::RSA_PKCS1_2048_8192_SHA512,
    alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
];

/// Why a certificate chain was refused. Certificates are named by their subject.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainError {
    #[error("certificate {subject:?} (issuer {issuer:?}) does not chain to a trust anchor in this file")]
    NoPath { subject: String, issuer: String },
    #[error("issuer {subject:?} is not a CA (basicConstraints cA is not true)")]
    NotACa { subject: String },
    #[error("issuer {subject:?} may not sign certificates (its keyUsage lacks keyCertSign)")]
    NoCertSign { subject: String },
    #[error("issuer {subject:?} allows {limit} intermediate CA(s) below it (pathLenConstraint), the path has {depth}")]
    PathLen { subject: String, limit: u8, depth: usize },
    #[error("certificate {subject:?} is not valid now (valid {not_before} to {not_after})")]
    NotValidNow { subject: String, not_before: String, not_after: String },
    #[error("signing certificate {subject:?} is a CA certificate (basicConstraints cA=true), not an end-entity certificate")]
    LeafIsCa { subject: String },
    #[error("signing certificate {subject:?} lacks the code-signing extended key usage (1.3.6.1.5.5.7.3.3)")]
    NoCodeSigning { subject: String },
    #[error("signing certificate {subject:?} has a keyUsage without digitalSignature")]
    NoDigitalSignature { subject: String },
    #[error("certificate {subject:?} restricts its extended key usage to purposes other than code signing")]
    EkuExcludesCodeSigning { subject: String },
    #[error("a certificate's signature does not verify with its issuer's key")]
    BadSignature,
    #[error(
        "a certificate uses an unsupported signature algorithm or key (supported: ECDSA P-256/P-384/P-521 with SHA-256/384/512, RSA PKCS#1 v1.5 with 2048-8192-bit keys)"
    )]
    UnsupportedAlgorithm,
    #[error("{what} is malformed: {msg}")]
    Malformed { what: String, msg: String },
    #[error("{0}")]
    Other(String),
}

fn name(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

fn malformed(c: &Certificate, e: impl std::fmt::Display) -> ChainError {
    ChainError::Malformed { what: format!("certificate {:?}", name(c)), msg: e.to_string() }
}

fn basic_constraints(c: &Certificate) -> Result<Option<BasicConstraints>, ChainError> {
    c.tbs_certificate.get::<BasicConstraints>().map(|o| o.map(|(_, v)| v)).map_err(|e| malformed(c, format!("basicConstraints: {e}")))
}

fn key_usage(c: &Certificate) -> Result<Option<KeyUsage>, ChainError> {
    c.tbs_certificate.get::<KeyUsage>().map(|o| o.map(|(_, v)| v)).map_err(|e| malformed(c, format!("keyUsage: {e}")))
}

fn ext_key_usage(c: &Certificate) -> Result<Option<ExtendedKeyUsage>, ChainError> {
    c.tbs_certificate.get::<ExtendedKeyUsage>().map(|o| o.map(|(_, v)| v)).map_err(|e| malformed(c, format!("extendedKeyUsage: {e}")))
}

fn allows_code_signing(eku: &ExtendedKeyUsage) -> bool {
    eku.0.iter().any(|o| o.as_bytes() == CODE_SIGNING)
}

fn is_ca(c: &Certificate) -> bool {
    matches!(basic_constraints(c), Ok(Some(bc)) if bc.ca)
}

fn valid_now(c: &Certificate, now: UnixTime) -> Result<(), ChainError> {
    let v = &c.tbs_certificate.validity;
    let now = Duration::from_secs(now.as_secs());
    if now < v.not_before.to_unix_duration() || now > v.not_after.to_unix_duration() {
        return Err(ChainError::NotValidNow { subject: name(c), not_before: v.not_before.to_string(), not_after: v.not_after.to_string() });
    }
    Ok(())
}

/// The public key of a certificate, as a verification key.
pub(crate) fn cert_key(c: &Certificate, what: &Path) -> Result<PublicKey, SignError> {
    use p256::pkcs8::DecodePublicKey;
    let der = c.tbs_certificate.subject_public_key_info.to_der().map_err(|e| SignError::Key { path: what.to_owned(), msg: e.to_string() })?;
    if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(&der) {
        return Ok(PublicKey::P256(k));
    }
    if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(&der) {
        return Ok(PublicKey::P384(k));
    }
    if let Ok(k) = p521::PublicKey::from_public_key_der(&der)
        && let Ok(vk) = p521::ecdsa::VerifyingKey::from_sec1_bytes(&k.to_sec1_bytes())
    {
        return Ok(PublicKey::P521(vk));
    }
    Err(SignError::Key { path: what.to_owned(), msg: format!("certificate {:?} does not hold a NIST P-256/P-384/P-521 key", name(c)) })
}

/// The leaf's own requirements: code signing, digital signatures.
fn check_leaf(leaf: &Certificate) -> Result<(), ChainError> {
    match ext_key_usage(leaf)? {
        Some(eku) if allows_code_signing(&eku) => {}
        _ => return Err(ChainError::NoCodeSigning { subject: name(leaf) }),
    }
    if key_usage(leaf)?.is_some_and(|ku| !ku.digital_signature()) {
        return Err(ChainError::NoDigitalSignature { subject: name(leaf) });
    }
    Ok(())
}

/// An issuer must assert keyCertSign (webpki ignores keyUsage).
fn check_cert_sign(c: &Certificate) -> Result<(), ChainError> {
    match key_usage(c)? {
        Some(ku) if ku.key_cert_sign() => Ok(()),
        _ => Err(ChainError::NoCertSign { subject: name(c) }),
    }
}

/// What webpki does not check on a path it built: the issuers' keyUsage, and everything
/// about the trust anchor (webpki knows it only as a name and a key).
fn check_issuers(path: &webpki::VerifiedPath<'_>, anchor_ders: &[TrustAnchor<'_>], anchors: &[Certificate], now: UnixTime) -> Result<(), ChainError> {
    let mut depth = 0;
    for c in path.intermediate_certificates() {
        let cert = Certificate::from_der(c.der().as_ref()).map_err(|e| ChainError::Malformed { what: "an intermediate certificate".into(), msg: e.to_string() })?;
        check_cert_sign(&cert)?;
        depth += 1;
    }
    let anchor = anchor_ders.iter().position(|a| std::ptr::eq(a, path.anchor())).and_then(|i| anchors.get(i));
    let Some(anchor) = anchor else {
        return Err(ChainError::Other("internal error: the path's trust anchor is not in the anchor file".into()));
    };
    valid_now(anchor, now)?;
    let bc = basic_constraints(anchor)?.filter(|bc| bc.ca).ok_or_else(|| ChainError::NotACa { subject: name(anchor) })?;
    check_cert_sign(anchor)?;
    if let Some(limit) = bc.path_len_constraint
        && usize::from(limit) < depth
    {
        return Err(ChainError::PathLen { subject: name(anchor), limit, depth });
    }
    Ok(())
}

/// The bundle's certificates in issuing order from the leaf, following names (at most
/// `chain.len()` steps, stopping at a self-issued certificate).
fn name_path(chain: &[Certificate]) -> Vec<&Certificate> {
    let mut path: Vec<&Certificate> = chain.first().into_iter().collect();
    while let Some(cur) = path.last().copied() {
        if path.len() >= chain.len() || cur.tbs_certificate.issuer == cur.tbs_certificate.subject {
            break;
        }
        match chain.iter().find(|c| c.tbs_certificate.subject == cur.tbs_certificate.issuer && !path.iter().any(|p| std::ptr::eq(*p, *c))) {
            Some(next) => path.push(next),
            None => break,
        }
    }
    path
}

/// A webpki refusal, in words, naming the certificate where it can be found.
fn explain(e: &webpki::Error, chain: &[Certificate]) -> ChainError {
    use webpki::Error as E;
    let path = name_path(chain);
    let leaf_name = chain.first().map(name).unwrap_or_default();
    // webpki checks the validity of the bundle's certificates only (anchors are checked in
    // `check_issuers`), so the one it found expired is among them.
    let find_time = |secs: u64, after: bool| {
        chain.iter().find(|c| {
            let v = &c.tbs_certificate.validity;
            (if after { v.not_after } else { v.not_before }).to_unix_duration().as_secs() == secs
        })
    };
    let not_valid = |c: &Certificate| {
        let v = &c.tbs_certificate.validity;
        ChainError::NotValidNow { subject: name(c), not_before: v.not_before.to_string(), not_after: v.not_after.to_string() }
    };
    match e {
        E::UnknownIssuer => match path.last() {
            Some(top) => ChainError::NoPath { subject: name(top), issuer: top.tbs_certificate.issuer.to_string() },
            None => ChainError::Other("the certificate chain is empty".into()),
        },
        E::CertExpired { not_after, .. } => find_time(not_after.as_secs(), true).map_or_else(|| ChainError::Other("a certificate on the path has expired".into()), not_valid),
        E::CertNotValidYet { not_before, .. } => {
            find_time(not_before.as_secs(), false).map_or_else(|| ChainError::Other("a certificate on the path is not valid yet".into()), not_valid)
        }
        E::CaUsedAsEndEntity => ChainError::LeafIsCa { subject: leaf_name },
        E::EndEntityUsedAsCa => match path.iter().skip(1).copied().find(|c| !is_ca(c)).or_else(|| chain.iter().skip(1).find(|c| !is_ca(c))) {
            Some(c) => ChainError::NotACa { subject: name(c) },
            None => ChainError::Other("an issuer on the path is not a CA".into()),
        },
        E::PathLenConstraintViolated => {
            // Position k on the path (leaf = 0) has k - 1 intermediate CAs below it.
            let over = path.iter().enumerate().skip(2).find_map(|(k, c)| match basic_constraints(c) {
                Ok(Some(BasicConstraints { ca: true, path_len_constraint: Some(limit) })) if usize::from(limit) < k - 1 => Some((c, limit, k - 1)),
                _ => None,
            });
            match over {
                Some((c, limit, depth)) => ChainError::PathLen { subject: name(c), limit, depth },
                None => ChainError::Other("an issuer's pathLenConstraint is exceeded".into()),
            }
        }
        #[allow(deprecated)]
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            match path.iter().find(|c| matches!(ext_key_usage(c), Ok(Some(eku)) if !allows_code_signing(&eku))) {
                Some(c) => ChainError::EkuExcludesCodeSigning { subject: name(c) },
                None => ChainError::Other("a certificate on the path does not allow code signing (extended key usage)".into()),
            }
        }
        E::InvalidSignatureForPublicKey => ChainError::BadSignature,
        #[allow(deprecated)]
        E::SignatureAlgorithmMismatch
        | E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => ChainError::UnsupportedAlgorithm,
        E::UnsupportedCriticalExtension => ChainError::Other("a certificate on the path has a critical extension that is not supported".into()),
        E::NameConstraintViolation => ChainError::Other("a certificate on the path violates its issuer's name constraints".into()),
        E::MaximumPathDepthExceeded => ChainError::Other("the path is longer than the 6 intermediate certificates supported".into()),
        E::MaximumSignatureChecksExceeded | E::MaximumPathBuildCallsExceeded | E::MaximumNameConstraintComparisonsExceeded => {
            ChainError::Other("path building gave up: too many candidate certificates".into())
        }
        other => ChainError::Malformed { what: "a certificate on the path".into(), msg: format!("{other:?}") },
    }
}

/// The PEM certificates of a trust-anchor file, as DER and parsed.
fn read_anchors(anchors_path: &Path) -> Result<Vec<(Vec<u8>, Certificate)>, SignError> {
    let err = |msg: String| SignError::Key { path: anchors_path.to_owned(), msg };
    let pem = std::fs::read_to_string(anchors_path).map_err(|source| SignError::Io { path: anchors_path.to_owned(), source })?;
    let mut out = Vec::new();
    for block in pem.split_inclusive("-----END CERTIFICATE-----").filter(|b| b.contains("-----BEGIN CERTIFICATE-----")) {
        let start = block.find("-----BEGIN CERTIFICATE-----").unwrap_or(0);
        let (label, der) = x509_cert::der::pem::decode_vec(block[start..].trim().as_bytes()).map_err(|e| err(format!("not a PEM certificate: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(err(format!("not a PEM certificate: label {label:?}")));
        }
        let cert = Certificate::from_der(&der).map_err(|e| err(format!("not a PEM certificate: {e}")))?;
        out.push((der, cert));
    }
    if out.is_empty() {
        return Err(err("no certificate in the trust-anchor file".into()));
    }
    Ok(out)
}

/// Parse the bundle's DER chain, validate it against the PEM anchors in `anchors_path`, and
/// return the leaf's key.
pub(crate) fn validate_chain(chain_der: &[Vec<u8>], anchors_path: &Path, sig: &Path) -> Result<PublicKey, SignError> {
    let fmt = |msg: String| SignError::Format { path: sig.to_owned(), msg };
    // A refused chain is a `Key` error on the anchor file, as the CLI reports those as a failed
    // verification (exit 1), not a usage error.
    let rejected = |reason: ChainError| SignError::Key { path: anchors_path.to_owned(), msg: format!("certificate chain rejected: {reason}") };
    if chain_der.len() > MAX_CHAIN {
        return Err(fmt(format!("the certificate chain has {} certificates, over the limit of {MAX_CHAIN}", chain_der.len())));
    }
    let chain: Vec<Certificate> = chain_der
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|e| fmt(format!("certificate in the bundle does not parse: {e}"))))
        .collect::<Result<_, _>>()?;
    let leaf = chain.first().ok_or_else(|| fmt("the certificate chain is empty".into()))?;
    let anchor_certs = read_anchors(anchors_path)?;
    check_leaf(leaf).map_err(rejected)?;

    let (anchor_raw, anchors): (Vec<Vec<u8>>, Vec<Certificate>) = anchor_certs.into_iter().unzip();
    let anchor_ders: Vec<CertificateDer<'_>> = anchor_raw.iter().map(|der| CertificateDer::from(der.as_slice())).collect();
    let trust_anchors: Vec<TrustAnchor<'_>> = anchor_ders
        .iter()
        .map(|d| webpki::anchor_from_trusted_cert(d).map_err(|e| SignError::Key { path: anchors_path.to_owned(), msg: format!("not a usable trust anchor: {e:?}") }))
        .collect::<Result<_, _>>()?;
    let leaf_der = CertificateDer::from(chain_der[0].as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| rejected(ChainError::Malformed { what: format!("signing certificate {:?}", name(leaf)), msg: format!("{e:?}") }))?;
    let intermediates: Vec<CertificateDer<'_>> = chain_der[1..].iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let now = UnixTime::since_unix_epoch(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default());

    // webpki calls this for each path it completes; a refusal lets it try another path, and
    // UnknownRevocationStatus (never raised here, as no revocation is asked for) marks ours.
    let refusal: RefCell<Option<ChainError>> = RefCell::new(None);
    let extra = |path: &webpki::VerifiedPath<'_>| {
        check_issuers(path, &trust_anchors, &anchors, now).map_err(|reason| {
            *refusal.borrow_mut() = Some(reason);
            webpki::Error::UnknownRevocationStatus
        })
    };
    let usage = webpki::KeyUsage::required_if_present(CODE_SIGNING);
    match ee.verify_for_usage(ALGS, &trust_anchors, &intermediates, now, usage, None, Some(&extra)) {
        Ok(_) => cert_key(leaf, sig),
        Err(webpki::Error::UnknownRevocationStatus) if refusal.borrow().is_some() => {
            Err(rejected(refusal.take().unwrap_or_else(|| ChainError::Other("refused".into()))))
        }
        Err(e) => Err(rejected(explain(&e, &chain))),
    }
}
