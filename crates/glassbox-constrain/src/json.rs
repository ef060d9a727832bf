//! JSON's lexical pieces as grammar rules: whitespace, strings (UTF-8 checked byte by byte,
//! escapes), numbers, literals, and the generic value. Repetitions that a model could run away
//! with are bounded as llama.cpp's JSON-schema grammars bound them: whitespace is nothing, one
//! space, or a newline and up to 20 spaces or tabs; integer parts up to 16 digits, fractions up
//! to 16, exponents up to 2 digits (so every number fits a double).

use crate::grammar::{lit, Builder, ByteClass, Sym};
use crate::Result;

fn c(lo: u8, hi: u8) -> Sym {
    Sym::Class(ByteClass::range(lo, hi))
}

fn r(id: u32) -> Sym {
    Sym::Rule(id)
}

/// The common rules, each built once per grammar.
#[derive(Default)]
pub struct Json {
    ws: Option<u32>,
    char_: Option<u32>,
    string: Option<u32>,
    number: Option<u32>,
    integer: Option<u32>,
    value: Option<u32>,
    object: Option<u32>,
    hex: Option<u32>,
}

impl Json {
    /// Optional whitespace between tokens.
    pub fn ws(&mut self, b: &mut Builder) -> Result<u32> {
        if let Some(x) = self.ws {
            return Ok(x);
        }
        let indent = b.repeat("indent", vec![Sym::Class(ByteClass::of(b" \t"))], 0, Some(20))?;
        let x = b.add("whitespace", vec![vec![], lit(b" "), vec![Sym::Class(ByteClass::single(b'\n')), r(indent)]])?;
        self.ws = Some(x);
        Ok(x)
    }

    fn hex(&mut self, b: &mut Builder) -> Result<u32> {
        if let Some(x) = self.hex {
            return Ok(x);
        }
        let x = b.add("hex digit", vec![vec![Sym::Class(ByteClass::range(b'0', b'9').union(ByteClass::range(b'a', b'f')).union(ByteClass::range(b'A', b'F')))]])?;
        self.hex = Some(x);
        Ok(x)
    }

    /// One character inside a JSON string: unescaped UTF-8 (well-formed, no control characters,
    /// no `"` or `\`) or an escape.
    pub fn char_(&mut self, b: &mut Builder) -> Result<u32> {
        if let Some(x) = self.char_ {
            return Ok(x);
        }
        let h = self.hex(b)?;
        let cont = c(0x80, 0xBF);
        let ascii = Sym::Class(ByteClass::range(0x20, 0x21).union(ByteClass::range(0x23, 0x5B)).union(ByteClass::range(0x5D, 0x7F)));
        let esc = Sym::Class(ByteClass::of(b"\"\\/bfnrt"));
        let x = b.add(
            "string character",
            vec![
                vec![ascii],
                vec![c(0xC2, 0xDF), cont],
                vec![c(0xE0, 0xE0), c(0xA0, 0xBF), cont],
                vec![c(0xE1, 0xEC), cont, cont],
                vec![c(0xED, 0xED), c(0x80, 0x9F), cont],
                vec![c(0xEE, 0xEF), cont, cont],
                vec![c(0xF0, 0xF0), c(0x90, 0xBF), cont, cont],
                vec![c(0xF1, 0xF3), cont, cont, cont],
                vec![c(0xF4, 0xF4), c(0x80, 0x8F), cont, cont],
                vec![c(b'\\', b'\\'), esc],
                // \uXXXX outside the surrogates, or a surrogate pair: a lone surrogate is
                // refused by strict parsers (serde_json, I-JSON)
                vec![c(b'\\', b'\\'), c(b'u', b'u'), Sym::Class(ByteClass::range(b'0', b'9').union(ByteClass::of(b"ABCEFabcef"))), r(h), r(h), r(h)],
                vec![c(b'\\', b'\\'), c(b'u', b'u'), Sym::Class(ByteClass::of(b"Dd")), c(b'0', b'7'), r(h), r(h)],
                {
                    let mut pair = vec![c(b'\\', b'\\'), c(b'u', b'u'), Sym::Class(ByteClass::of(b"Dd")), Sym::Class(ByteClass::of(b"89ABab")), r(h), r(h)];
                    pair.extend([c(b'\\', b'\\'), c(b'u', b'u'), Sym::Class(ByteClass::of(b"Dd")), Sym::Class(ByteClass::of(b"CDEFcdef")), r(h), r(h)]);
                    pair
                },
            ],
        )?;
        self.char_ = Some(x);
        Ok(x)
    }

    /// A string of `min..=max` characters (`max` = `None`: any length).
    pub fn string_len(&mut self, b: &mut Builder, min: usize, max: Option<usize>) -> Result<u32> {
        if min == 0
            && max.is_none()
            && let Some(x) = self.string
        {
            return Ok(x);
        }
        let ch = self.char_(b)?;
        let body = b.repeat("string body", vec![r(ch)], min, max)?;
        let mut a = lit(b"\"");
        a.push(r(body));
        a.extend(lit(b"\""));
        let x = b.add("string", vec![a])?;
        if min == 0 && max.is_none() {
            self.string = Some(x);
        }
        Ok(x)
    }

    pub fn string(&mut self, b: &mut Builder) -> Result<u32> {
        self.string_len(b, 0, None)
    }

    /// `-?(0|[1-9][0-9]{0,15})`
    pub fn integer(&mut self, b: &mut Builder) -> Result<u32> {
        if let Some(x) = self.integer {
            return Ok(x);
        }
        let digits = b.repeat("digits", vec![c(b'0', b'9')], 0, Some(15))?;
        let int = b.add("integral part", vec![lit(b"0"), vec![c(b'1', b'9'), r(digits)]])?;
        let sign = b.add("sign", vec![vec![], lit(b"-")])?;
        let x = b.add("integer", vec![vec![r(sign), r(int)]])?;
        self.integer = Some(x);
        Ok(x)
    }

    /// An integer part, then an optional fraction and exponent.
    pub fn number(&mut self, b: &mut Builder) -> Result<u32> {
        if let Some(x) = self.number {
            return Ok(x);
        }
        let int = self.integer(b)?;
        let frac_digits = b.repeat("fraction digits", vec![c(b'0', b'9')], 1, Some(16))?;
        let mut fa = lit(b".");
        fa.push(r(frac_digits));
        let frac = b.add("fraction", vec![vec![], fa])?;
        let exp_digits = b.repeat("exponent digits", vec![c(b'0', b'9')], 1, Some(2))?;
        let exp_sign = b.add("exponent sign", vec![vec![], vec![Sym::Class(ByteClass::of(b"+-"))]])?;
        let exp = b.add("exponent", vec![vec![], vec![Sym::Class(ByteClass::of(b"eE")), r(exp_sign), r(exp_digits)]])?;
        let x = b.add("number", vec![vec![r(int), r(frac), r(exp)]])?;
        self.number = Some(x);
        Ok(x)
    }

    /// `open ws close`, or `open ws item (ws "," ws item){min-1,max-1} ws close`: a JSON list of
    /// `min..=max` items (`max` = `None`: any number).
    #[allow(clippy::too_many_arguments)] // the list's shape: name, brackets, item, bounds
    pub fn list(&mut self, b: &mut Builder, name: &str, open: u8, item: Vec<Sym>, close: u8, min: usize, max: Option<usize>) -> Result<Vec<Sym>> {
        let ws = r(self.ws(b)?);
        let mut a = lit(&[open]);
        a.push(ws);
        if max == Some(0) {
            a.extend(lit(&[close]));
            return Ok(a);
        }
        let mut more = comma(ws);
        more.extend(item.iter().copied());
        let rest = b.repeat(&format!("{name} items"), more, min.saturating_sub(1), max.map(|m| m - 1))?;
        let mut full = item;
        full.extend([r(rest), ws]);
        full.extend(lit(&[close]));
        let mut alts = vec![full];
        if min == 0 {
            alts.push(lit(&[close]));
        }
        a.push(r(b.add(name, alts)?));
        Ok(a)
    }

    /// Any JSON value.
    pub fn value(&mut self, b: &mut Builder) -> Result<u32> {
        if let Some(x) = self.value {
            return Ok(x);
        }
        let v = b.reserve("value");
        self.value = Some(v);
        let s = self.string(b)?;
        let n = self.number(b)?;
        let ws = r(self.ws(b)?);
        let obj = self.list(b, "object", b'{', member(vec![r(s)], ws, vec![r(v)]), b'}', 0, None)?;
        let obj = b.add("object", vec![obj])?;
        self.object = Some(obj);
        let arr = self.list(b, "array", b'[', vec![r(v)], b']', 0, None)?;
        b.define(v, vec![vec![r(obj)], arr, vec![r(s)], vec![r(n)], lit(b"true"), lit(b"false"), lit(b"null")])?;
        Ok(v)
    }

    /// Any JSON object (the rule [`Json::value`] uses for objects).
    pub fn object(&mut self, b: &mut Builder) -> Result<u32> {
        self.value(b)?;
        Ok(self.object.expect("value() defines the object rule"))
    }
}

/// `ws "," ws`: what separates list items and object members.
pub fn comma(ws: Sym) -> Vec<Sym> {
    let mut a = vec![ws];
    a.extend(lit(b","));
    a.push(ws);
    a
}

/// `key ws ":" ws value`: an object member.
pub fn member(key: Vec<Sym>, ws: Sym, value: Vec<Sym>) -> Vec<Sym> {
    let mut a = key;
    a.push(ws);
    a.extend(lit(b":"));
    a.push(ws);
    a.extend(value);
    a
}
