//! lock, verify, and the trust policy every model-loading command applies.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use glassbox_trust::{Lockfile, Policy, Verdict};
use serde_json::json;

use crate::cli::{LockArgs, PullArgs, ScanArgs, SignArgs, TrustArgs, VerifyArgs};

/// The lockfile to use: the one named, else ./glassbox.lock when present.
pub fn lockfile(named: &Option<PathBuf>) -> Result<Option<Lockfile>> {
    let path = match named {
        Some(p) => p.clone(),
        None if Path::new("glassbox.lock").is_file() => PathBuf::from("glassbox.lock"),
        None => return Ok(None),
    };
    Ok(Some(Lockfile::load(&path).with_context(|| format!("cannot use lockfile {}", path.display()))?))
}

pub fn policy(t: &TrustArgs) -> Result<Policy> {
    Ok(Policy { sha256: t.sha256.clone(), lockfile: lockfile(&t.lock)?, locked: t.locked, store: Some(glassbox_trust::default_store()) })
}

pub fn announce(path: &Path, sha256: &str, verdict: &Verdict, policy: &Policy) {
    if *verdict == Verdict::PinnedOnFirstUse {
        let store = policy.store.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        eprintln!("note: {} was not pinned; pinned on first use as sha256 {sha256} in {store} (a later change is refused)", path.display());
    }
}

fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?.collect::<Result<_, _>>()?;
                entries.sort_by_key(|e| e.path());
                for e in entries {
                    let ft = e.file_type()?;
                    if ft.is_dir() {
                        stack.push(e.path());
                    } else if ft.is_file() {
                        out.push(e.path());
                    }
                }
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            anyhow::bail!("{} is not a file or folder", p.display());
        }
    }
    Ok(out)
}

pub fn lock(a: LockArgs) -> Result<()> {
    let files = expand(&a.paths)?;
    let out = std::fs::canonicalize(a.output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")))?.join(a.output.file_name().unwrap_or_default());
    let files: Vec<PathBuf> = files.into_iter().filter(|f| std::fs::canonicalize(f).map(|c| c != out).unwrap_or(true)).collect();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let hashed = glassbox_trust::hash_files(&files, threads)?;
    Lockfile::write(&a.output, &hashed)?;
    for (p, size, sha) in &hashed {
        eprintln!("pinned {} ({size} bytes) sha256 {sha}", p.display());
    }
    eprintln!("wrote {} ({} files)", a.output.display(), hashed.len());
    Ok(())
}

/// Exit codes: 0 every file matches its pin, 1 a mismatch or an unpinned file, 2 usage/IO.
pub fn verify(a: VerifyArgs) -> Result<()> {
    crate::exit_with(run_verify(&a))
}

pub fn sign(a: SignArgs) -> Result<()> {
    glassbox_trust::signing::sign(&a.path, &a.private_key, &a.output)?;
    eprintln!("signed {} → {}", a.path.display(), a.output.display());
    Ok(())
}

/// `verify DERIVED --base BASE`: the derived file's recorded base digest against the base file.
fn verify_base(a: &VerifyArgs, base: &Path) -> Result<i32> {
    let f = glassbox_gguf::GgufFile::open(&a.path).with_context(|| format!("cannot read {}", a.path.display()))?;
    let recorded = f.gguf().get_str("glassbox.lineage.base.sha256").ok().flatten().map(str::to_ascii_lowercase);
    let digest = glassbox_trust::hash_files(std::slice::from_ref(&base.to_path_buf()), 1)
        .with_context(|| format!("cannot hash {}", base.display()))?
        .into_iter()
        .next()
        .map(|(_, _, sha)| sha.to_ascii_lowercase())
        .ok_or_else(|| anyhow::anyhow!("cannot hash {}", base.display()))?;
    let ok = recorded.as_deref() == Some(digest.as_str());
    let reason = match &recorded {
        None => format!("{} records no base (no glassbox.lineage.base.sha256)", a.path.display()),
        Some(r) if ok => format!("{} was made from {} (sha256 {r})", a.path.display(), base.display()),
        Some(r) => format!("{} records base sha256 {r}; {} is {digest}", a.path.display(), base.display()),
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({"ok": ok, "recorded_base_sha256": recorded, "base": base.display().to_string(), "base_sha256": digest, "reason": reason}))?;
    } else {
        writeln!(out, "{} {reason}", if ok { "ok:" } else { "MISMATCH:" })?;
    }
    Ok(if ok { 0 } else { 1 })
}

fn verify_signature(a: &VerifyArgs, sig: &Path) -> Result<i32> {
    use glassbox_trust::signing::{PublicKey, SignError, Signer, verify_with};
    use glassbox_trust::sigstore::KeylessPolicy;
    let result = match (&a.public_key, &a.certificate_chain, &a.identity, &a.issuer) {
        (Some(key), None, None, _) => {
            let pk = PublicKey::from_pem_file(key)?;
            verify_with(&a.path, sig, Signer::Key(&pk, key), &a.ignore_path)
        }
        (None, Some(anchors), None, _) => verify_with(&a.path, sig, Signer::Anchors(anchors), &a.ignore_path),
        (None, None, Some(identity), Some(issuer)) => {
            let policy = KeylessPolicy { identity, issuer, trusted_root: a.trusted_root.as_deref() };
            verify_with(&a.path, sig, Signer::Keyless(policy), &a.ignore_path)
        }
        _ => anyhow::bail!("--signature needs one of --public-key, --certificate-chain, or --identity with --issuer"),
    };
    let mut out = std::io::stdout().lock();
    match result {
        Ok(r) => {
            let signer = r.keyless.as_ref().map(|k| json!({"identity": k.identity, "issuer": k.issuer, "logged_at": k.logged_at, "trusted_root": k.trusted_root}));
            if a.json {
                writeln!(out, "{}", json!({"ok": true, "subject": r.subject_name, "subject_sha256": r.subject_sha256, "method": r.method, "hash_type": r.hash_type, "files": r.files, "keyless": signer}))?;
            } else {
                writeln!(out, "ok      signature {} ({} files, {} / {}) subject {} sha256 {}", sig.display(), r.files, r.method, r.hash_type, r.subject_name, r.subject_sha256)?;
                if let Some(k) = &r.keyless {
                    writeln!(out, "        signed by {} (issuer {}), logged {} — trusted root: {}", k.identity, k.issuer, k.logged_at.as_deref().unwrap_or("at an unknown time"), k.trusted_root)?;
                }
            }
            Ok(0)
        }
        // A bad key file is a usage error; with a certificate chain it means the chain is bad.
        Err(e @ SignError::Key { .. }) if a.certificate_chain.is_none() => Err(e.into()),
        Err(e @ (SignError::BadSignature { .. } | SignError::Mismatch { .. } | SignError::Key { .. } | SignError::Keyless { .. })) => {
            if a.json {
                writeln!(out, "{}", json!({"ok": false, "error": e.to_string()}))?;
            } else {
                writeln!(out, "FAILED  {e}")?;
            }
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

fn run_verify(a: &VerifyArgs) -> Result<i32> {
    if let Some(sig) = &a.signature {
        return verify_signature(a, sig);
    }
    if let Some(base) = &a.base {
        return verify_base(a, base);
    }
    let files = expand(std::slice::from_ref(&a.path))?;
    let policy = match &a.sha256 {
        Some(d) => {
            anyhow::ensure!(files.len() == 1, "--sha256 checks a single file, {} has {}", a.path.display(), files.len());
            Policy { sha256: Some(d.clone()), ..Policy::default() }
        }
        None => Policy { lockfile: Some(Lockfile::load(&a.lock).with_context(|| format!("cannot use lockfile {}", a.lock.display()))?), locked: true, ..Policy::default() },
    };
    let lock_canonical = std::fs::canonicalize(&a.lock).ok();
    let mut results = Vec::new();
    let mut failed = false;
    for f in files {
        if lock_canonical.is_some() && std::fs::canonicalize(&f).ok() == lock_canonical {
            continue;
        }
        match glassbox_trust::open_verified(&f, &policy) {
            Ok(v) => results.push(json!({"path": f.display().to_string(), "ok": true, "sha256": v.sha256, "size": v.size})),
            Err(e @ (glassbox_trust::Error::Io { .. } | glassbox_trust::Error::BadDigest(_))) => return Err(e.into()),
            Err(e) => {
                failed = true;
                results.push(json!({"path": f.display().to_string(), "ok": false, "error": e.to_string()}));
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({"ok": !failed, "files": results}))?;
    } else {
        for r in &results {
            if r["ok"] == true {
                writeln!(out, "ok      {}  {}", r["sha256"].as_str().unwrap_or(""), r["path"].as_str().unwrap_or(""))?;
            } else {
                writeln!(out, "FAILED  {}", r["error"].as_str().unwrap_or(""))?;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Exit codes: 0 nothing high, 1 a high finding (possible code execution), 2 usage/IO.
pub fn scan(a: ScanArgs) -> Result<()> {
    let report = match glassbox_scan::scan_path(&a.path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot scan {}: {e}", a.path.display());
            std::process::exit(2);
        }
    };
    let mut out = std::io::stdout().lock();
    if a.sarif {
        writeln!(out, "{}", glassbox_scan::to_sarif(&report))?;
    } else if a.json {
        writeln!(out, "{}", json!({"files": report.files, "high": report.has_high(), "findings": report.findings}))?;
    } else {
        for f in &report.findings {
            let sev = format!("{:?}", f.severity).to_uppercase();
            let at = f.offset.map(|o| format!(" @{o}")).unwrap_or_default();
            writeln!(out, "{sev:<6} {}{at}: {}", f.location, f.message)?;
        }
        writeln!(out, "{} files scanned, {} findings{}", report.files, report.findings.len(), if report.has_high() { ", HIGH: do not load" } else { "" })?;
    }
    out.flush()?;
    std::process::exit(if report.has_high() { 1 } else { 0 });
}

pub fn pull(a: PullArgs) -> Result<()> {
    let url = glassbox_pull::resolve(&a.source)?;
    let name = glassbox_pull::file_name(&url).with_context(|| format!("cannot tell a file name from {url}"))?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last = std::time::Instant::now();
    let p = glassbox_pull::pull(&url, &a.sha256, &a.dir, &name, |done, total| {
        if tty && last.elapsed().as_millis() > 200 {
            last = std::time::Instant::now();
            match total {
                Some(t) if t > 0 => eprint!("\r{name}: {:.1} / {:.1} MB ({:.0}%)", done as f64 / 1e6, t as f64 / 1e6, 100.0 * done as f64 / t as f64),
                _ => eprint!("\r{name}: {:.1} MB", done as f64 / 1e6),
            }
        }
    })?;
    if tty {
        eprintln!();
    }
    Lockfile::add(&a.lock, &[(p.path.clone(), p.size, p.sha256.clone())])?;
    let how = if p.already_present { "already present".to_owned() } else if p.resumed_from > 0 { format!("resumed at byte {}", p.resumed_from) } else { "downloaded".to_owned() };
    eprintln!("{} ({} bytes, {how}) sha256 {} verified; pinned in {}", p.path.display(), p.size, p.sha256, a.lock.display());
    Ok(())
}
