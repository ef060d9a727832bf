//! Per-file budgets shared by every analyser that works on one file (all pickles, archive
//! members and nesting levels), and the findings sink, which is capped too: memory spent on
//! findings must not grow with the input either.

use crate::{Finding, Limits, Severity};

/// Start of every finding that reports an incomplete analysis.
pub(crate) const INCOMPLETE: &str = "could not fully analyse: ";

pub(crate) struct Ctx<'l> {
    pub lim: &'l Limits,
    findings: Vec<Finding>,
    /// Findings reported, listed or not.
    emitted: usize,
    dropped: usize,
    dropped_max: Option<Severity>,
    pub opcodes_left: u64,
    pub inflate_budget: u64,
    pub inflate_left: u64,
    /// Set once the inflate budget has been reported exhausted (reported once per file).
    pub inflate_exhausted: bool,
    pub held_budget: u64,
    pub held_left: u64,
    pub member_budget: u64,
    pub member_left: u64,
    /// Set once the member budget has been reported exhausted.
    pub member_exhausted: bool,
}

impl<'l> Ctx<'l> {
    pub fn new(lim: &'l Limits, input_len: usize) -> Ctx<'l> {
        let len = input_len as u64;
        let inflate_budget = lim.inflate_base.saturating_add(lim.inflate_per_byte.saturating_mul(len));
        let held_budget = lim.held_base.saturating_add(len / 2);
        let member_budget = lim.member_base.saturating_add(lim.member_per_byte.saturating_mul(len));
        Ctx {
            lim,
            findings: Vec::new(),
            emitted: 0,
            dropped: 0,
            dropped_max: None,
            opcodes_left: lim.opcodes,
            inflate_budget,
            inflate_left: inflate_budget,
            inflate_exhausted: false,
            held_budget,
            held_left: held_budget,
            member_budget,
            member_left: member_budget,
            member_exhausted: false,
        }
    }

    pub fn push(&mut self, f: Finding) {
        self.emitted += 1;
        if self.findings.len() < self.lim.findings {
            self.findings.push(f);
        } else {
            self.dropped += 1;
            self.dropped_max = self.dropped_max.max(Some(f.severity));
        }
    }

    /// A high finding: the analysis of `location` stopped before its end. `what` says which
    /// limit (and its value) or which part could not be analysed.
    pub fn incomplete(&mut self, location: &str, offset: Option<u64>, what: &str) {
        self.push(Finding::new(Severity::High, "incomplete-analysis", location, offset, format!("{INCOMPLETE}{what}")));
    }

    pub fn emitted(&self) -> usize {
        self.emitted
    }

    /// The findings, with one more summarising those past the cap (at their highest severity,
    /// so the verdict is never lowered by the cap).
    pub fn finish(mut self, location: &str) -> Vec<Finding> {
        if let Some(sev) = self.dropped_max {
            self.findings.push(Finding::new(sev, "more-findings", location, None, format!("{} more findings not listed (limit {} per file)", self.dropped, self.lim.findings)));
        }
        self.findings
    }
}
