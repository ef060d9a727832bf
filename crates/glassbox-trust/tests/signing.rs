//! OpenSSF model-signing interop on tests/corpora/model-signing (signatures made by the
//! `model-signing` Python package and by the upstream project's test vectors).

use std::path::{Path, PathBuf};

use glassbox_trust::signing::{PublicKey, SignError, sign, verify};

fn corpus(rel: &str) -> PathBuf {
    glassbox_testdata::corpus("model-signing").join(rel)
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

    /// The corpus leaf (made 2026-11-22) is valid for one year and glassbox checks validity
    /// now: until it expires it verifies; after that it must be refused for its date (the
    /// long-lived bundles in tests/pki keep covering the package's signatures).
    #[test]
    fn python_certificate_signature_verifies_against_its_ca() {
        const LEAF_NOT_AFTER_UNIX: u64 = 1_826_856_835; // 2027-11-22T04:13:55Z
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let r = verify_with(&corpus("model"), &corpus("model-cert.sig"), Signer::Anchors(&corpus("pki/ca-cert.pem")), &[]);
        if now < LEAF_NOT_AFTER_UNIX {
            assert_eq!(r.unwrap().files, 4);
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("not valid now"), "{e}");
        }
    }

    /// Upstream's certificate vectors are signed by a certificate with basicConstraints cA=true
    /// ("CN=intermediate-ca", issued by the intermediate "CN=intermediate-ca" under "CN=root-ca").
    /// OpenSSL (which model-signing uses) accepts a CA as the signer; webpki's path validation
    /// does not, so glassbox refuses them and says why. Their signatures and manifests are
    /// still checked here with the signing certificate's public key (key method).
    #[test]
    fn upstream_certificate_vectors_are_refused_for_a_ca_signing_certificate() {
        let ca = corpus("upstream/keys/certificate/ca-cert.pem");
        let key = corpus("upstream/keys/certificate/signing-key-pub.pem");
        let pk = PublicKey::from_pem_file(&key).unwrap();
        for v in ["v1.0.0-certificate", "v1.0.1-certificate", "v1.1.0-certificate"] {
            let dir = corpus(&format!("upstream/{v}"));
            // v1.0.x bundles do not record ignore_paths; upstream verifies them with one.
            let e = verify_with(&dir, &dir.join("model.sig"), Signer::Anchors(&ca), &["ignore-me".into()]).unwrap_err().to_string();
            assert!(e.contains("certificate chain rejected: signing certificate \"CN=intermediate-ca\" is a CA certificate"), "{v}: {e}");
            let r = verify_with(&dir, &dir.join("model.sig"), Signer::Key(&pk, &key), &["ignore-me".into()]);
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

/// Sigstore keyless bundles made by model-signing's upstream release tests (Fulcio certificate
/// for stefanb@us.ibm.com, logged in the public-good Rekor), verified offline.
mod keyless {
    use super::*;
    use glassbox_trust::signing::{Signer, verify_with};
    use glassbox_trust::sigstore::KeylessPolicy;
    use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, SIGSTORE_STAGING_TRUSTED_ROOT};

    const IDENTITY: &str = "stefanb@us.ibm.com";
    const ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";
    const VERSIONS: [&str; 4] = ["v0.3.1-sigstore", "v1.0.0-sigstore", "v1.0.1-sigstore", "v1.1.0-sigstore"];

    fn policy<'a>(identity: &'a str, issuer: &'a str, root: Option<&'a Path>) -> Signer<'a> {
        Signer::Keyless(KeylessPolicy { identity, issuer, trusted_root: root })
    }

    fn run(dir: &Path, sig: &Path, signer: Signer) -> Result<glassbox_trust::signing::SignatureReport, SignError> {
        // Bundles before v1.1 do not record ignore_paths; upstream verifies them with one.
        verify_with(dir, sig, signer, &["ignore-me".into()])
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("glassbox-keyless-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A copy of the v1.1.0 vector's model (without its signature) and its bundle as JSON.
    fn copy_vector(tag: &str) -> (PathBuf, serde_json::Value) {
        let src = corpus("upstream/v1.1.0-sigstore");
        let d = scratch(tag);
        for f in ["signme-1", "signme-2", "ignore-me"] {
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
        let bundle = serde_json::from_slice(&std::fs::read(src.join("model.sig")).unwrap()).unwrap();
        (d, bundle)
    }

    fn write_sig(dir: &Path, bundle: &serde_json::Value) -> PathBuf {
        let p = dir.join("model.sig");
        std::fs::write(&p, serde_json::to_vec(bundle).unwrap()).unwrap();
        p
    }

    #[test]
    fn upstream_vectors_verify_with_the_built_in_root() {
        for v in VERSIONS {
            let dir = corpus(&format!("upstream/{v}"));
            let r = run(&dir, &dir.join("model.sig"), policy(IDENTITY, ISSUER, None)).unwrap_or_else(|e| panic!("{v}: {e}"));
            let k = r.keyless.expect("keyless signer reported");
            assert_eq!((k.identity.as_str(), k.issuer.as_str()), (IDENTITY, ISSUER));
            assert!(k.logged_at.as_deref().is_some_and(|t| t.starts_with("2025-")), "{v}: {:?}", k.logged_at);
            assert_eq!(r.files, 2, "{v}");
        }
    }

    #[test]
    fn a_supplied_trusted_root_is_used_and_a_wrong_one_refused() {
        let d = scratch("roots");
        let good = d.join("public-good.json");
        std::fs::write(&good, SIGSTORE_PRODUCTION_TRUSTED_ROOT).unwrap();
        let v = corpus("upstream/v1.1.0-sigstore");
        let r = run(&v, &v.join("model.sig"), policy(IDENTITY, ISSUER, Some(&good))).unwrap();
        assert_eq!(r.keyless.unwrap().trusted_root, good.display().to_string());
        // The staging root has other CAs and logs: nothing of this bundle chains to it.
        let staging = d.join("staging.json");
        std::fs::write(&staging, SIGSTORE_STAGING_TRUSTED_ROOT).unwrap();
        let e = run(&v, &v.join("model.sig"), policy(IDENTITY, ISSUER, Some(&staging))).unwrap_err();
        assert!(matches!(e, SignError::Keyless { .. }), "{e}");
        // Not a trusted root at all.
        let junk = d.join("junk.json");
        std::fs::write(&junk, "{\"mediaType\": 3}").unwrap();
        let e = run(&v, &v.join("model.sig"), policy(IDENTITY, ISSUER, Some(&junk))).unwrap_err().to_string();
        assert!(e.contains("junk.json") && e.contains("not a Sigstore trusted root"), "{e}");
    }

    #[test]
    fn identity_and_issuer_must_match() {
        let v = corpus("upstream/v1.1.0-sigstore");
        let e = run(&v, &v.join("model.sig"), policy("eve@example.com", ISSUER, None)).unwrap_err().to_string();
        assert!(e.contains("identity mismatch") && e.contains("eve@example.com"), "{e}");
        let e = run(&v, &v.join("model.sig"), policy(IDENTITY, "https://accounts.google.com", None)).unwrap_err().to_string();
        assert!(e.contains("issuer mismatch"), "{e}");
    }

    #[test]
    fn changed_added_or_removed_files_fail() {
        let (d, b) = copy_vector("files");
        let sig = write_sig(&d, &b);
        run(&d, &sig, policy(IDENTITY, ISSUER, None)).unwrap();
        std::fs::write(d.join("signme-1"), "changed\n").unwrap();
        let e = run(&d, &sig, policy(IDENTITY, ISSUER, None)).unwrap_err().to_string();
        assert!(e.contains("signme-1 changed"), "{e}");
        std::fs::copy(corpus("upstream/v1.1.0-sigstore/signme-1"), d.join("signme-1")).unwrap();
        std::fs::write(d.join("extra"), "x").unwrap();
        let e = run(&d, &sig, policy(IDENTITY, ISSUER, None)).unwrap_err().to_string();
        assert!(e.contains("extra is not covered"), "{e}");
        std::fs::remove_file(d.join("extra")).unwrap();
        std::fs::remove_file(d.join("signme-2")).unwrap();
        let e = run(&d, &sig, policy(IDENTITY, ISSUER, None)).unwrap_err().to_string();
        assert!(e.contains("signme-2 is signed but missing"), "{e}");
    }

    #[test]
    fn modified_bundles_fail() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let (d, orig) = copy_vector("bundle");
        let check = |b: &serde_json::Value| run(&d, &write_sig(&d, b), policy(IDENTITY, ISSUER, None)).map(|_| ()).unwrap_err().to_string();
        // A flipped signature byte: the timestamp authority's countersignature no longer matches.
        let mut b = orig.clone();
        let mut s = b64.decode(b["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap()).unwrap();
        let n = s.len();
        s[n - 3] ^= 1;
        b["dsseEnvelope"]["signatures"][0]["sig"] = b64.encode(&s).into();
        let e = check(&b);
        assert!(e.contains("keyless") && e.contains("timestamp"), "{e}");
        // A payload that claims another digest for a file (re-encoded, signature unchanged).
        let mut b = orig.clone();
        let p = b64.decode(b["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
        let mut st: serde_json::Value = serde_json::from_slice(&p).unwrap();
        st["predicate"]["resources"][0]["digest"] = "00".repeat(32).into();
        b["dsseEnvelope"]["payload"] = b64.encode(serde_json::to_vec(&st).unwrap()).into();
        let e = check(&b);
        assert!(e.contains("keyless") && e.contains("DSSE signature verification failed"), "{e}");
        // A tampered inclusion proof, and no log entry at all.
        let mut b = orig.clone();
        b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0] = b64.encode([0u8; 32]).into();
        let e = check(&b);
        assert!(e.contains("keyless") && e.contains("inclusion proof"), "{e}");
        let mut b = orig.clone();
        b["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
        let e = check(&b);
        assert!(e.contains("inclusion proof"), "{e}");
        // A key-method bundle carries no certificate to check an identity against.
        let e = run(&corpus("model"), &corpus("model-p256.sig"), policy(IDENTITY, ISSUER, None)).unwrap_err().to_string();
        assert!(e.contains("no signing certificate"), "{e}");
    }
}
