//! Opcode-level pickle analysis. Every GLOBAL / INST / STACK_GLOBAL import is resolved (a small
//! stack and memo of string values make STACK_GLOBAL's operands visible through PUT/GET/MEMOIZE
//! tricks) and checked against an allowlist of what real checkpoints need; anything else may run
//! code when unpickled. Nothing is ever executed. Several pickles in a row (legacy PyTorch
//! files) are all analysed.

use crate::{Finding, Severity};

/// (module, name) pairs that real PyTorch / numpy checkpoints import and that only build data.
const ALLOW: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Size"),
    ("torch", "device"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    ("copyreg", "_reconstructor"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("__builtin__", "slice"),
    ("__builtin__", "complex"),
    ("__builtin__", "bytearray"),
];

const TORCH_STORAGES: &[&str] = &[
    "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
    "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage", "ComplexFloatStorage",
    "ComplexDoubleStorage", "UntypedStorage", "float16", "float32", "float64", "bfloat16", "int8",
    "int16", "int32", "int64", "uint8", "bool", "complex64", "complex128",
];

/// Modules whose import is known to run or reach code (named in the message for clarity).
const DANGEROUS_MODULES: &[&str] = &[
    "os", "posix", "nt", "subprocess", "sys", "socket", "builtins", "__builtin__", "runpy", "pty",
    "shutil", "ctypes", "importlib", "marshal", "types", "pickle", "_pickle", "code", "codeop",
    "pdb", "bdb", "profile", "cProfile", "trace", "timeit", "webbrowser", "requests", "urllib",
    "httplib", "http", "aiohttp", "asyncio", "pip", "venv", "ensurepip", "idlelib", "pydoc",
    "operator", "_operator", "functools", "inspect", "torch.serialization", "cloudpickle",
];

pub fn allowed(module: &str, name: &str) -> bool {
    ALLOW.iter().any(|&(m, n)| m == module && n == name) || (module == "torch" && TORCH_STORAGES.contains(&name))
}

#[derive(Clone, Debug)]
enum Val {
    Str(String),
    Mark,
    Other,
}

const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 20;

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| format!("truncated: {n} bytes needed at offset {}", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let s = self.take(n)?;
        let mut v = 0u64;
        for (i, &b) in s.iter().enumerate() {
            v |= (b as u64) << (8 * i);
        }
        Ok(v)
    }
    fn line(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.b[self.pos..];
        let n = rest.iter().position(|&c| c == b'\n').ok_or_else(|| format!("unterminated line at offset {}", self.pos))?;
        let s = &rest[..n];
        self.pos += n + 1;
        Ok(s)
    }
    fn utf8_line(&mut self) -> Result<String, String> {
        let at = self.pos;
        String::from_utf8(self.line()?.to_vec()).map_err(|_| format!("import name at offset {at} is not UTF-8 (Python refuses it)"))
    }
    fn sized(&mut self, len_bytes: usize, limit: u64) -> Result<&'a [u8], String> {
        let n = self.uint(len_bytes)?;
        if n > limit || n as usize > self.b.len() {
            return Err(format!("length {n} at offset {} exceeds the data", self.pos));
        }
        self.take(n as usize)
    }
}

fn pop_mark(stack: &mut Vec<Val>) {
    while let Some(v) = stack.pop() {
        if matches!(v, Val::Mark) {
            break;
        }
    }
}

fn pop_n(stack: &mut Vec<Val>, n: usize) {
    for _ in 0..n {
        stack.pop();
    }
}

/// Analyse the pickle stream(s) in `data`; `location` names the file/member in findings.
pub fn analyse(data: &[u8], location: &str, findings: &mut Vec<Finding>) {
    let mut r = Reader { b: data, pos: 0 };
    let mut first = true;
    while r.pos < data.len() {
        let start = r.pos;
        match analyse_one(&mut r, location, findings) {
            Ok(()) => first = false,
            Err(e) => {
                if first && start == 0 && findings.iter().all(|f| f.location != location) {
                    findings.push(Finding::new(Severity::Info, "not-a-pickle", location, Some(start as u64), format!("not a valid pickle ({e}); nothing in it can run when unpickled")));
                } else {
                    findings.push(Finding::new(Severity::Medium, "malformed-pickle", location, Some(r.pos as u64), format!("malformed pickle: {e}; unpickling stops there, the opcodes before it were analysed")));
                }
                return;
            }
        }
        // Trailing bytes after the last pickle (e.g. raw tensor data in legacy files) are only
        // analysed while they keep looking like pickles.
        if r.pos < data.len() && data[r.pos] != 0x80 {
            return;
        }
    }
}

fn analyse_one(r: &mut Reader, location: &str, findings: &mut Vec<Finding>) -> Result<(), String> {
    let mut stack: Vec<Val> = Vec::new();
    let mut memo: std::collections::HashMap<u64, Val> = std::collections::HashMap::new();
    let lim = r.b.len() as u64;
    let global = |module: &str, name: &str, at: usize, how: &str, findings: &mut Vec<Finding>| {
        if allowed(module, name) {
            return;
        }
        let root = module.split('.').next().unwrap_or(module);
        let known = DANGEROUS_MODULES.contains(&module) || DANGEROUS_MODULES.contains(&root);
        let msg = if known {
            format!("{how} imports {module}.{name}: can run code when unpickled")
        } else {
            format!("{how} imports {module}.{name}, which is not on the allowlist of what checkpoints need; it may run code when unpickled")
        };
        findings.push(Finding::new(Severity::High, "pickle-import", location, Some(at as u64), msg).with_import(module, name));
    };
    loop {
        let at = r.pos;
        let op = r.take(1)?[0];
        match op {
            b'.' => return Ok(()),
            b'(' => stack.push(Val::Mark),
            b')' | b']' | b'}' | b'N' | 0x88 | 0x89 | 0x8f => stack.push(Val::Other),
            b'0' => {
                stack.pop();
            }
            b'1' => pop_mark(&mut stack),
            b'2' => {
                let top = stack.last().cloned().unwrap_or(Val::Other);
                stack.push(top);
            }
            b'F' | b'I' | b'L' => {
                r.line()?;
                stack.push(Val::Other);
            }
            b'S' | b'V' => {
                let l = r.line()?;
                let s = String::from_utf8_lossy(l);
                let s = s.trim_matches(|c| c == '\'' || c == '"').to_owned();
                stack.push(Val::Str(s));
            }
            b'P' => {
                r.line()?;
                stack.push(Val::Other);
            }
            b'J' => {
                r.take(4)?;
                stack.push(Val::Other);
            }
            b'K' => {
                r.take(1)?;
                stack.push(Val::Other);
            }
            b'M' => {
                r.take(2)?;
                stack.push(Val::Other);
            }
            b'G' => {
                r.take(8)?;
                stack.push(Val::Other);
            }
            0x8a => {
                r.sized(1, lim)?;
                stack.push(Val::Other);
            }
            0x8b => {
                r.sized(4, lim)?;
                stack.push(Val::Other);
            }
            b'T' | b'X' => {
                let s = r.sized(4, lim)?;
                stack.push(Val::Str(String::from_utf8_lossy(s).into_owned()));
            }
            b'U' | 0x8c => {
                let s = r.sized(1, lim)?;
                stack.push(Val::Str(String::from_utf8_lossy(s).into_owned()));
            }
            0x8d => {
                let s = r.sized(8, lim)?;
                stack.push(Val::Str(String::from_utf8_lossy(s).into_owned()));
            }
            b'B' => {
                r.sized(4, lim)?;
                stack.push(Val::Other);
            }
            b'C' => {
                r.sized(1, lim)?;
                stack.push(Val::Other);
            }
            0x8e | 0x96 => {
                r.sized(8, lim)?;
                stack.push(Val::Other);
            }
            b'c' => {
                let module = r.utf8_line()?;
                let name = r.utf8_line()?;
                global(&module, &name, at, "GLOBAL", findings);
                stack.push(Val::Other);
            }
            b'i' => {
                let module = r.utf8_line()?;
                let name = r.utf8_line()?;
                global(&module, &name, at, "INST", findings);
                pop_mark(&mut stack);
                stack.push(Val::Other);
            }
            0x93 => {
                let name = stack.pop();
                let module = stack.pop();
                match (module, name) {
                    (Some(Val::Str(m)), Some(Val::Str(n))) => global(&m, &n, at, "STACK_GLOBAL", findings),
                    _ => findings.push(Finding::new(Severity::High, "pickle-import", location, Some(at as u64), "STACK_GLOBAL imports a name that cannot be resolved statically (obfuscated import): it may run code when unpickled".into())),
                }
                stack.push(Val::Other);
            }
            b'g' => {
                let l = r.line()?;
                let k = std::str::from_utf8(l).ok().and_then(|s| s.trim().parse::<u64>().ok()).ok_or("GET index is not a number")?;
                stack.push(memo.get(&k).cloned().unwrap_or(Val::Other));
            }
            b'h' | b'j' => {
                let k = r.uint(if op == b'h' { 1 } else { 4 })?;
                stack.push(memo.get(&k).cloned().unwrap_or(Val::Other));
            }
            b'p' | b'q' | b'r' | 0x94 => {
                let k = match op {
                    b'p' => {
                        let l = r.line()?;
                        std::str::from_utf8(l).ok().and_then(|s| s.trim().parse::<u64>().ok()).ok_or("PUT index is not a number")?
                    }
                    b'q' => r.uint(1)?,
                    b'r' => r.uint(4)?,
                    _ => memo.len() as u64,
                };
                if memo.len() >= MAX_MEMO {
                    return Err("memo grows past its limit".into());
                }
                memo.insert(k, stack.last().cloned().unwrap_or(Val::Other));
            }
            b'a' | b'b' | b'Q' => {
                stack.pop();
                if op == b'Q' {
                    stack.push(Val::Other);
                }
            }
            b'e' | b'u' | 0x90 => pop_mark(&mut stack),
            b's' => pop_n(&mut stack, 2),
            b't' | b'l' | b'd' | 0x91 | b'o' => {
                pop_mark(&mut stack);
                stack.push(Val::Other);
            }
            0x85 | 0x86 | 0x87 => {
                pop_n(&mut stack, (op - 0x84) as usize);
                stack.push(Val::Other);
            }
            b'R' | 0x81 => {
                pop_n(&mut stack, 2);
                stack.push(Val::Other);
            }
            0x92 => {
                pop_n(&mut stack, 3);
                stack.push(Val::Other);
            }
            0x80 => {
                let v = r.uint(1)?;
                if v > 5 {
                    return Err(format!("unsupported pickle protocol {v}"));
                }
            }
            0x95 => {
                r.take(8)?;
            }
            0x82 | 0x83 | 0x84 => {
                r.take(match op {
                    0x82 => 1,
                    0x83 => 2,
                    _ => 4,
                })?;
                findings.push(Finding::new(Severity::High, "pickle-import", location, Some(at as u64), "EXT opcode loads an object from the copyreg extension registry: it may run code when unpickled".into()));
                stack.push(Val::Other);
            }
            0x97 => stack.push(Val::Other),
            0x98 => {}
            other => return Err(format!("unknown opcode 0x{other:02x} at offset {at}")),
        }
        if stack.len() > MAX_STACK {
            return Err("stack grows past its limit".into());
        }
    }
}
