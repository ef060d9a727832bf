//! The model-signing certificate method: the bundle carries the signing certificate chain
//! (leaf first); the user supplies trust anchors. The leaf's key must verify the DSSE signature,
//! every link must be signed by the next (ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512)
//! until a trust anchor, every certificate on the path must be within its validity period now,
//! and a leaf with an extended-key-usage extension must allow code signing.

use std::path::Path;

use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem, Encode};

use crate::signing::{PublicKey, SignError};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const EKU: &str = "2.5.29.37";
const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";

fn name(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
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
    if let Ok(k) = p521::PublicKey::from_public_key_der(&der) {
        if let Ok(vk) = p521::ecdsa::VerifyingKey::from_sec1_bytes(&k.to_sec1_bytes()) {
            return Ok(PublicKey::P521(vk));
        }
    }
    Err(SignError::Key { path: what.to_owned(), msg: format!("certificate {:?} does not hold a NIST P-256/P-384/P-521 key", name(c)) })
}

/// RSA PKCS#1 v1.5 (certificate authorities only; model signatures themselves are ECDSA).
fn rsa_signed_by(c: &Certificate, issuer: &Certificate, alg: &str, what: &Path) -> Result<Option<bool>, SignError> {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let err = |msg: String| SignError::Key { path: what.to_owned(), msg };
    let der = issuer.tbs_certificate.subject_public_key_info.to_der().map_err(|e| err(e.to_string()))?;
    let Ok(pk) = rsa::RsaPublicKey::from_public_key_der(&der) else { return Ok(None) };
    let tbs = c.tbs_certificate.to_der().map_err(|e| err(e.to_string()))?;
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(c.signature.raw_bytes()) else { return Ok(Some(false)) };
    let ok = match alg {
        RSA_SHA256 => rsa::pkcs1v15::VerifyingKey::<sha2_10::Sha256>::new(pk).verify(&tbs, &sig).is_ok(),
        RSA_SHA384 => rsa::pkcs1v15::VerifyingKey::<sha2_10::Sha384>::new(pk).verify(&tbs, &sig).is_ok(),
        RSA_SHA512 => rsa::pkcs1v15::VerifyingKey::<sha2_10::Sha512>::new(pk).verify(&tbs, &sig).is_ok(),
        other => return Err(err(format!("certificate {:?} uses signature algorithm {other}, unsupported with an RSA issuer", name(c)))),
    };
    Ok(Some(ok))
}

fn signed_by(c: &Certificate, issuer: &Certificate, what: &Path) -> Result<bool, SignError> {
    let alg = c.signature_algorithm.oid.to_string();
    if let Some(ok) = rsa_signed_by(c, issuer, &alg, what)? {
        return Ok(ok);
    }
    let key = cert_key(issuer, what)?;
    let ok_alg = matches!((&key, alg.as_str()), (PublicKey::P256(_), ECDSA_SHA256) | (PublicKey::P384(_), ECDSA_SHA384) | (PublicKey::P521(_), ECDSA_SHA512));
    if !ok_alg {
        return Err(SignError::Key { path: what.to_owned(), msg: format!("certificate {:?} uses signature algorithm {alg}, unsupported with its issuer's key", name(c)) });
    }
    let tbs = c.tbs_certificate.to_der().map_err(|e| SignError::Key { path: what.to_owned(), msg: e.to_string() })?;
    Ok(key.verify_message(&tbs, c.signature.raw_bytes()))
}

fn check_validity(c: &Certificate, what: &Path) -> Result<(), SignError> {
    let now = std::time::SystemTime::now();
    let v = &c.tbs_certificate.validity;
    if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
        return Err(SignError::Key { path: what.to_owned(), msg: format!("certificate {:?} is not valid now (valid {} to {})", name(c), v.not_before, v.not_after) });
    }
    Ok(())
}

fn check_code_signing(leaf: &Certificate, what: &Path) -> Result<(), SignError> {
    for ext in leaf.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id.to_string() == EKU {
            let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes()).map_err(|e| SignError::Key { path: what.to_owned(), msg: format!("bad extended key usage: {e}") })?;
            if !eku.0.iter().any(|o| o.to_string() == CODE_SIGNING) {
                return Err(SignError::Key { path: what.to_owned(), msg: format!("certificate {:?} is not allowed to sign code (extended key usage)", name(leaf)) });
            }
        }
    }
    Ok(())
}

/// Parse the bundle's DER chain, validate it against the PEM anchors in `anchors_path`, and
/// return the leaf's key.
pub(crate) fn validate_chain(chain_der: &[Vec<u8>], anchors_path: &Path, sig: &Path) -> Result<PublicKey, SignError> {
    let pem = std::fs::read_to_string(anchors_path).map_err(|source| SignError::Io { path: anchors_path.to_owned(), source })?;
    let anchors: Vec<Certificate> = pem
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(|b| Certificate::from_pem(b.trim().as_bytes()).map_err(|e| SignError::Key { path: anchors_path.to_owned(), msg: format!("not a PEM certificate: {e}") }))
        .collect::<Result<_, _>>()?;
    if anchors.is_empty() {
        return Err(SignError::Key { path: anchors_path.to_owned(), msg: "no certificate in the trust-anchor file".into() });
    }
    let chain: Vec<Certificate> = chain_der
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|e| SignError::Format { path: sig.to_owned(), msg: format!("certificate in the bundle does not parse: {e}") }))
        .collect::<Result<_, _>>()?;
    let leaf = chain.first().ok_or_else(|| SignError::Format { path: sig.to_owned(), msg: "the certificate chain is empty".into() })?;
    check_code_signing(leaf, sig)?;
    for (i, c) in chain.iter().enumerate() {
        check_validity(c, sig)?;
        if anchors.iter().any(|a| a == c) {
            return cert_key(leaf, sig);
        }
        // Signed by an anchor?
        for a in &anchors {
            if a.tbs_certificate.subject == c.tbs_certificate.issuer && signed_by(c, a, anchors_path)? {
                check_validity(a, anchors_path)?;
                return cert_key(leaf, sig);
            }
        }
        // Else by the next certificate in the bundle's chain.
        match chain.get(i + 1) {
            Some(next) if next.tbs_certificate.subject == c.tbs_certificate.issuer && signed_by(c, next, sig)? => {}
            _ => {
                return Err(SignError::Key {
                    path: anchors_path.to_owned(),
                    msg: format!("certificate {:?} (issuer {:?}) does not chain to a trust anchor in this file", name(c), c.tbs_certificate.issuer.to_string()),
                });
            }
        }
    }
    Err(SignError::Key { path: anchors_path.to_owned(), msg: "the certificate chain does not reach a trust anchor".into() })
}
