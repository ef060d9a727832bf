//! Human-readable reports: a terminal report (colour only when asked, i.e. on a TTY) and
//! Markdown for tickets and reviews. Both say the same things as the JSON.

use std::fmt::Write as _;

use crate::{Report, Severity};

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn sev(&self, s: Severity) -> String {
        match s {
            Severity::High => self.paint("1;31", "HIGH  "),
            Severity::Medium => self.paint("33", "MEDIUM"),
            Severity::Info => self.paint("36", "info  "),
        }
    }
    fn verdict(&self, v: &str) -> String {
        let code = match v {
            "forbidden" => "31",
            "conditional" | "required" => "33",
            "allowed" => "32",
            _ => "2",
        };
        self.paint(code, &format!("{v:<13}"))
    }
}

/// The terminal report.
pub fn human(r: &Report, color: bool) -> String {
    let st = Style { color };
    let mut o = String::new();
    let name = r.evidence.name.clone().unwrap_or_else(|| r.path.display().to_string());
    let _ = writeln!(o, "{} {}", st.bold("audit"), name);
    let _ = writeln!(o, "  path      {}", r.path.display());
    for w in &r.evidence.weights {
        let _ = writeln!(o, "  weights   {} ({}, {} bytes, sha256 {})", w.path.strip_prefix(&r.evidence.root).unwrap_or(&w.path).display(), w.format, w.size, w.sha256);
    }
    let _ = writeln!(o, "\n{}", st.bold("licence"));
    if r.licences.is_empty() {
        let _ = writeln!(o, "  none found");
    }
    for l in &r.licences {
        let g = &l.governing;
        let _ = writeln!(o, "  {} — {} [{}] from {}", st.bold(&g.name), g.id, l.category.unwrap_or("no clause table"), g.basis);
        for s in &g.sources {
            let _ = writeln!(o, "      source: {s}");
        }
        for c in &l.clauses {
            let _ = writeln!(o, "    {:<30} {} {}", c.title, st.verdict(c.verdict), c.summary);
            if !c.quote.is_empty() {
                let _ = writeln!(o, "    {:<30} {} \"{}\" ({})", "", " ".repeat(13), ellipsis(&c.quote, 160), c.found_in);
            }
        }
    }
    for p in &r.policies {
        let _ = writeln!(o, "  use policy: {} ({})", p.name, p.sources.join(", "));
    }
    if r.evidence.licence_files.iter().any(|f| f.identification.key.is_some() || f.identification.id != "unknown") {
        let _ = writeln!(o, "\n{}", st.bold("licence files"));
        for f in &r.evidence.licence_files {
            let i = &f.identification;
            let _ = writeln!(o, "  {} → {} ({}, confidence {:.2}, lines {}-{})", f.path.strip_prefix(&r.evidence.root).unwrap_or(&f.path).display(), i.name, i.id, i.confidence, i.lines.0, i.lines.1);
        }
    }
    let _ = writeln!(o, "\n{}", st.bold("lineage"));
    for (i, l) in r.lineage.iter().enumerate() {
        let arrow = if i == 0 { "  ".to_owned() } else { format!("  {}└─ {} ", "   ".repeat(i - 1), l.relation.as_deref().unwrap_or("derived from")) };
        let lic = l.license_name.as_ref().map(|n| format!(" [{n}]")).unwrap_or_default();
        let _ = writeln!(o, "{arrow}{}{lic}  ({})", l.name, l.source);
    }
    let _ = writeln!(o, "\n{}", st.bold("findings"));
    if r.findings.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for f in &r.findings {
        let _ = writeln!(o, "  {} {}", st.sev(f.severity), f.message);
    }
    let _ = writeln!(o, "\n{}", st.bold("openness (Model Openness Framework)"));
    let _ = writeln!(o, "  {}", st.bold(&r.openness.verdict));
    for c in &r.openness.components {
        let mark = match c.status {
            crate::openness::Status::Present => st.paint("32", "present   "),
            crate::openness::Status::Referenced => st.paint("33", "referenced"),
            crate::openness::Status::Missing => st.paint("2", "missing   "),
        };
        let _ = writeln!(o, "    class {:<3} {:<32} {mark} {}", crate::openness::class_name(c.class), c.name, c.evidence);
    }
    if !r.policy.is_empty() {
        let _ = writeln!(o, "\n{}", st.bold("policy"));
        for c in &r.policy {
            let _ = writeln!(o, "  {} {:<28} {}", if c.pass { st.paint("32", "pass") } else { st.paint("1;31", "FAIL") }, c.rule, c.reason);
        }
        let _ = writeln!(o, "  {}", if r.policy_pass { st.paint("1;32", "PASS") } else { st.paint("1;31", "FAIL: the model does not meet the policy") });
    }
    o
}

fn ellipsis(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown report.
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let name = r.evidence.name.clone().unwrap_or_else(|| r.path.display().to_string());
    let _ = writeln!(o, "# Audit: {}\n", md_cell(&name));
    let _ = writeln!(o, "**Openness:** {}\n", md_cell(&r.openness.verdict));
    if !r.policy.is_empty() {
        let _ = writeln!(o, "**Policy:** {}\n", if r.policy_pass { "pass" } else { "FAIL" });
    }
    let _ = writeln!(o, "## Weights\n\n| file | format | bytes | sha256 |\n|---|---|---|---|");
    for w in &r.evidence.weights {
        let _ = writeln!(o, "| {} | {} | {} | `{}` |", md_cell(&w.path.strip_prefix(&r.evidence.root).unwrap_or(&w.path).display().to_string()), w.format, w.size, w.sha256);
    }
    for l in &r.licences {
        let g = &l.governing;
        let _ = writeln!(o, "\n## Licence: {} (`{}`)\n\nBasis: {}; sources: {}\n", md_cell(&g.name), g.id, g.basis, md_cell(&g.sources.join("; ")));
        if !l.clauses.is_empty() {
            let _ = writeln!(o, "| topic | verdict | summary | the licence says |\n|---|---|---|---|");
            for c in &l.clauses {
                let q = if c.quote.is_empty() { String::new() } else { format!("“{}” ({})", md_cell(&c.quote), md_cell(&c.found_in)) };
                let _ = writeln!(o, "| {} | {} | {} | {} |", c.title, c.verdict, md_cell(&c.summary), q);
            }
        }
    }
    let _ = writeln!(o, "\n## Lineage\n");
    for (i, l) in r.lineage.iter().enumerate() {
        let _ = writeln!(o, "{}- {}{}{} — {}", "  ".repeat(i), md_cell(&l.name), l.relation.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(), l.license_name.as_ref().map(|n| format!(" [{n}]")).unwrap_or_default(), md_cell(&l.source));
    }
    let _ = writeln!(o, "\n## Findings\n");
    if r.findings.is_empty() {
        let _ = writeln!(o, "None.");
    }
    for f in &r.findings {
        let _ = writeln!(o, "- **{}** {}", f.severity.as_str(), md_cell(&f.message));
    }
    let _ = writeln!(o, "\n## Openness (MOF)\n\n| class | component | status | evidence |\n|---|---|---|---|");
    for c in &r.openness.components {
        let _ = writeln!(o, "| {} | {} | {:?} | {} |", crate::openness::class_name(c.class), c.name, c.status, md_cell(&c.evidence));
    }
    if !r.policy.is_empty() {
        let _ = writeln!(o, "\n## Policy\n\n| rule | result | reason |\n|---|---|---|");
        for c in &r.policy {
            let _ = writeln!(o, "| {} | {} | {} |", c.rule, if c.pass { "pass" } else { "FAIL" }, md_cell(&c.reason));
        }
    }
    o
}
