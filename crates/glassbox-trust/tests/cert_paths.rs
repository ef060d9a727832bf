//! Certificate-method path validation on the fixtures in tests/pki (made by tests/pki/make.py):
//! a bundle is signed with the fixtures' leaf key by `glassbox sign`, then given each chain.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use glassbox_trust::signing::{SignError, SignatureReport, Signer, sign, verify_with};
use serde_json::json;

fn pki(f: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("pki").join(f)
}

/// The DER certificates of a PEM file, in order.
fn pem_ders(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|b| {
            let body: String = b.split("-----END CERTIFICATE-----").next().unwrap().chars().filter(|c| !c.is_whitespace()).collect();
            B64.decode(body).unwrap()
        })
        .collect()
}

fn pem_of(der: &[u8]) -> String {
    let b = B64.encode(der);
    let lines: Vec<&str> = b.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("glassbox-certpaths-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("model")).unwrap();
    std::fs::write(dir.join("model").join("weights.bin"), "certificate-method weights\n").unwrap();
    dir
}

/// A model signed with `key`, its bundle carrying `certs` (leaf first) as its chain.
fn bundle_with(tag: &str, key: &Path, certs: &[Vec<u8>]) -> (PathBuf, PathBuf) {
    let dir = scratch(tag);
    let (model, sig) = (dir.join("model"), dir.join("model.sig"));
    sign(&model, key, &sig).unwrap();
    let mut b: serde_json::Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    let raw: Vec<_> = certs.iter().map(|d| json!({"rawBytes": B64.encode(d)})).collect();
    b["verificationMaterial"] = json!({"x509CertificateChain": {"certificates": raw}, "tlogEntries": []});
    std::fs::write(&sig, serde_json::to_vec(&b).unwrap()).unwrap();
    (model, sig)
}

fn check(tag: &str, chain: &str, anchors: &Path) -> Result<SignatureReport, SignError> {
    let (model, sig) = bundle_with(tag, &pki("leaf.key"), &pem_ders(&pki(chain)));
    verify_with(&model, &sig, Signer::Anchors(anchors), &[])
}

/// The message of a refused chain (a `Key` error on the anchor file, which the CLI reports as
/// a failed verification).
fn refused(tag: &str, chain: &str, anchors: &Path) -> String {
    match check(tag, chain, anchors) {
        Err(e @ SignError::Key { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("certificate chain rejected: "), "{msg}");
            msg
        }
        other => panic!("{chain}: expected a refused chain, got {other:?}"),
    }
}

#[test]
fn proper_ca_intermediate_leaf_chains_verify() {
    // RSA-3072 root -> P-384 intermediate (sha256WithRSA) -> P-256 leaf (ecdsa-with-SHA384).
    let r = check("good-rsa", "chain-good-rsa.pem", &pki("root-rsa.pem")).unwrap();
    assert_eq!((r.files, r.method.as_str()), (1, "files"));
    // P-521 root (pathLen 1) -> P-256 intermediate (ecdsa-with-SHA512) -> P-256 leaf.
    check("good-ec", "chain-good-ec.pem", &pki("root-ec.pem")).unwrap();
    // An anchor file holding several roots.
    let dir = scratch("two-roots");
    let both = dir.join("roots.pem");
    std::fs::write(&both, [std::fs::read_to_string(pki("root-ec.pem")).unwrap(), std::fs::read_to_string(pki("root-rsa.pem")).unwrap()].concat()).unwrap();
    check("good-rsa-2", "chain-good-rsa.pem", &both).unwrap();
    check("good-ec-2", "chain-good-ec.pem", &both).unwrap();
    // A valid chain does not make another key's signature valid.
    let other_key = glassbox_testdata::corpus("model-signing").join("key-p256.pem");
    let (model, sig) = bundle_with("other-key", &other_key, &pem_ders(&pki("chain-good-rsa.pem")));
    let e = verify_with(&model, &sig, Signer::Anchors(&pki("root-rsa.pem")), &[]).unwrap_err();
    assert!(matches!(e, SignError::BadSignature { .. }), "{e}");
}

#[test]
fn model_signing_package_bundles_verify() {
    // Made by `model_signing sign certificate` (model-signing 1.1.1) with the valid chains.
    for (sig, root) in [("model-good-rsa.sig", "root-rsa.pem"), ("model-good-ec.sig", "root-ec.pem")] {
        let r = verify_with(&pki("model"), &pki(sig), Signer::Anchors(&pki(root)), &[]);
        assert_eq!(r.map(|r| r.files).map_err(|e| e.to_string()), Ok(2), "{sig}");
    }
    let e = verify_with(&pki("model"), &pki("model-good-rsa.sig"), Signer::Anchors(&pki("root-ec.pem")), &[]).unwrap_err().to_string();
    assert!(e.contains("does not chain to a trust anchor"), "{e}");
}

#[test]
fn end_entity_as_issuer_is_refused() {
    let msg = refused("ee-issuer", "chain-ee-issuer.pem", &pki("root-rsa.pem"));
    assert!(msg.contains("certificate chain rejected: issuer \"CN=glassbox test end entity\" is not a CA"), "{msg}");
    // Nor may an end-entity certificate listed as a trust anchor issue.
    let msg = refused("ee-anchor", "chain-ee-issuer.pem", &pki("anchor-ee.pem"));
    assert!(msg.contains("issuer \"CN=glassbox test end entity\" is not a CA"), "{msg}");
}

#[test]
fn path_length_exceeded_is_refused() {
    // Below an intermediate with pathLen 0 (webpki's check).
    let msg = refused("pathlen-int", "chain-pathlen-int.pem", &pki("root-rsa.pem"));
    assert!(msg.contains("issuer \"CN=glassbox test intermediate a\" allows 0 intermediate CA(s) below it (pathLenConstraint), the path has 1"), "{msg}");
    // Below the trust anchor (pathLen 1, two intermediates): webpki knows an anchor only by
    // name and key, so this one is glassbox's.
    let msg = refused("pathlen-root", "chain-pathlen-root.pem", &pki("root-ec.pem"));
    assert!(msg.contains("issuer \"CN=glassbox test root ec\" allows 1 intermediate CA(s) below it (pathLenConstraint), the path has 2"), "{msg}");
}

#[test]
fn expired_certificates_are_refused() {
    let msg = refused("expired-int", "chain-expired-int.pem", &pki("root-rsa.pem"));
    assert!(msg.contains("certificate \"CN=glassbox test intermediate expired\" is not valid now (valid 2020-01-01"), "{msg}");
    // An expired trust anchor too.
    let dir = scratch("expired-anchor");
    let anchor = dir.join("anchor.pem");
    std::fs::write(&anchor, pem_of(&pem_ders(&pki("chain-expired-int.pem"))[1])).unwrap();
    let msg = refused("expired-anchor-2", "chain-expired-int.pem", &anchor);
    assert!(msg.contains("certificate \"CN=glassbox test intermediate expired\" is not valid now"), "{msg}");
}

#[test]
fn leaf_without_code_signing_is_refused() {
    for (tag, chain, subject) in [("no-eku", "chain-no-eku.pem", "CN=no eku"), ("eku-server", "chain-eku-server.pem", "CN=server auth only")] {
        let msg = refused(tag, chain, &pki("root-rsa.pem"));
        assert!(msg.contains(&format!("signing certificate {subject:?} lacks the code-signing extended key usage")), "{msg}");
    }
}

#[test]
fn issuer_without_key_cert_sign_is_refused() {
    let msg = refused("no-certsign", "chain-no-certsign.pem", &pki("root-rsa.pem"));
    assert!(msg.contains("issuer \"CN=glassbox test intermediate no certsign\" may not sign certificates (its keyUsage lacks keyCertSign)"), "{msg}");
}

#[test]
fn names_must_chain_to_an_anchor_in_the_file() {
    // Signed by intermediate a's key, but naming another issuer.
    let msg = refused("misnamed", "chain-misnamed.pem", &pki("root-rsa.pem"));
    assert!(msg.contains("certificate \"CN=misnamed issuer\" (issuer \"CN=glassbox test somebody else\") does not chain to a trust anchor in this file"), "{msg}");
    // A good chain under another root.
    let msg = refused("wrong-root", "chain-good-rsa.pem", &pki("root-ec.pem"));
    assert!(msg.contains("certificate \"CN=glassbox test intermediate a\" (issuer \"CN=glassbox test root rsa\") does not chain"), "{msg}");
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let good = pem_ders(&pki("chain-good-rsa.pem"));
    let key = pki("leaf.key");
    let anchors = pki("root-rsa.pem");
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("empty", vec![]),
        ("garbage", vec![b"not a certificate".to_vec()]),
        ("truncated-leaf", vec![good[0][..good[0].len() / 2].to_vec(), good[1].clone()]),
        ("truncated-intermediate", vec![good[0].clone(), good[1][..good[1].len() - 1].to_vec()]),
        ("too-long", vec![good[0].clone(); 17]),
        ("leaf-only", vec![good[0].clone()]),
        ("intermediate-as-leaf", vec![good[1].clone()]),
    ];
    let mut flipped = good.clone();
    let n = flipped[1].len() - 10;
    flipped[1][n] ^= 1; // inside the intermediate's RSA signature
    let (model, sig) = bundle_with("bad-signature", &key, &flipped);
    let e = verify_with(&model, &sig, Signer::Anchors(&anchors), &[]).unwrap_err().to_string();
    assert!(e.contains("certificate chain rejected: a certificate's signature does not verify with its issuer's key"), "{e}");
    for (tag, certs) in cases {
        let (model, sig) = bundle_with(tag, &key, &certs);
        let r = verify_with(&model, &sig, Signer::Anchors(&anchors), &[]);
        assert!(r.is_err(), "{tag}: {r:?}");
    }
    // Trust-anchor files that are not certificates.
    let (model, sig) = bundle_with("anchor-files", &key, &good);
    let dir = scratch("anchor-files-2");
    for (i, text) in ["", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"].iter().enumerate() {
        let f = dir.join(format!("anchors-{i}.pem"));
        std::fs::write(&f, text).unwrap();
        let e = verify_with(&model, &sig, Signer::Anchors(&f), &[]).unwrap_err();
        assert!(matches!(e, SignError::Key { .. }), "{i}: {e}");
    }
}
