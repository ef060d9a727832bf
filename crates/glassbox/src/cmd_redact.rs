//! `glassbox redact`: personal data found and replaced, with character offsets.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use glassbox_redact::{Entity, Mode};

fn random_salt() -> Vec<u8> {
    let mut b = vec![0u8; 16];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        // The standard library's per-process random hash keys.
        use std::hash::{BuildHasher, Hasher};
        for c in b.chunks_mut(8) {
            let h = std::collections::hash_map::RandomState::new().build_hasher().finish();
            c.copy_from_slice(&h.to_le_bytes()[..c.len()]);
        }
    }
    b
}

pub fn redact(a: crate::cli::RedactArgs) -> Result<()> {
    let text = match (&a.text, &a.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("cannot read {} as UTF-8 text", f.display()))?,
        (None, None) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("cannot read standard input as UTF-8 text")?;
            s
        }
    };
    let keep: Vec<Entity> = if a.entities.is_empty() {
        Entity::ALL.to_vec()
    } else {
        a.entities
            .iter()
            .map(|n| Entity::from_name(n.trim()).with_context(|| format!("--entities {n}: not a type glassbox recognises ({})", Entity::ALL.iter().map(|e| e.short()).collect::<Vec<_>>().join(", "))))
            .collect::<Result<_>>()?
    };
    let salt = a.salt.as_ref().map(|s| s.as_bytes().to_vec()).unwrap_or_else(random_salt);
    let Some(mode) = Mode::from_name(&a.mode, salt) else { bail!("--mode {}: placeholder, mask or hash", a.mode) };
    let deny = a.deny_list.as_deref().map(glassbox_redact::DenyList::read).transpose()?;
    let findings = glassbox_redact::analyze_with(&text, deny.as_ref())?;
    let (out, replaced) = glassbox_redact::anonymize(&text, &findings, &keep, &mode);
    let mut stdout = std::io::stdout().lock();
    if a.json {
        let entities: Vec<_> = replaced
            .iter()
            .map(|r| serde_json::json!({"type": r.entity.name(), "start": r.start_char, "end": r.end_char, "text": r.text, "score": r.score, "replacement": r.replacement}))
            .collect();
        writeln!(stdout, "{}", serde_json::json!({"text": out, "entities": entities}))?;
    } else {
        write!(stdout, "{out}")?;
        if !out.ends_with('\n') {
            writeln!(stdout)?;
        }
    }
    Ok(())
}
