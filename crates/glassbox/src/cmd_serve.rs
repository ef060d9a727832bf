//! serve: turn arguments into a server configuration and run it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use glassbox_server::{ModelSpec, ServerConfig};

use crate::cli::ServeArgs;

fn read_keys(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read API key file {}", path.display()))?;
    let keys: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect();
    if keys.is_empty() {
        bail!("API key file {} holds no keys", path.display());
    }
    if let Some(k) = keys.iter().find(|k| k.len() < 16) {
        bail!("API key file {}: a key of {} characters is too short (at least 16)", path.display(), k.len());
    }
    Ok(keys)
}

/// `--redact input,output`, its types and mode.
fn redact_config(a: &ServeArgs) -> Result<Option<glassbox_server::redaction::RedactConfig>> {
    if a.redact.is_empty() {
        if !a.redact_entities.is_empty() || a.redact_restore || a.redact_mode != "placeholder" || a.redact_deny_list.is_some() {
            bail!("--redact-entities, --redact-mode, --redact-restore and --redact-deny-list need --redact input and/or output");
        }
        return Ok(None);
    }
    let (mut input, mut output) = (false, false);
    for w in &a.redact {
        match w.trim() {
            "input" => input = true,
            "output" => output = true,
            other => bail!("--redact {other}: input, output or input,output"),
        }
    }
    if a.redact_restore && !input {
        bail!("--redact-restore puts back placeholders made from the input: it needs --redact input");
    }
    let entities = if a.redact_entities.is_empty() {
        glassbox_redact::Entity::ALL.to_vec()
    } else {
        a.redact_entities.iter().map(|n| glassbox_redact::Entity::from_name(n.trim()).with_context(|| format!("--redact-entities {n}: not a type glassbox recognises"))).collect::<Result<_>>()?
    };
    let mut salt = vec![0u8; 16];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut salt)).is_err() {
        salt = std::process::id().to_le_bytes().to_vec();
    }
    let Some(mode) = glassbox_redact::Mode::from_name(&a.redact_mode, salt) else { bail!("--redact-mode {}: placeholder, mask or hash", a.redact_mode) };
    if a.redact_restore && mode == glassbox_redact::Mode::Mask {
        bail!("--redact-restore cannot restore masks (every masked value looks alike): use placeholder or hash");
    }
    let deny = a.redact_deny_list.as_deref().map(glassbox_redact::DenyList::read).transpose()?.map(std::sync::Arc::new);
    Ok(Some(glassbox_server::redaction::RedactConfig { input, output, restore: a.redact_restore, entities, mode, deny }))
}

fn licences(r: &glassbox_audit::Report) -> String {
    if r.licences.is_empty() {
        return "no licence stated".into();
    }
    r.licences.iter().map(|l| format!("{} ({})", l.governing.id, l.category.unwrap_or("unclassified"))).collect::<Vec<_>>().join(" + ")
}

/// The audit each served adapter passes: its licence beside the base's, and — with --policy —
/// the same gate as the base (a failure refuses the adapter).
fn adapter_check(base: &std::path::Path, policy: Option<std::path::PathBuf>) -> Result<glassbox_server::AdapterCheck> {
    let policy = policy.map(|p| glassbox_audit::Policy::load(&p).map(|l| (p, l))).transpose()?;
    let base_report = glassbox_audit::audit_model_file(base, None).with_context(|| format!("cannot audit {}", base.display()))?;
    let base_licences = licences(&base_report);
    Ok(glassbox_server::AdapterCheck(std::sync::Arc::new(move |path: &std::path::Path| {
        let r = glassbox_audit::audit_model_file(path, policy.as_ref().map(|(_, l)| l)).map_err(|e| format!("cannot audit {}: {e}", path.display()))?;
        if let Some((file, _)) = &policy {
            let failures: Vec<String> = r.failures().map(|c| format!("{}: {}", c.rule, c.reason)).collect();
            if !failures.is_empty() {
                return Err(format!("adapter {} fails policy {}: {}", path.display(), file.display(), failures.join("; ")));
            }
        }
        Ok(format!("licence {}; base licence {base_licences}{}", licences(&r), if policy.is_some() { "; meets the policy" } else { "" }))
    })))
}

pub fn serve(a: ServeArgs) -> Result<()> {
    if a.draft.is_some() && a.models.len() > 1 {
        bail!("--draft serves one model with one draft; {} models given", a.models.len());
    }
    if a.alias.len() > a.models.len() {
        bail!("{} aliases given for {} models", a.alias.len(), a.models.len());
    }
    if a.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let mut models: Vec<ModelSpec> = a
        .models
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = a.alias.get(i).cloned().unwrap_or_else(|| p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| format!("model{i}")));
            ModelSpec { path: p.clone(), name, steering: None, adapters: Vec::new() }
        })
        .collect();
    for m in &models {
        if !m.path.is_file() {
            bail!("model file {} does not exist", m.path.display());
        }
    }
    for spec in &a.steer {
        let (target, rest) = match spec.split_once('=') {
            Some((alias, rest)) => (models.iter().position(|m| m.name == alias).with_context(|| format!("--steer {spec}: no served model is named {alias}"))?, rest),
            None if models.len() == 1 => (0, spec.as_str()),
            None => bail!("--steer {spec}: {} models are served; name one as ALIAS=FILE", models.len()),
        };
        let m = &mut models[target];
        if m.steering.is_some() {
            bail!("--steer {spec}: model {} is already steered (one --steer per model)", m.name);
        }
        let (s, what) = crate::cmd_abliterate::run_edits(&m.path, Some(rest), None)?;
        what.iter().for_each(|w| eprintln!("{}: {w}", m.name));
        m.steering = Some(s);
    }
    for spec in &a.lora {
        let Some((name, rest)) = spec.split_once('=') else { bail!("--lora {spec}: expected NAME=FILE[:SCALE]") };
        if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            bail!("--lora {spec}: the name must be 1 to 256 characters without spaces or control characters");
        }
        if models.len() != 1 {
            bail!("--lora {spec}: {} base models are served; adapters are served over one base (run one server per base)", models.len());
        }
        if models.iter().any(|m| m.name == name) || models[0].adapters.iter().any(|x| x.name == name) {
            bail!("--lora {spec}: the model id {name:?} is already taken");
        }
        let (path, scale) = crate::cmd_lora::parse_spec(rest)?;
        if !path.is_file() {
            bail!("--lora {spec}: adapter file {} does not exist", path.display());
        }
        models[0].adapters.push(glassbox_server::AdapterSpec { name: name.to_string(), path, scale });
    }
    if let Some(p) = &a.policy {
        // Verify each model first (the same pins the server will check), then gate on the
        // policy; adapters pass the same gate in `adapter_check` once verified.
        let trust = crate::cmd_trust::policy(&crate::cli::TrustArgs { lock: a.lock.clone(), sha256: None, locked: a.locked })?;
        for m in &models {
            glassbox_trust::open_verified(&m.path, &trust).with_context(|| format!("cannot verify {}", m.path.display()))?;
            crate::cmd_audit::gate(&m.path, p)?;
        }
    }
    // A .toml key file names each key with its models and limits; any other is one key a line.
    let (api_keys, key_policies) = match &a.api_key_file {
        Some(p) if p.extension().is_some_and(|e| e == "toml") => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read API key file {}", p.display()))?;
            (vec![], glassbox_server::keys::parse_keys_toml(&text).map_err(|e| anyhow::anyhow!("API key file {}: {e}", p.display()))?)
        }
        Some(p) => (read_keys(p)?, vec![]),
        None => (vec![], vec![]),
    };
    if a.adapter_dir.is_some() && api_keys.is_empty() && key_policies.is_empty() {
        bail!("--adapter-dir loads files on the server at a client's request: it needs --api-key-file");
    }
    if let Some(d) = &a.adapter_dir
        && !d.is_dir()
    {
        bail!("--adapter-dir {}: not a directory", d.display());
    }
    let redact = redact_config(&a)?;
    let adapter_check = if models[0].adapters.is_empty() && a.adapter_dir.is_none() { None } else { Some(adapter_check(&models[0].path, a.policy.clone())?) };
    let mut engine = crate::cmd_run::engine_options(a.ctx_size, a.threads)?;
    engine.cache_types = (a.cache_type_k, a.cache_type_v);
    // The same trust policy as every other loading command (no --sha256: there may be several models).
    let policy = crate::cmd_trust::policy(&crate::cli::TrustArgs { lock: a.lock.clone(), sha256: None, locked: a.locked })?;
    let cfg = ServerConfig {
        trust: policy,
        host: a.host,
        port: a.port,
        api_keys,
        key_policies,
        insecure_no_auth: a.insecure_no_auth,
        parallel: a.parallel,
        max_queue: a.max_queue,
        max_body_bytes: a.max_body,
        max_connections: a.max_connections as usize,
        header_timeout: Duration::from_secs(a.header_timeout),
        body_timeout: Duration::from_secs(a.body_timeout),
        send_timeout: Duration::from_secs(a.send_timeout),
        engine,
        prefill_chunk: a.prefill_chunk.max(1),
        lookup_draft: if a.lookup { a.draft_max as usize } else { 0 },
        draft: a.draft.clone().map(|p| (p, a.draft_max as usize)),
        log_content: a.log_content,
        json_logs: a.log_format == "json",
        drain_delay: Duration::from_secs(a.drain_delay),
        shutdown_grace: Duration::from_secs(a.shutdown_grace),
        adapter_dir: a.adapter_dir.clone(),
        adapter_check,
        redact,
        audit_log: a.audit_log.clone(),
        audit_log_max_bytes: a.audit_log_max_bytes,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GLASSBOX_LOG").unwrap_or_else(|_| "info".into());
    if cfg.json_logs {
        tracing_subscriber::fmt().json().with_writer(std::io::stderr).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).with_env_filter(filter).init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(glassbox_server::serve(models, cfg))?;
    Ok(())
}

/// `glassbox audit-log verify`: 0 intact, 1 broken (the record and the reason named).
pub fn verify_log(a: crate::cli::AuditLogVerifyArgs) -> Result<i32> {
    use std::io::Write;
    let files = glassbox_auditlog::files_of(&a.file)?;
    if files.is_empty() {
        bail!("audit log {} not found", a.file.display());
    }
    let r = glassbox_auditlog::verify(&files, a.from_any);
    let mut out = std::io::stdout().lock();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    match r {
        Ok(v) => {
            if a.json {
                writeln!(out, "{}", serde_json::json!({"intact": true, "files": names, "records": v.records, "first_seq": v.first_seq, "last_seq": v.last_seq, "head": v.head, "partial_tail_bytes": v.partial_tail}))?;
            } else {
                writeln!(out, "intact: {} records in {} file(s), seq {}..{}, head {}", v.records, files.len(), v.first_seq.map_or("-".into(), |s| s.to_string()), v.last_seq.map_or("-".into(), |s| s.to_string()), v.head)?;
                if v.partial_tail > 0 {
                    writeln!(out, "note: the active file ends in an incomplete record of {} bytes (the writer stopped mid-line); everything before it verifies", v.partial_tail)?;
                }
            }
            Ok(0)
        }
        Err(e @ glassbox_auditlog::Error::Broken { .. }) => {
            if a.json {
                writeln!(out, "{}", serde_json::json!({"intact": false, "files": names, "error": e.to_string()}))?;
            } else {
                writeln!(out, "BROKEN: {e}")?;
            }
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}
