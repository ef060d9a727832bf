//! JSON Schema (the subset structured-output APIs use) compiled to a grammar.
//!
//! Enforced: `type` (one or a list), `properties` / `required` / `additionalProperties`
//! (properties are produced in the schema's order, optional ones may be left out, as OpenAI and
//! llama.cpp produce them), `items` / `minItems` / `maxItems`, `enum`, `const`, `anyOf`,
//! `oneOf` whose branches cannot overlap, `allOf` of one schema, `minLength` / `maxLength`,
//! integer bounds, the formats
//! `date`, `time`, `date-time` and `uuid`, and local `$ref`s (`#/$defs/...`, `#/definitions/...`,
//! `#`), recursive ones included. Annotations (`title`, `description`, `default`, ...) are
//! ignored. Anything else is refused by name rather than silently not enforced.

use std::collections::HashMap;

use serde_json::Value;

use crate::grammar::{lit, Builder, ByteClass, Grammar, Sym};
use crate::json::{comma, member, Json};
use crate::{Error, Result};

/// Bounds on what a schema may ask for.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The schema's size as compact JSON.
    pub max_bytes: usize,
    /// Nesting of schemas within schemas.
    pub max_depth: usize,
    /// Symbols in the compiled grammar.
    pub max_symbols: usize,
    /// The largest count a schema may bound (`maxItems`, `maxLength`, `minItems`, ...).
    pub max_count: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_bytes: 64 << 10, max_depth: 32, max_symbols: 200_000, max_count: 1_024 }
    }
}

const ANNOTATIONS: &[&str] = &["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "discriminator", "$defs", "definitions"];

const KEYWORDS: &[&str] = &[
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "format", "$ref",
];

/// A grammar for any JSON object (`response_format: {"type": "json_object"}`).
pub fn json_object() -> Grammar {
    let mut b = Builder::new(usize::MAX);
    let mut j = Json::default();
    let root = j.object(&mut b).expect("the generic object grammar is within any limit");
    b.build(root).expect("the generic object grammar is well formed")
}

/// Compile `schema` into a grammar for the JSON values it accepts.
pub fn compile_schema(schema: &Value, limits: &Limits) -> Result<Grammar> {
    let mut c = SchemaGrammar::new(limits);
    let seq = c.schema(schema)?;
    c.finish(seq)
}

/// A grammar assembled from literals and several schemas, each its own `$ref` root (tool calls:
/// a fixed frame around each function's parameters).
pub struct SchemaGrammar {
    b: Builder,
    j: Json,
    limits: Limits,
    roots: usize,
}

impl SchemaGrammar {
    pub fn new(limits: &Limits) -> SchemaGrammar {
        SchemaGrammar { b: Builder::new(limits.max_symbols), j: Json::default(), limits: *limits, roots: 0 }
    }

    /// The symbols for the values `schema` accepts; its `$ref`s resolve within it.
    pub fn schema(&mut self, schema: &Value) -> Result<Vec<Sym>> {
        let size = serde_json::to_string(schema).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > self.limits.max_bytes {
            return Err(Error::TooLarge(format!("{size} bytes (limit {})", self.limits.max_bytes)));
        }
        self.roots += 1;
        let mut c = Compiler { root: schema, b: &mut self.b, j: &mut self.j, refs: HashMap::new(), limits: self.limits, tag: self.roots };
        c.schema(schema, "#", 0)
    }

    /// Optional JSON whitespace.
    pub fn ws(&mut self) -> Result<Sym> {
        Ok(Sym::Rule(self.j.ws(&mut self.b)?))
    }

    /// A rule with these alternatives.
    pub fn rule(&mut self, name: &str, alts: Vec<Vec<Sym>>) -> Result<Sym> {
        Ok(Sym::Rule(self.b.add(name, alts)?))
    }

    /// `x` one or more times, separated by `sep`.
    pub fn one_or_more(&mut self, name: &str, x: Vec<Sym>, sep: Vec<Sym>) -> Result<Sym> {
        let mut more = sep;
        more.extend(x.iter().copied());
        let rest = self.b.repeat(name, more, 0, None)?;
        let mut a = x;
        a.push(Sym::Rule(rest));
        self.rule(name, vec![a])
    }

    /// The grammar whose sentences are `seq`.
    pub fn finish(mut self, seq: Vec<Sym>) -> Result<Grammar> {
        let root = self.b.add("#", vec![seq])?;
        self.b.build(root)
    }
}

struct Compiler<'a> {
    root: &'a Value,
    b: &'a mut Builder,
    j: &'a mut Json,
    refs: HashMap<String, u32>,
    limits: Limits,
    /// Which root this is, for rule names.
    tag: usize,
}

/// Whether `v` is of the type(s) `t` names.
fn type_allows(t: &Value, v: &Value) -> bool {
    let one = |t: &str| match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "integer" => v.as_f64().is_some_and(|x| x.fract() == 0.0),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    };
    match t {
        Value::String(t) => one(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(one),
        _ => false,
    }
}

fn invalid(path: &str, msg: impl Into<String>) -> Error {
    Error::Invalid { path: path.to_owned(), msg: msg.into() }
}

/// A value as a literal: scalars as their JSON text, objects and arrays with whitespace allowed
/// between their tokens (a model may pretty-print a constant).
fn literal(v: &Value, ws: Sym) -> Vec<Sym> {
    let list = |open: u8, items: Vec<Vec<Sym>>, close: u8| {
        let mut a = lit(&[open]);
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                a.extend(comma(ws));
            } else {
                a.push(ws);
            }
            a.extend(item);
        }
        a.push(ws);
        a.extend(lit(&[close]));
        a
    };
    match v {
        Value::Array(x) => list(b'[', x.iter().map(|e| literal(e, ws)).collect(), b']'),
        Value::Object(o) => list(b'{', o.iter().map(|(k, e)| member(lit(Value::String(k.clone()).to_string().as_bytes()), ws, literal(e, ws))).collect(), b'}'),
        _ => lit(v.to_string().as_bytes()),
    }
}

impl<'a> Compiler<'a> {
    fn count(&self, s: &serde_json::Map<String, Value>, key: &str, path: &str) -> Result<Option<usize>> {
        match s.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = v.as_u64().ok_or_else(|| invalid(path, format!("{key} must be a non-negative integer")))?;
                if n as usize > self.limits.max_count {
                    return Err(Error::TooLarge(format!("{key} = {n} at {path} (limit {})", self.limits.max_count)));
                }
                Ok(Some(n as usize))
            }
        }
    }

    fn schema(&mut self, s: &Value, path: &str, depth: usize) -> Result<Vec<Sym>> {
        if depth > self.limits.max_depth {
            return Err(Error::TooDeep(self.limits.max_depth));
        }
        let obj = match s {
            Value::Bool(true) => return Ok(vec![Sym::Rule(self.j.value(self.b)?)]),
            Value::Bool(false) => return Err(invalid(path, "the schema false accepts no value")),
            Value::Object(o) => o,
            _ => return Err(invalid(path, "a schema must be an object or a boolean")),
        };
        for k in obj.keys() {
            if !KEYWORDS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
                return Err(Error::Unsupported { keyword: k.clone(), path: path.to_owned() });
            }
        }
        if let Some(r) = obj.get("$ref") {
            if let Some(k) = obj.keys().find(|k| KEYWORDS.contains(&k.as_str()) && *k != "$ref") {
                return Err(Error::Unsupported { keyword: format!("{k} beside $ref"), path: path.to_owned() });
            }
            let r = r.as_str().ok_or_else(|| invalid(path, "$ref must be a string"))?;
            return Ok(vec![Sym::Rule(self.reference(r, path, depth)?)]);
        }
        // A combinator or literal decides the value alone: any other constraint beside it would
        // go unenforced, so it is refused (a `type` beside enum/const only has to agree).
        for comb in ["const", "enum", "anyOf", "oneOf", "allOf"] {
            if obj.contains_key(comb)
                && let Some(k) = obj.keys().find(|k| KEYWORDS.contains(&k.as_str()) && *k != comb && !(*k == "type" && (comb == "const" || comb == "enum")))
            {
                return Err(Error::Unsupported { keyword: format!("{k} beside {comb}"), path: path.to_owned() });
            }
        }
        let literals: Option<Vec<&Value>> = match (obj.get("const"), obj.get("enum")) {
            (Some(v), _) => Some(vec![v]),
            (None, Some(e)) => Some(e.as_array().filter(|a| !a.is_empty()).ok_or_else(|| invalid(path, "enum must be a non-empty array"))?.iter().collect()),
            _ => None,
        };
        if let Some(values) = literals {
            if let Some(t) = obj.get("type")
                && let Some(bad) = values.iter().find(|v| !type_allows(t, v))
            {
                return Err(invalid(path, format!("{bad} does not have the type {t}")));
            }
            let ws = Sym::Rule(self.j.ws(self.b)?);
            let id = self.b.add(&format!("{path}/enum"), values.iter().map(|v| literal(v, ws)).collect())?;
            return Ok(vec![Sym::Rule(id)]);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(a) = obj.get(key) {
                let a = a.as_array().filter(|a| !a.is_empty()).ok_or_else(|| invalid(path, format!("{key} must be a non-empty array")))?;
                if key == "oneOf" && !self.disjoint(a) {
                    return Err(Error::Unsupported { keyword: "oneOf whose branches may overlap (only branches of different types, or objects told apart by a const property, are enforced; use anyOf)".into(), path: path.to_owned() });
                }
                let mut alts = Vec::new();
                for (i, sub) in a.iter().enumerate() {
                    alts.push(self.schema(sub, &format!("{path}/{key}/{i}"), depth + 1)?);
                }
                let id = self.b.add(&format!("{path}/{key}"), alts)?;
                return Ok(vec![Sym::Rule(id)]);
            }
        }
        if let Some(a) = obj.get("allOf") {
            match a.as_array().map(Vec::as_slice) {
                Some([one]) => return self.schema(one, &format!("{path}/allOf/0"), depth + 1),
                _ => return Err(Error::Unsupported { keyword: "allOf with more than one schema".into(), path: path.to_owned() }),
            }
        }
        const OBJECT: &[&str] = &["properties", "required", "additionalProperties"];
        const ARRAY: &[&str] = &["items", "minItems", "maxItems"];
        const STRING: &[&str] = &["minLength", "maxLength", "format"];
        let has = |ks: &[&str]| ks.iter().any(|k| obj.contains_key(*k));
        let types: Vec<&str> = match obj.get("type") {
            None if has(OBJECT) && !has(ARRAY) && !has(STRING) => vec!["object"],
            None if has(ARRAY) && !has(OBJECT) && !has(STRING) => vec!["array"],
            None if has(STRING) && !has(OBJECT) && !has(ARRAY) => vec!["string"],
            None if obj.keys().any(|k| KEYWORDS.contains(&k.as_str())) => {
                // Constraints for several kinds of value, or numeric bounds, with no type: what
                // they allow of other types would not be enforced.
                let k = obj.keys().find(|k| KEYWORDS.contains(&k.as_str())).cloned().unwrap_or_default();
                return Err(Error::Unsupported { keyword: format!("{k} without a type"), path: path.to_owned() });
            }
            None => return Ok(vec![Sym::Rule(self.j.value(self.b)?)]),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) if !ts.is_empty() => ts.iter().map(|t| t.as_str().ok_or_else(|| invalid(path, "type must name types"))).collect::<Result<_>>()?,
            Some(_) => return Err(invalid(path, "type must be a string or a non-empty array of strings")),
        };
        let mut alts = Vec::new();
        for t in types {
            alts.push(self.typed(t, obj, path, depth)?);
        }
        if alts.len() == 1 {
            return Ok(alts.pop().unwrap_or_default());
        }
        Ok(vec![Sym::Rule(self.b.add(&format!("{path}/type"), alts)?)])
    }

    /// `$ref`s followed to the schema they name (a few hops), for looking at a branch.
    fn resolve<'v>(&self, mut v: &'v Value) -> &'v Value
    where
        'a: 'v,
    {
        for _ in 0..8 {
            match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')).and_then(|p| self.root.pointer(p)) {
                Some(t) => v = t,
                None => break,
            }
        }
        v
    }

    /// `oneOf` branches no value can satisfy twice: each of a single type that no other branch
    /// shares (integer and number overlap), or all objects requiring one property whose schema
    /// is a `const` (or one-value `enum`), with different values.
    fn disjoint(&self, branches: &[Value]) -> bool {
        let bs: Vec<&Value> = branches.iter().map(|b| self.resolve(b)).collect();
        let types: Option<Vec<&str>> = bs.iter().map(|b| b.get("type").and_then(Value::as_str)).collect();
        if let Some(mut t) = types {
            let n = t.len();
            if t.contains(&"integer") && t.contains(&"number") {
                return false;
            }
            t.sort_unstable();
            t.dedup();
            if t.len() == n {
                return true;
            }
        }
        let tag = |b: &Value, key: &str| -> Option<Value> {
            let required = b.get("required")?.as_array()?.iter().any(|r| r == key);
            let p = self.resolve(b.get("properties")?.get(key)?);
            let v = p.get("const").cloned().or_else(|| p.get("enum")?.as_array().filter(|e| e.len() == 1).map(|e| e[0].clone()))?;
            required.then_some(v)
        };
        let Some(keys) = bs.first().and_then(|b| b.get("properties")).and_then(Value::as_object) else { return false };
        keys.keys().any(|k| {
            let vals: Option<Vec<Value>> = bs.iter().map(|b| tag(b, k)).collect();
            vals.is_some_and(|v| (0..v.len()).all(|i| (i + 1..v.len()).all(|j| v[i] != v[j])))
        })
    }

    fn reference(&mut self, r: &str, path: &str, depth: usize) -> Result<u32> {
        if let Some(&id) = self.refs.get(r) {
            return Ok(id);
        }
        let ptr = r.strip_prefix('#').ok_or_else(|| invalid(path, format!("$ref {r:?} is not local to the schema (only #/... references are resolved; nothing is fetched)")))?;
        let target = self.root.pointer(ptr).ok_or_else(|| invalid(path, format!("$ref {r:?} points at nothing")))?;
        let id = self.b.reserve(&format!("{r} (schema {})", self.tag));
        self.refs.insert(r.to_owned(), id);
        let seq = self.schema(target, r, depth + 1)?;
        self.b.define(id, vec![seq])?;
        Ok(id)
    }

    fn typed(&mut self, t: &str, s: &serde_json::Map<String, Value>, path: &str, depth: usize) -> Result<Vec<Sym>> {
        let rule = |x: u32| vec![Sym::Rule(x)];
        match t {
            "null" => Ok(lit(b"null")),
            "boolean" => Ok(rule(self.b.add("boolean", vec![lit(b"true"), lit(b"false")])?)),
            "string" => self.string(s, path),
            "integer" => self.integer(s, path),
            "number" => {
                if let Some(k) = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"].iter().find(|k| s.contains_key(**k)) {
                    return Err(Error::Unsupported { keyword: format!("{k} on a number (bounds are enforced on integers only)"), path: path.to_owned() });
                }
                Ok(rule(self.j.number(self.b)?))
            }
            "array" => {
                let item = match s.get("items") {
                    None => rule(self.j.value(self.b)?),
                    Some(i) => self.schema(i, &format!("{path}/items"), depth + 1)?,
                };
                let min = self.count(s, "minItems", path)?.unwrap_or(0);
                let max = self.count(s, "maxItems", path)?;
                if max.is_some_and(|m| m < min) {
                    return Err(invalid(path, "maxItems is below minItems"));
                }
                self.j.list(self.b, &format!("{path} array"), b'[', item, b']', min, max)
            }
            "object" => self.object(s, path, depth),
            other => Err(invalid(path, format!("unknown type {other:?}"))),
        }
    }

    fn object(&mut self, s: &serde_json::Map<String, Value>, path: &str, depth: usize) -> Result<Vec<Sym>> {
        for k in ["minProperties", "maxProperties", "patternProperties", "propertyNames"] {
            if s.contains_key(k) {
                return Err(Error::Unsupported { keyword: k.into(), path: path.to_owned() });
            }
        }
        let ws = Sym::Rule(self.j.ws(self.b)?);
        let empty = serde_json::Map::new();
        let props = match s.get("properties") {
            None => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return Err(invalid(path, "properties must be an object")),
        };
        let required: Vec<&str> = match s.get("required") {
            None => Vec::new(),
            Some(Value::Array(a)) => a.iter().map(|v| v.as_str().ok_or_else(|| invalid(path, "required must list property names"))).collect::<Result<_>>()?,
            Some(_) => return Err(invalid(path, "required must be an array")),
        };
        if let Some(missing) = required.iter().find(|r| !props.contains_key(**r)) {
            // Without a schema for it the property could be anything; refuse rather than guess.
            if s.get("additionalProperties") == Some(&Value::Bool(false)) {
                return Err(invalid(path, format!("{missing:?} is required but additionalProperties is false and it is not in properties")));
            }
            return Err(Error::Unsupported { keyword: format!("required property {missing:?} without a schema in properties"), path: path.to_owned() });
        }
        if props.is_empty() {
            // A map: any keys, values as additionalProperties says (absent or true: any value).
            let value = match s.get("additionalProperties") {
                None | Some(Value::Bool(true)) => vec![Sym::Rule(self.j.value(self.b)?)],
                Some(Value::Bool(false)) => return self.j.list(self.b, &format!("{path} object"), b'{', vec![], b'}', 0, Some(0)),
                Some(v) => self.schema(v, &format!("{path}/additionalProperties"), depth + 1)?,
            };
            let key = self.j.string(self.b)?;
            return self.j.list(self.b, &format!("{path} object"), b'{', member(vec![Sym::Rule(key)], ws, value), b'}', 0, None);
        }
        if let Some(v) = s.get("additionalProperties") {
            // Declared properties only are produced: valid whatever extra keys would be allowed.
            if !v.is_boolean() && !v.is_object() {
                return Err(invalid(path, "additionalProperties must be a boolean or a schema"));
            }
        }
        let mut kvs = Vec::new();
        for (name, sub) in props {
            let value = self.schema(sub, &format!("{path}/properties/{name}"), depth + 1)?;
            kvs.push((required.contains(&name.as_str()), member(lit(Value::String(name.clone()).to_string().as_bytes()), ws, value)));
        }
        // after[i]: properties i.. with one already written (each then preceded by a comma);
        // first[i]: properties i.. with none written yet.
        let n = kvs.len();
        let mut after = self.b.add(&format!("{path} end"), vec![vec![]])?;
        let mut first = after;
        for i in (0..n).rev() {
            let (req, kv) = &kvs[i];
            let mut with_comma = comma(ws);
            with_comma.extend(kv.iter().copied());
            with_comma.push(Sym::Rule(after));
            let mut bare = kv.clone();
            bare.push(Sym::Rule(after));
            let name = format!("{path}/properties/{}", props.keys().nth(i).map(String::as_str).unwrap_or(""));
            let (a, f) = if *req {
                (self.b.add(&name, vec![with_comma])?, self.b.add(&name, vec![bare])?)
            } else {
                (self.b.add(&name, vec![with_comma, vec![Sym::Rule(after)]])?, self.b.add(&name, vec![bare, vec![Sym::Rule(first)]])?)
            };
            after = a;
            first = f;
        }
        let mut a = lit(b"{");
        a.extend([ws, Sym::Rule(first), ws]);
        a.extend(lit(b"}"));
        Ok(a)
    }

    fn string(&mut self, s: &serde_json::Map<String, Value>, path: &str) -> Result<Vec<Sym>> {
        if s.contains_key("pattern") {
            return Err(Error::Unsupported { keyword: "pattern".into(), path: path.to_owned() });
        }
        let min = self.count(s, "minLength", path)?.unwrap_or(0);
        let max = self.count(s, "maxLength", path)?;
        if max.is_some_and(|m| m < min) {
            return Err(invalid(path, "maxLength is below minLength"));
        }
        if let Some(f) = s.get("format") {
            let f = f.as_str().ok_or_else(|| invalid(path, "format must be a string"))?;
            if min > 0 || max.is_some() {
                return Err(Error::Unsupported { keyword: "minLength/maxLength with format".into(), path: path.to_owned() });
            }
            return self.format(f, path);
        }
        Ok(vec![Sym::Rule(self.j.string_len(self.b, min, max)?)])
    }

    fn format(&mut self, f: &str, path: &str) -> Result<Vec<Sym>> {
        let d = |lo: u8, hi: u8| Sym::Class(ByteClass::range(lo, hi));
        let b = &mut *self.b;
        // A calendar date: days per month, 29 February only in leap years, years 0001-9999.
        let date = |b: &mut Builder| -> Result<u32> {
            let one = |c: u8| Sym::Class(ByteClass::single(c));
            let of = |cs: &[u8]| Sym::Class(ByteClass::of(cs));
            let year = b.add("year", vec![vec![d(b'1', b'9'), d(b'0', b'9'), d(b'0', b'9'), d(b'0', b'9')], vec![one(b'0'), d(b'1', b'9'), d(b'0', b'9'), d(b'0', b'9')], vec![one(b'0'), one(b'0'), d(b'1', b'9'), d(b'0', b'9')], vec![one(b'0'), one(b'0'), one(b'0'), d(b'1', b'9')]])?;
            let leap_tail = b.add("leap year end", vec![vec![one(b'0'), of(b"48")], vec![of(b"2468"), of(b"048")], vec![of(b"13579"), of(b"26")]])?;
            let leap = b.add("leap year", vec![vec![d(b'0', b'9'), d(b'0', b'9'), Sym::Rule(leap_tail)], vec![one(b'0'), of(b"48"), one(b'0'), one(b'0')], vec![of(b"2468"), of(b"048"), one(b'0'), one(b'0')], vec![of(b"13579"), of(b"26"), one(b'0'), one(b'0')]])?;
            let day28 = vec![vec![one(b'0'), d(b'1', b'9')], vec![one(b'1'), d(b'0', b'9')], vec![one(b'2'), d(b'0', b'8')]];
            let mut day30 = day28.clone();
            day30.extend([vec![one(b'2'), one(b'9')], vec![one(b'3'), one(b'0')]]);
            let mut day31 = day30.clone();
            day31.push(vec![one(b'3'), one(b'1')]);
            let (d28, d30, d31) = (b.add("day", day28)?, b.add("day", day30)?, b.add("day", day31)?);
            let mut md = Vec::new();
            for (m, days) in [(&b"01"[..], d31), (b"03", d31), (b"05", d31), (b"07", d31), (b"08", d31), (b"10", d31), (b"12", d31), (b"04", d30), (b"06", d30), (b"09", d30), (b"11", d30), (b"02", d28)] {
                let mut a = lit(m);
                a.extend(lit(b"-"));
                a.push(Sym::Rule(days));
                md.push(a);
            }
            let month_day = b.add("month and day", md)?;
            let mut plain = vec![Sym::Rule(year)];
            plain.extend(lit(b"-"));
            plain.push(Sym::Rule(month_day));
            let mut leap_day = vec![Sym::Rule(leap)];
            leap_day.extend(lit(b"-02-29"));
            b.add("date", vec![plain, leap_day])
        };
        let time = |b: &mut Builder| -> Result<u32> {
            let hour = b.add("hour", vec![vec![d(b'0', b'1'), d(b'0', b'9')], vec![d(b'2', b'2'), d(b'0', b'3')]])?;
            let min = [d(b'0', b'5'), d(b'0', b'9')];
            let frac_digits = b.repeat("second fraction", vec![d(b'0', b'9')], 1, Some(6))?;
            let mut fa = lit(b".");
            fa.push(Sym::Rule(frac_digits));
            let frac = b.add("second fraction", vec![vec![], fa])?;
            let mut off = vec![Sym::Class(ByteClass::of(b"+-")), Sym::Rule(hour)];
            off.extend(lit(b":"));
            off.extend(min.iter().copied());
            let zone = b.add("time zone", vec![lit(b"Z"), off])?;
            let mut a = vec![Sym::Rule(hour)];
            a.extend(lit(b":"));
            a.extend(min.iter().copied());
            a.extend(lit(b":"));
            a.extend(min.iter().copied());
            a.extend([Sym::Rule(frac), Sym::Rule(zone)]);
            b.add("time", vec![a])
        };
        let body: Vec<Sym> = match f {
            "date" => vec![Sym::Rule(date(b)?)],
            "time" => vec![Sym::Rule(time(b)?)],
            "date-time" => {
                let mut a = vec![Sym::Rule(date(b)?)];
                a.extend(lit(b"T"));
                a.push(Sym::Rule(time(b)?));
                a
            }
            "uuid" => {
                let h = Sym::Class(ByteClass::range(b'0', b'9').union(ByteClass::range(b'a', b'f')).union(ByteClass::range(b'A', b'F')));
                let mut a = Vec::new();
                for (i, n) in [8, 4, 4, 4, 12].into_iter().enumerate() {
                    if i > 0 {
                        a.extend(lit(b"-"));
                    }
                    a.extend(std::iter::repeat_n(h, n));
                }
                a
            }
            other => return Err(Error::Unsupported { keyword: format!("format {other:?} (supported: date, time, date-time, uuid)"), path: path.to_owned() }),
        };
        let mut a = lit(b"\"");
        a.extend(body);
        a.extend(lit(b"\""));
        Ok(a)
    }

    fn integer(&mut self, s: &serde_json::Map<String, Value>, path: &str) -> Result<Vec<Sym>> {
        let bound = |k: &str| -> Result<Option<f64>> {
            match s.get(k) {
                None => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| invalid(path, format!("{k} must be a number"))),
            }
        };
        let lo = [bound("minimum")?.map(f64::ceil), bound("exclusiveMinimum")?.map(|x| x.floor() + 1.0)].into_iter().flatten().fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
        let hi = [bound("maximum")?.map(f64::floor), bound("exclusiveMaximum")?.map(|x| x.ceil() - 1.0)].into_iter().flatten().fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.min(x))));
        if lo.is_none() && hi.is_none() {
            return Ok(vec![Sym::Rule(self.j.integer(self.b)?)]);
        }
        const LIM: f64 = 1e15;
        let lo = lo.unwrap_or(-LIM).max(-LIM) as i64;
        let hi = hi.unwrap_or(LIM).min(LIM) as i64;
        if lo > hi {
            return Err(invalid(path, "no integer lies within its bounds"));
        }
        Ok(vec![Sym::Rule(crate::range::int_range(self.b, lo, hi)?)])
    }
}
