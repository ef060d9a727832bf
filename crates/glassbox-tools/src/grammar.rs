//! Grammars that hold tool calls to their functions' schemas.

use glassbox_constrain::{comma, lit, member, Error as SchemaError, Grammar, Limits, SchemaGrammar, Sym};
use serde_json::{json, Value};

use crate::format::Format;
use crate::parse::{HERMES_CLOSE, HERMES_OPEN};
use crate::{err, Choice, Function, ToolError};

/// A grammar for calls, and the text that arms it (`None`: it holds from the first token).
pub struct CallGrammar {
    pub grammar: Grammar,
    pub trigger: Option<String>,
}

/// Compile every function's parameters (a 400 for an invalid schema, or for one a `strict`
/// function uses that cannot be enforced), then the grammar the choice needs: `required` and
/// a named function hold the whole reply to calls; `auto` holds the calls' bodies in the
/// Hermes format when some function is `strict`; otherwise the reply is free.
pub fn call_grammar(format: Format, functions: &[Function], choice: &Choice, parallel: bool, limits: &Limits) -> Result<Option<CallGrammar>, ToolError> {
    let mut g = SchemaGrammar::new(limits);
    let mut calls = Vec::new();
    for (i, f) in functions.iter().enumerate() {
        let param = format!("tools[{i}].function.parameters");
        let args = match g.schema(&f.parameters) {
            Ok(a) => a,
            // Not enforceable, but the function is not strict: any object will do.
            Err(e @ SchemaError::Unsupported { .. }) if !f.strict => {
                let _ = e;
                g.schema(&json!({"type": "object"})).map_err(|e| err(&param, e.to_string()))?
            }
            Err(e) => return Err(err(&param, e.to_string())),
        };
        calls.push((f, args));
    }
    let wanted: Vec<&(&Function, Vec<Sym>)> = match choice {
        Choice::None => return Ok(None),
        Choice::Auto if format != Format::Hermes || !functions.iter().any(|f| f.strict) => return Ok(None),
        Choice::Auto | Choice::Required => calls.iter().collect(),
        Choice::Named(n) => calls.iter().filter(|(f, _)| &f.name == n).collect(),
    };
    let g_err = |e: SchemaError| err("tools", e.to_string());
    let ws = g.ws().map_err(g_err)?;
    let args_key = if format == Format::Llama3 { "parameters" } else { "arguments" };
    let mut alts = Vec::new();
    for (f, args) in wanted {
        let mut a = lit(b"{");
        a.push(ws);
        a.extend(member(lit(b"\"name\""), ws, lit(Value::String(f.name.clone()).to_string().as_bytes())));
        a.extend(comma(ws));
        a.extend(member(lit(format!("\"{args_key}\"").as_bytes()), ws, args.clone()));
        a.push(ws);
        a.extend(lit(b"}"));
        alts.push(a);
    }
    let call = g.rule("tool call", alts).map_err(g_err)?;
    let (seq, trigger) = match (format, choice) {
        (Format::Hermes, Choice::Auto) => {
            let mut s = vec![ws, call, ws];
            s.extend(lit(HERMES_CLOSE.as_bytes()));
            (s, Some(HERMES_OPEN.to_owned()))
        }
        (Format::Hermes, _) => {
            let mut block = lit(HERMES_OPEN.as_bytes());
            block.extend([ws, call, ws]);
            block.extend(lit(HERMES_CLOSE.as_bytes()));
            // Several calls: whitespace may follow the last one (Qwen writes "</tool_call>\n"
            // between calls), so the model can still end there.
            let seq = if parallel && !matches!(choice, Choice::Named(_)) { vec![g.one_or_more("tool calls", block, vec![ws]).map_err(g_err)?, ws] } else { block };
            (seq, None)
        }
        (Format::Llama3, _) => (vec![call], None),
        (Format::Mistral, _) => {
            let items = if parallel && !matches!(choice, Choice::Named(_)) { g.one_or_more("tool calls", vec![call], comma(ws)).map_err(g_err)? } else { call };
            let mut s = lit(b"[");
            s.extend([ws, items, ws]);
            s.extend(lit(b"]"));
            (s, None)
        }
    };
    let grammar = g.finish(seq).map_err(g_err)?;
    Ok(Some(CallGrammar { grammar, trigger }))
}
