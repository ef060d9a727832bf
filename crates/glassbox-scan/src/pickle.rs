//! Opcode-level pickle analysis. Every GLOBAL / INST / STACK_GLOBAL import is resolved (a small
//! stack and memo of string values make STACK_GLOBAL's operands visible through PUT/GET/MEMOIZE
//! tricks) and checked against an allowlist of what real checkpoints need; anything else may run
//! code when unpickled. Nothing is ever executed. Every pickle of a stream is analysed, and the
//! analysis fails closed (see [`analyse`] and `vm.rs`).

mod legacy;
mod memo;
mod vm;

use legacy::Legacy;

use crate::budget::Ctx;
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
pub(crate) const DANGEROUS_MODULES: &[&str] = &[
    "os", "posix", "nt", "subprocess", "sys", "socket", "builtins", "__builtin__", "runpy", "pty",
    "shutil", "ctypes", "importlib", "marshal", "types", "pickle", "_pickle", "code", "codeop",
    "pdb", "bdb", "profile", "cProfile", "trace", "timeit", "webbrowser", "requests", "urllib",
    "httplib", "http", "aiohttp", "asyncio", "pip", "venv", "ensurepip", "idlelib", "pydoc",
    "operator", "_operator", "functools", "inspect", "torch.serialization", "cloudpickle",
];

pub fn allowed(module: &str, name: &str) -> bool {
    ALLOW.iter().any(|&(m, n)| m == module && n == name) || (module == "torch" && TORCH_STORAGES.contains(&name))
}

/// Analyse the pickle stream(s) in `data` under the default limits; `location` names the
/// file/member in findings.
pub fn analyse(data: &[u8], location: &str, findings: &mut Vec<Finding>) {
    let limits = crate::Limits::default();
    let mut ctx = Ctx::new(&limits, data.len());
    analyse_in(data, 0, location, &mut ctx);
    findings.extend(ctx.finish(location));
}

/// Pickles a legacy `torch.save` file holds before its raw storage records.
const LEGACY_PICKLES: usize = 5;

/// Analyse every pickle in `data` (offsets in findings are `base` + offset in `data`): after each
/// STOP the following bytes are analysed as a further pickle, of any protocol (protocol 0/1
/// pickles have no PROTO opcode), to the end of the data. In a legacy `torch.save` file the raw
/// storage records after its fifth pickle are walked exactly, and what follows them is analysed
/// again.
pub(crate) fn analyse_in(data: &[u8], base: u64, location: &str, ctx: &mut Ctx) {
    let mut legacy = Legacy::default();
    let mut is_legacy = false;
    let mut pos = 0usize;
    let mut index = 0usize;
    let at = |pos: usize| Some(base.saturating_add(pos as u64));
    while pos < data.len() {
        if is_legacy && index == LEGACY_PICKLES {
            match legacy.walk(data, pos) {
                Ok(end) => {
                    is_legacy = false;
                    pos = end;
                    continue;
                }
                Err(e) => {
                    ctx.incomplete(location, at(pos), &format!("the raw storage data after the legacy torch.save pickles does not match the storages they declare ({e}); the {} bytes from there were not analysed", data.len() - pos));
                    return;
                }
            }
        }
        let before = ctx.emitted();
        let collect = is_legacy && index == LEGACY_PICKLES - 1;
        match vm::run(data, pos, base, location, ctx, &mut legacy, collect) {
            Ok(ran) => {
                is_legacy |= index == 0 && ran.magic;
                pos = ran.end;
                index += 1;
            }
            Err(h) if h.is_limit() => {
                ctx.incomplete(location, Some(h.at()), &format!("{h}; the rest of the pickle was not analysed and may run code when unpickled"));
                return;
            }
            // The first pickle does not parse to its STOP. CPython's unpickler runs opcodes as it
            // reads them and raises at this very byte (the model in vm.rs stops only where
            // CPython must stop too), so every opcode that can run was analysed above, and
            // neither pickle.load nor torch.load reads past the failure. Not high by itself: a
            // file that is not a pickle at all, or a truncated download, is not code execution.
            Err(h) if index == 0 => {
                if ctx.emitted() == before {
                    ctx.push(Finding::new(Severity::Info, "not-a-pickle", location, at(pos), format!("not a valid pickle ({h}); unpickling fails there, and nothing before it can run code")));
                } else {
                    ctx.push(Finding::new(Severity::Medium, "malformed-pickle", location, Some(h.at()), format!("malformed pickle: {h}; unpickling stops there, the opcodes before it were analysed")));
                }
                return;
            }
            // Bytes after a complete pickle that are neither a further pickle nor legacy storage
            // records: loaders differ in how they read past a STOP (legacy torch.load reads raw
            // records between pickles, other loaders seek), so bytes the analysis cannot account
            // for may hide a pickle some loader reads. Fail closed.
            Err(h) => {
                ctx.incomplete(location, at(pos), &format!("the {} bytes at offset {}, after the pickle that ends there, are not a further pickle ({h})", data.len() - pos, base.saturating_add(pos as u64)));
                return;
            }
        }
    }
}
