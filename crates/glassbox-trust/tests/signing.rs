//! OpenSSF model-signing interop on ../shared/corpora/model-signing (signatures made by the
//! `model-signing` Python package and by the upstream project's test vectors).

use std::path::{Path, PathBuf};

use glassbox_trust::signing::{PublicKey, SignError, sign, verify};

fn corpus(rel: &str) -> PathBuf {
    glassbox_testdata::shared("corpora/model-signing").join(rel)
}

fn check(model: &Path, sig: &Path, key: &Path) -> Result<glassbox_trust::signing::SignatureReport, SignError> {
    verify(model, sig, &PublicKey::from_pem_file(key).unwrap(), key)
}

#[test]
fn python_signatures_verify_on_all_curves_hashes_and_serializations() {
    let model = corpus("model");
    for (sig, key, method, hash) in [
        ("model-p256.sig", "key-p256.pub.pem", "files", "sha256"),
        ("model-p384.sig", "key-p384.pub.pem", "files", "sha256"),
        ("model-p521.sig", "key-p521.pub.pem", "files", "sha256"),
        ("model-p256-blake2.sig", "key-p256.pub.pem", "files", "blake2b"),
        ("model-p256-blake3.sig", "key-p256.pub.pem", "files", "blake3"),
        ("model-p256-shards1m.sig", "key-p256.pub.pem", "shards", "sha256"),
        ("model-inside-dir.sig", "key-p256.pub.pem", "files", "sha256"),
    ] {
        let r = check(&model, &corpus(sig), &corpus(key)).unwrap_or_else(|e| panic!("{sig}: {e}"));
        assert_eq!((r.method.as_str(), r.hash_type.as_str()), (method, hash), "{sig}");
        assert_eq!(r.files, 4, "{sig}");
    }
}

#[test]
fn upstream_vectors_verify() {
    let key = corpus("upstream/keys/certificate/signing-key-pub.pem");
    // v1.0.0 signed one file (resource "."); v1.1.0 a folder with an ignored file.
    check(&corpus("upstream/v1.0.0-elliptic-key/signme-1"), &corpus("upstream/v1.0.0-elliptic-key/model.sig"), &key).unwrap();
    let e = check(&corpus("upstream/v1.1.0-elliptic-key"), &corpus("upstream/v1.1.0-elliptic-key/model.sig"), &key);
    assert!(e.is_ok(), "{e:?}");
}

fn copy_model(tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("glassbox-sig-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(dst.join("sub")).unwrap();
    for f in ["config.json", "empty.txt", "weights.bin", "sub/shard-00001.bin"] {
        std::fs::copy(corpus("model").join(f), dst.join(f)).unwrap();
    }
    dst
}

#[test]
fn every_failure_is_named() {
    let (sig, key) = (corpus("model-p256.sig"), corpus("key-p256.pub.pem"));
    // wrong key
    let e = check(&corpus("model"), &sig, &corpus("key-p384.pub.pem")).unwrap_err();
    assert!(matches!(e, SignError::BadSignature { .. }), "{e}");
    // changed, added, removed files
    let m = copy_model("changed");
    std::fs::write(m.join("weights.bin"), "hello weightz\n").unwrap();
    let e = check(&m, &sig, &key).unwrap_err().to_string();
    assert!(e.contains("weights.bin changed"), "{e}");
    let m = copy_model("added");
    std::fs::write(m.join("extra.bin"), "x").unwrap();
    let e = check(&m, &sig, &key).unwrap_err().to_string();
    assert!(e.contains("extra.bin is not covered by the signature"), "{e}");
    let m = copy_model("removed");
    std::fs::remove_file(m.join("config.json")).unwrap();
    let e = check(&m, &sig, &key).unwrap_err().to_string();
    assert!(e.contains("config.json is signed but missing"), "{e}");
    // modified signature bytes or payload
    let text = std::fs::read_to_string(&sig).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let s = v["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let flipped = format!("{}{}", &s[..10], if &s[10..11] == "A" { "B" } else { "A" }) + &s[11..];
    v["dsseEnvelope"]["signatures"][0]["sig"] = flipped.into();
    let bad = std::env::temp_dir().join(format!("glassbox-badsig-{}.sig", std::process::id()));
    std::fs::write(&bad, v.to_string()).unwrap();
    assert!(matches!(check(&corpus("model"), &bad, &key).unwrap_err(), SignError::BadSignature { .. }));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p = v["dsseEnvelope"]["payload"].as_str().unwrap().to_owned();
    v["dsseEnvelope"]["payload"] = format!("{}{}", if p.starts_with('e') { "f" } else { "e" }, &p[1..]).into();
    std::fs::write(&bad, v.to_string()).unwrap();
    assert!(matches!(check(&corpus("model"), &bad, &key).unwrap_err(), SignError::BadSignature { .. }));
    std::fs::write(&bad, "{not json").unwrap();
    assert!(matches!(check(&corpus("model"), &bad, &key).unwrap_err(), SignError::Format { .. }));
}

#[test]
fn our_signatures_verify_and_catch_changes() {
    let m = copy_model("ours");
    let out = m.join("model.sig"); // inside the folder: must ignore itself
    sign(&m, &corpus("key-p256.pem"), &out).unwrap();
    let r = check(&m, &out, &corpus("key-p256.pub.pem")).unwrap();
    assert_eq!(r.files, 4);
    // same subject digest as the Python-made signature over the same files
    let py = check(&corpus("model"), &corpus("model-p256.sig"), &corpus("key-p256.pub.pem")).unwrap();
    assert_eq!(r.subject_sha256, py.subject_sha256);
    std::fs::write(m.join("weights.bin"), "tampered\n").unwrap();
    assert!(check(&m, &out, &corpus("key-p256.pub.pem")).is_err());
    let e = sign(&m, &corpus("key-rsa.pem"), &out).unwrap_err().to_string();
    assert!(e.contains("P-256"), "{e}");
}

mod certificate_method {
    use super::*;
    use glassbox_trust::signing::{Signer, verify_with};

    #[test]
    fn python_certificate_signature_verifies_against_its_ca() {
        let r = verify_with(&corpus("model"), &corpus("model-cert.sig"), Signer::Anchors(&corpus("pki/ca-cert.pem")), &[]).unwrap();
        assert_eq!(r.files, 4);
    }

    #[test]
    fn upstream_certificate_vectors_verify() {
        let ca = corpus("upstream/keys/certificate/ca-cert.pem");
        for v in ["v1.0.0-certificate", "v1.0.1-certificate", "v1.1.0-certificate"] {
            let dir = corpus(&format!("upstream/{v}"));
            // v1.0.x bundles do not record ignore_paths; upstream verifies them with one.
            let r = verify_with(&dir, &dir.join("model.sig"), Signer::Anchors(&ca), &["ignore-me".into()]);
            assert!(r.is_ok(), "{v}: {r:?}");
        }
    }

    #[test]
    fn failures_are_named() {
        // Anchors that did not issue the chain.
        let e = verify_with(&corpus("model"), &corpus("model-cert.sig"), Signer::Anchors(&corpus("upstream/keys/certificate/ca-cert.pem")), &[]).unwrap_err().to_string();
        assert!(e.contains("does not chain to a trust anchor"), "{e}");
        // A key-method bundle has no chain.
        let e = verify_with(&corpus("model"), &corpus("model-p256.sig"), Signer::Anchors(&corpus("pki/ca-cert.pem")), &[]).unwrap_err().to_string();
        assert!(e.contains("no x509CertificateChain"), "{e}");
        // Right chain, changed model.
        let m = copy_model("cert");
        std::fs::write(m.join("config.json"), "{}").unwrap();
        let e = verify_with(&m, &corpus("model-cert.sig"), Signer::Anchors(&corpus("pki/ca-cert.pem")), &[]).unwrap_err().to_string();
        assert!(e.contains("config.json changed"), "{e}");
        // Not a certificate file.
        let e = verify_with(&corpus("model"), &corpus("model-cert.sig"), Signer::Anchors(&corpus("key-p256.pub.pem")), &[]).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
    }
}
