//! One pickle, opcode by opcode: a model of the unpickler's stack and memo that tracks only what
//! the verdict needs (strings, small integers, torch storage types and legacy storage ids), so
//! STACK_GLOBAL's operands are visible through PUT/GET/MEMOIZE tricks.
//!
//! The model is deliberately *more* permissive than CPython's unpickler: where CPython might go
//! on (an odd but valid memo index, a line without its newline at the end of a file, a pop on an
//! empty stack), the analysis goes on too, so it stops only where CPython certainly stops as
//! well (missing bytes, an opcode that does not exist, an unsupported protocol, an import name
//! that is not UTF-8) — or where one of our limits is hit, which is reported as such.
//!
//! Memory: tracked strings are shared (`Rc<str>`), so DUP / GET / MEMOIZE never copy them; each
//! keeps at most [`TEXT_CAP`] bytes of text, and the live bytes of all of them are metered.

use std::rc::Rc;

use super::legacy::Legacy;
use super::memo::{Memo, PutError};
use crate::budget::Ctx;
use crate::{Finding, Severity};

/// Text kept per string: longer strings keep a prefix and end in '…', which no allowlisted name
/// contains, so they can never pass as an allowed import.
const TEXT_CAP: usize = 64;
/// Characters of an import name kept in findings.
const NAME_CAP: usize = 256;
/// Heap bytes charged per tracked string besides its text (reference counts, allocation).
const STR_OVERHEAD: usize = 32;
/// The `torch.save` legacy magic number, as LONG1's little-endian payload.
const TORCH_MAGIC: &[u8] = &[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

#[derive(Clone, Debug)]
pub(crate) enum Val {
    Mark,
    Other,
    Str(Rc<str>),
    /// A small integer (a legacy persistent id's element count).
    Int,
    /// An allowed torch storage type, with its element size.
    Storage(u8),
    /// The legacy `torch.save` magic number.
    Magic,
    /// A legacy persistent id ('storage', type, key, location, numel, ...).
    Pid { key: Rc<str>, elsize: u8 },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Halt {
    #[error("truncated: {need} bytes needed at offset {at}")]
    Truncated { need: u64, at: u64 },
    #[error("unknown opcode 0x{op:02x} at offset {at}")]
    UnknownOpcode { op: u8, at: u64 },
    #[error("unsupported pickle protocol {v} at offset {at}")]
    Protocol { v: u8, at: u64 },
    #[error("import name at offset {at} is not UTF-8 (Python refuses it)")]
    NotUtf8 { at: u64 },
    #[error("{what} limit ({limit} {unit}) reached at offset {at}")]
    Limit { what: &'static str, limit: u64, unit: &'static str, at: u64 },
}

impl Halt {
    pub fn is_limit(&self) -> bool {
        matches!(self, Halt::Limit { .. })
    }
    pub fn at(&self) -> u64 {
        match *self {
            Halt::Truncated { at, .. } | Halt::UnknownOpcode { at, .. } | Halt::Protocol { at, .. } | Halt::NotUtf8 { at } | Halt::Limit { at, .. } => at,
        }
    }
}

/// A pickle analysed to its STOP.
pub(crate) struct Ran {
    /// Offset just past STOP.
    pub end: usize,
    /// The pickle's value is the legacy `torch.save` magic number.
    pub magic: bool,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Reader<'a> {
    fn at(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], Halt> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n)).filter(|&e| e <= self.b.len());
        let Some(end) = end else { return Err(Halt::Truncated { need: n, at: self.at() }) };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn uint(&mut self, n: u64) -> Result<u64, Halt> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64))
    }
    /// A text line without its newline. At the end of the data a line without newline is
    /// accepted with its last byte dropped, as CPython's unpickler does when reading a file.
    fn line(&mut self) -> Result<&'a [u8], Halt> {
        let rest = &self.b[self.pos..];
        match rest.iter().position(|&c| c == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None if !rest.is_empty() => {
                self.pos = self.b.len();
                Ok(&rest[..rest.len() - 1])
            }
            None => Err(Halt::Truncated { need: 1, at: self.at() }),
        }
    }
    fn utf8_line(&mut self) -> Result<&'a str, Halt> {
        let at = self.at();
        std::str::from_utf8(self.line()?).map_err(|_| Halt::NotUtf8 { at })
    }
    /// A length-prefixed payload (the length is checked against the data before anything is
    /// allocated; nothing is allocated for it anyway).
    fn sized(&mut self, len_bytes: u64) -> Result<&'a [u8], Halt> {
        let n = self.uint(len_bytes)?;
        self.take(n)
    }
}

/// A memo index or integer line the way CPython's `PyLong_FromString(s, NULL, 10)` reads it:
/// the text ends at a NUL byte, surrounding whitespace, one sign, digits with single underscores
/// between them. `None` when it is not a non-negative integer that fits.
pub(crate) fn py_index(line: &[u8]) -> Option<u64> {
    let line = line.split(|&c| c == 0).next().unwrap_or(&[]);
    let t = line.trim_ascii();
    let t = t.strip_prefix(b"+").unwrap_or(t);
    if t.is_empty() || t.starts_with(b"_") || t.ends_with(b"_") || t.windows(2).any(|w| w == b"__") {
        return None;
    }
    t.iter().filter(|&&c| c != b'_').try_fold(0u64, |v, &c| {
        if c.is_ascii_digit() { v.checked_mul(10)?.checked_add((c - b'0') as u64) } else { None }
    })
}

fn storage_elsize(name: &str) -> Option<u8> {
    Some(match name {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "CharStorage" | "ByteStorage" | "BoolStorage" | "UntypedStorage" => 1,
        "ComplexDoubleStorage" => 16,
        _ => return None,
    })
}

/// A name for a message: at most [`NAME_CAP`] characters.
fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(NAME_CAP) {
        Some((i, _)) => format!("{}…", &s[..i]).into(),
        None => s.into(),
    }
}

struct Machine<'c, 'l> {
    ctx: &'c mut Ctx<'l>,
    location: &'c str,
    stack: Vec<Val>,
    memo: Memo,
    /// A PUT whose index could not be read: any later GET may return anything.
    memo_unknown: bool,
    /// Bytes of tracked strings alive.
    live: usize,
}

impl Machine<'_, '_> {
    fn limit(&self, what: &'static str, limit: impl TryInto<u64>, unit: &'static str, at: u64) -> Halt {
        Halt::Limit { what, limit: limit.try_into().unwrap_or(u64::MAX), unit, at }
    }

    fn push(&mut self, v: Val, at: u64) -> Result<(), Halt> {
        if self.stack.len() >= self.ctx.lim.stack {
            return Err(self.limit("pickle stack", self.ctx.lim.stack, "entries", at));
        }
        self.stack.push(v);
        Ok(())
    }

    /// Drop a value, refunding its string bytes when this was the last reference.
    fn release(&mut self, v: Val) {
        if let Val::Str(s) | Val::Pid { key: s, .. } = v
            && Rc::strong_count(&s) == 1
        {
            self.live = self.live.saturating_sub(s.len() + STR_OVERHEAD);
        }
    }

    fn pop(&mut self) -> Option<Val> {
        self.stack.pop()
    }

    fn discard(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(v) = self.stack.pop() {
                self.release(v);
            }
        }
    }

    /// Pop everything down to and including the topmost mark.
    fn pop_mark(&mut self) {
        while let Some(v) = self.stack.pop() {
            if matches!(v, Val::Mark) {
                break;
            }
            self.release(v);
        }
    }

    fn text(&mut self, raw: &[u8], at: u64) -> Result<Val, Halt> {
        let keep = &raw[..raw.len().min(TEXT_CAP)];
        let mut s = String::from_utf8_lossy(keep).into_owned();
        if raw.len() > TEXT_CAP {
            s.push('…');
        }
        let cost = s.len() + STR_OVERHEAD;
        let lim = self.ctx.lim.value_bytes;
        if self.live.saturating_add(cost) > lim {
            return Err(self.limit("tracked value", lim, "bytes", at));
        }
        self.live += cost;
        Ok(Val::Str(Rc::from(s)))
    }

    fn memo_put(&mut self, k: u64, at: u64) -> Result<(), Halt> {
        let top = self.stack.last().cloned().unwrap_or(Val::Other);
        let (old, delta) = match self.memo.put(k, &top, self.ctx.lim.memo) {
            Ok(r) => r,
            Err(PutError::Entries) => return Err(self.limit("pickle memo", self.ctx.lim.memo, "entries", at)),
        };
        if let Some(old) = old {
            self.release(old);
        }
        self.live = self.live.saturating_add_signed(delta);
        if self.live > self.ctx.lim.value_bytes {
            return Err(self.limit("tracked value", self.ctx.lim.value_bytes, "bytes", at));
        }
        Ok(())
    }

    fn memo_get(&self, k: Option<u64>) -> Val {
        match k {
            Some(k) if !self.memo_unknown => self.memo.get(k),
            _ => Val::Other,
        }
    }

    /// Report an import unless it is allowed; the value it pushes.
    fn import(&mut self, module: &str, name: &str, at: u64, how: &str) -> Val {
        if super::allowed(module, name) {
            return match (module, storage_elsize(name)) {
                ("torch", Some(es)) => Val::Storage(es),
                _ => Val::Other,
            };
        }
        let root = module.split('.').next().unwrap_or(module);
        let known = super::DANGEROUS_MODULES.contains(&module) || super::DANGEROUS_MODULES.contains(&root);
        // GLOBAL names come straight from the data: reported clipped, so findings stay small.
        let (module, name) = (&*clip(module), &*clip(name));
        let msg = if known {
            format!("{how} imports {module}.{name}: can run code when unpickled")
        } else {
            format!("{how} imports {module}.{name}, which is not on the allowlist of what checkpoints need; it may run code when unpickled")
        };
        self.ctx.push(Finding::new(Severity::High, "pickle-import", self.location, Some(at), msg).with_import(module, name));
        Val::Other
    }

    fn high(&mut self, at: u64, msg: &str) {
        self.ctx.push(Finding::new(Severity::High, "pickle-import", self.location, Some(at), msg.into()));
    }

    /// TUPLE: a legacy storage persistent id keeps its key and element size, anything else is opaque.
    fn tuple_from_mark(&mut self, at: u64) -> Result<(), Halt> {
        let mark = self.stack.iter().rposition(|v| matches!(v, Val::Mark));
        let items = &self.stack[mark.map_or(0, |m| m + 1)..];
        let pid = match items {
            [Val::Str(tag), Val::Storage(es), Val::Str(key), _, Val::Int, ..] if &**tag == "storage" => Some(Val::Pid { key: key.clone(), elsize: *es }),
            _ => None,
        };
        self.pop_mark();
        self.push(pid.unwrap_or(Val::Other), at)
    }
}

/// Analyse the pickle starting at `start` up to its STOP. `collect` records the strings the
/// pickle appends to lists (a legacy file's storage keys) into `legacy`.
pub(crate) fn run(data: &[u8], start: usize, base: u64, location: &str, ctx: &mut Ctx, legacy: &mut Legacy, collect: bool) -> Result<Ran, Halt> {
    let mut r = Reader { b: data, pos: start, base };
    let mut m = Machine { ctx, location, stack: Vec::new(), memo: Memo::default(), memo_unknown: false, live: 0 };
    loop {
        let at = r.at();
        if m.ctx.opcodes_left == 0 {
            return Err(m.limit("pickle opcode", m.ctx.lim.opcodes, "opcodes per file", at));
        }
        m.ctx.opcodes_left -= 1;
        let op = r.take(1)?[0];
        let pushed = match op {
            b'.' => {
                let magic = matches!(m.stack.last(), Some(Val::Magic));
                return Ok(Ran { end: r.pos, magic });
            }
            b'(' => Val::Mark,
            b')' | b']' | b'}' | b'N' | 0x88 | 0x89 | 0x8f | 0x97 => Val::Other,
            b'0' => {
                m.discard(1);
                continue;
            }
            b'1' => {
                m.pop_mark();
                continue;
            }
            b'2' => m.stack.last().cloned().unwrap_or(Val::Other),
            b'F' | b'I' | b'L' | b'P' => {
                r.line()?;
                Val::Other
            }
            b'S' | b'V' => {
                let mut l = r.line()?;
                // STRING's argument is quoted: CPython strips exactly one pair of matching quotes.
                if op == b'S' && l.len() >= 2 && l[0] == l[l.len() - 1] && (l[0] == b'\'' || l[0] == b'"') {
                    l = &l[1..l.len() - 1];
                }
                m.text(l, at)?
            }
            b'J' | b'K' | b'M' => {
                r.take(match op {
                    b'J' => 4,
                    b'K' => 1,
                    _ => 2,
                })?;
                Val::Int
            }
            b'G' => {
                r.take(8)?;
                Val::Other
            }
            0x8a => {
                let b = r.sized(1)?;
                if b == TORCH_MAGIC {
                    Val::Magic
                } else {
                    Val::Int
                }
            }
            0x8b => {
                r.sized(4)?;
                Val::Other
            }
            b'T' | b'X' => {
                let s = r.sized(4)?;
                m.text(s, at)?
            }
            b'U' | 0x8c => {
                let s = r.sized(1)?;
                m.text(s, at)?
            }
            0x8d => {
                let s = r.sized(8)?;
                m.text(s, at)?
            }
            b'B' => {
                r.sized(4)?;
                Val::Other
            }
            b'C' => {
                r.sized(1)?;
                Val::Other
            }
            0x8e | 0x96 => {
                r.sized(8)?;
                Val::Other
            }
            b'c' | b'i' => {
                let module = r.utf8_line()?;
                let name = r.utf8_line()?;
                let v = m.import(module, name, at, if op == b'c' { "GLOBAL" } else { "INST" });
                if op == b'i' {
                    m.pop_mark();
                    Val::Other
                } else {
                    v
                }
            }
            0x93 => {
                let name = m.pop();
                let module = m.pop();
                let v = match (&module, &name) {
                    (Some(Val::Str(mo)), Some(Val::Str(n))) => {
                        let (mo, n) = (mo.clone(), n.clone());
                        m.import(&mo, &n, at, "STACK_GLOBAL")
                    }
                    _ => {
                        m.high(at, "STACK_GLOBAL imports a name that cannot be resolved statically (obfuscated import): it may run code when unpickled");
                        Val::Other
                    }
                };
                for x in [module, name].into_iter().flatten() {
                    m.release(x);
                }
                v
            }
            b'g' => {
                let k = py_index(r.line()?);
                m.memo_get(k)
            }
            b'h' => {
                let k = r.uint(1)?;
                m.memo_get(Some(k))
            }
            b'j' => {
                let k = r.uint(4)?;
                m.memo_get(Some(k))
            }
            b'p' => {
                match py_index(r.line()?) {
                    Some(k) => m.memo_put(k, at)?,
                    None => m.memo_unknown = true,
                }
                continue;
            }
            b'q' | b'r' | 0x94 => {
                let k = match op {
                    b'q' => r.uint(1)?,
                    b'r' => r.uint(4)?,
                    _ => m.memo.count,
                };
                m.memo_put(k, at)?;
                continue;
            }
            b'a' => {
                let v = m.pop();
                if let Some(Val::Str(s)) = &v
                    && collect
                {
                    legacy.key(s.clone(), m.ctx.lim.storages).map_err(|lim| m.limit("legacy storage key", lim, "keys", at))?;
                }
                if let Some(v) = v {
                    m.release(v);
                }
                continue;
            }
            b'e' if collect => {
                let from = m.stack.iter().rposition(|v| matches!(v, Val::Mark)).map_or(0, |i| i + 1);
                for i in from..m.stack.len() {
                    if let Val::Str(s) = &m.stack[i] {
                        let s = s.clone();
                        legacy.key(s, m.ctx.lim.storages).map_err(|lim| m.limit("legacy storage key", lim, "keys", at))?;
                    }
                }
                m.pop_mark();
                continue;
            }
            b'b' => {
                m.discard(1);
                continue;
            }
            b'Q' => {
                if let Some(v) = m.pop() {
                    if let Val::Pid { key, elsize } = &v {
                        legacy.storage(key.clone(), *elsize, m.ctx.lim.storages).map_err(|lim| m.limit("legacy storage", lim, "storages", at))?;
                    }
                    m.release(v);
                }
                Val::Other
            }
            b'e' | b'u' | 0x90 => {
                m.pop_mark();
                continue;
            }
            b's' => {
                m.discard(2);
                continue;
            }
            b't' => {
                m.tuple_from_mark(at)?;
                continue;
            }
            b'l' | b'd' | 0x91 | b'o' => {
                m.pop_mark();
                Val::Other
            }
            0x85..=0x87 => {
                m.discard((op - 0x84) as usize);
                Val::Other
            }
            b'R' | 0x81 => {
                m.discard(2);
                Val::Other
            }
            0x92 => {
                m.discard(3);
                Val::Other
            }
            0x80 => {
                let v = r.uint(1)? as u8;
                if v > 5 {
                    return Err(Halt::Protocol { v, at });
                }
                continue;
            }
            0x95 => {
                r.take(8)?;
                continue;
            }
            0x82..=0x84 => {
                r.take(match op {
                    0x82 => 1,
                    0x83 => 2,
                    _ => 4,
                })?;
                m.high(at, "EXT opcode loads an object from the copyreg extension registry: it may run code when unpickled");
                Val::Other
            }
            0x98 => continue,
            other => return Err(Halt::UnknownOpcode { op: other, at }),
        };
        m.push(pushed, at)?;
    }
}

#[cfg(test)]
mod tests {
    use super::py_index;

    #[test]
    fn memo_indices_read_like_cpython() {
        for (line, want) in [(&b"10"[..], Some(10)), (b" 1_0 ", Some(10)), (b"+7", Some(7)), (b"007", Some(7)), (b"3\0junk", Some(3)), (b"\t5\r", Some(5))] {
            assert_eq!(py_index(line), want, "{line:?}");
        }
        for line in [&b""[..], b"-1", b"_1", b"1_", b"1__0", b"1.0", b"0x10", b"18446744073709551616", b"\0"] {
            assert_eq!(py_index(line), None, "{line:?}");
        }
    }
}
