//! Prompts as lm-evaluation-harness builds them, and its split of context and continuation.

use glassbox_engine::Tokenizer;

use crate::McItem;
use crate::metrics::SplitMix64;

/// The text before a question's choices: the task description, then `shots` solved examples
/// (context + gold choice, each followed by a blank line, as lm-eval's fewshot delimiter), then
/// the question's own context. Examples are drawn without replacement from the other questions
/// of the same group (all questions when the task has no groups), seeded by `seed` and the
/// question's index, so a run is reproducible. Fails when the group has fewer than `shots`
/// other questions.
pub fn build_context(items: &[McItem], i: usize, shots: usize, seed: u64) -> Result<String, String> {
    let it = &items[i];
    let mut out = String::new();
    if let Some(d) = &it.description {
        out.push_str(d);
    }
    if shots > 0 {
        let pool: Vec<usize> = (0..items.len()).filter(|&j| j != i && items[j].group == it.group).collect();
        if pool.len() < shots {
            return Err(format!(
                "question {}: {shots} examples asked, its group has {} other questions",
                it.id, pool.len()
            ));
        }
        let mut rng = SplitMix64(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut pool = pool;
        for k in 0..shots {
            let pick = k + rng.below(pool.len() - k);
            pool.swap(k, pick);
            let ex = &items[pool[k]];
            out.push_str(&ex.context);
            out.push_str(&ex.choices[ex.gold]);
            out.push_str("\n\n");
        }
    }
    out.push_str(&it.context);
    Ok(out)
}

/// lm-eval's `_encode_pair`: trailing whitespace of the context moves to the continuation;
/// the context is tokenized alone, context + continuation together, and the continuation's
/// tokens are whatever the whole has beyond the context's token count. BOS starts both when
/// the model adds one; special-token text is not parsed. An empty context is lm-eval's prefix
/// token (BOS, else EOS) — unless the continuation itself starts with that token, which then
/// serves as the context (lm-eval's `loglikelihood`). A context of only whitespace is treated
/// the same way once its whitespace has moved.
pub fn encode_pair(tok: &Tokenizer, context: &str, continuation: &str) -> (Vec<u32>, Vec<u32>) {
    let trimmed = context.trim_end();
    let (ctx, cont) = if trimmed.len() < context.len() {
        (trimmed.to_string(), format!("{}{continuation}", &context[trimmed.len()..]))
    } else {
        (context.to_string(), continuation.to_string())
    };
    if ctx.is_empty() {
        let c = tok.encode_with(&cont, false, false, false);
        return match tok.bos.or(tok.eos) {
            Some(p) if c.first() != Some(&p) => (vec![p], c),
            _ if !c.is_empty() => (c[..1].to_vec(), c[1..].to_vec()),
            _ => (Vec::new(), c),
        };
    }
    let ctx_enc = tok.encode_with(&ctx, tok.add_bos, false, false);
    let whole = tok.encode_with(&format!("{ctx}{cont}"), tok.add_bos, false, false);
    let cont_enc = whole.get(ctx_enc.len()..).unwrap_or_default().to_vec();
    (ctx_enc, cont_enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, ctx: &str, group: Option<&str>) -> McItem {
        McItem {
            id: id.into(),
            context: ctx.into(),
            choices: vec![" a".into(), " b".into()],
            gold: 1,
            description: Some("D.\n\n".into()),
            group: group.map(Into::into),
            biased: vec![],
            unknown: vec![],
        }
    }

    #[test]
    fn shots_come_from_the_same_group_never_the_question_and_are_seeded() {
        let items: Vec<McItem> = (0..6).map(|i| item(&i.to_string(), &format!("Q{i}:"), Some(if i < 3 { "x" } else { "y" }))).collect();
        let c = build_context(&items, 0, 2, 7).unwrap();
        assert!(c.starts_with("D.\n\n") && c.ends_with("\n\nQ0:"), "{c:?}");
        assert!(c.contains("Q1: b\n\n") && c.contains("Q2: b\n\n") && !c.contains("Q3"), "{c:?}");
        assert_eq!(c, build_context(&items, 0, 2, 7).unwrap());
        assert!(build_context(&items, 0, 3, 7).unwrap_err().contains("2 other questions"));
        assert_eq!(build_context(&items, 4, 0, 7).unwrap(), "D.\n\nQ4:");
    }
}
