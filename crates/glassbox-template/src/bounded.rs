//! Size bounds enforced while a template renders, not after: the output goes through a writer
//! that refuses to grow past the limit, every `{{ … }}` emission (also inside `{% set %}` blocks,
//! `{% filter %}` blocks and macro bodies, which minijinja captures into strings that bypass the
//! writer) is counted against an emission budget as it is written, and the built-in filters and
//! Python string methods that can make a large string from a small argument (`indent`, `join`,
//! `replace`, `format`) are refused before they allocate when
//! their result would pass the limit.

use std::fmt::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Error as JError, ErrorKind, Output, State};

/// Marker put in minijinja errors raised by the bounds, so `render` can map them to
/// [`crate::Error::OutputTooLarge`].
pub(crate) const OVER_LIMIT: &str = "glassbox: template output over the size limit";

pub(crate) fn over_limit() -> JError {
    JError::new(ErrorKind::InvalidOperation, OVER_LIMIT)
}

/// The rendered prompt, refusing to grow past `limit` bytes: the error stops rendering at
/// the first write past the bound.
pub(crate) struct CappedBuf {
    pub buf: Vec<u8>,
    pub limit: usize,
    pub exceeded: bool,
}

impl std::io::Write for CappedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(b.len()) > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("template output over the size limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One render's emission budget, shared by the formatter (which must be `Send + Sync`).
#[derive(Clone)]
pub(crate) struct Budget {
    left: Arc<AtomicUsize>,
    exceeded: Arc<std::sync::atomic::AtomicBool>,
}

impl Budget {
    pub fn new(bytes: usize) -> Budget {
        Budget { left: Arc::new(AtomicUsize::new(bytes)), exceeded: Arc::default() }
    }

    /// Takes `n` bytes; false (and remembered) when they are not there.
    fn take(&self, n: usize) -> bool {
        let ok = self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(n)).is_ok();
        if !ok {
            self.exceeded.store(true, Ordering::Relaxed);
        }
        ok
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// The formatter: writes `value` as jinja2 without autoescape does, counting every byte.
    pub fn formatter(self) -> impl Fn(&mut Output, &mut State, &Value) -> Result<(), JError> + Send + Sync + 'static {
        move |out, _state, value| {
            if value.is_undefined() {
                return Ok(());
            }
            let mut w = Counted { out, budget: &self };
            write!(w, "{value}").map_err(|_| if self.exceeded() { over_limit() } else { JError::from(ErrorKind::WriteFailure) })
        }
    }
}

struct Counted<'a, 'b> {
    out: &'a mut Output<'b>,
    budget: &'a Budget,
}

impl Write for Counted<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.budget.take(s.len()) {
            return Err(fmt::Error);
        }
        self.out.write_str(s)
    }
}

/// Checks that a result of `n` bytes (`None`: the size overflowed) fits `limit`.
fn fits(n: Option<usize>, limit: usize) -> Result<(), JError> {
    match n {
        Some(n) if n <= limit => Ok(()),
        _ => Err(over_limit()),
    }
}

fn usize_arg(v: Option<&Value>) -> Option<usize> {
    v.and_then(|v| i64::try_from(v.clone()).ok()).map(|i| usize::try_from(i).unwrap_or(0))
}

/// Upper bound of `s.replace(old, new[, count])`.
fn replace_size(s: &str, old: &str, new: &str, count: Option<usize>) -> Option<usize> {
    if new.len() <= old.len() && !old.is_empty() {
        return Some(s.len());
    }
    // An empty `old` matches between every character.
    let n = if old.is_empty() { s.chars().count() + 1 } else { s.matches(old).count() };
    let n = count.map_or(n, |c| c.min(n));
    s.len().checked_add(n.checked_mul(new.len())?)
}

/// Most items a `join` may take: filters iterate without spending fuel, and minijinja lets a
/// template repeat a sequence to 100 M items (the fuzzer found `join` over 20 M items taking
/// minutes). No chat template joins a million things.
const MAX_JOIN_ITEMS: usize = 1 << 20;

/// Upper bound of joining `items` with `sep`.
fn join_size(items: &Value, sep: &str) -> Result<Option<usize>, JError> {
    if items.len().is_some_and(|n| n > MAX_JOIN_ITEMS) {
        return Err(over_limit());
    }
    let mut total = 0usize;
    let mut n = 0usize;
    for item in items.try_iter()? {
        if n == MAX_JOIN_ITEMS {
            return Err(over_limit());
        }
        let len = match item.as_str() {
            Some(s) => s.len(),
            None => item.to_string().len(),
        };
        total = match total.checked_add(len) {
            Some(t) => t,
            None => return Ok(None),
        };
        n += 1;
    }
    Ok(n.saturating_sub(1).checked_mul(sep.len()).and_then(|s| s.checked_add(total)))
}

/// Positional (non-keyword) argument `i` of a filter call.
fn positional(args: &[Value], i: usize) -> Option<&Value> {
    args.iter().filter(|v| !v.is_kwargs()).nth(i)
}

/// A keyword argument of a filter call.
fn keyword(args: &[Value], name: &str) -> Option<Value> {
    args.iter().find(|v| v.is_kwargs()).and_then(|kw| kw.get_attr(name).ok()).filter(|v| !v.is_undefined())
}

/// Pre-checks the built-in filters that amplify (`indent`, `join`, `replace`, `center`); the
/// built-in filter itself then runs unchanged on the same arguments.
pub(crate) fn install_filter_checks(env: &mut minijinja::Environment<'static>, limit: usize) {
    type Check = fn(&[Value], usize) -> Result<(), JError>;
    let wrap = |env: &mut minijinja::Environment<'static>, name: &'static str, orig: Value, check: Check| {
        env.add_filter(name, move |state: &mut State, args: Rest<Value>, kwargs: Kwargs| -> Result<Value, JError> {
            let mut all = args.0;
            if kwargs.args().next().is_some() {
                all.push(Value::from(kwargs));
            }
            check(&all, limit)?;
            orig.call(state, &all)
        });
    };
    wrap(env, "indent", Value::from_function(minijinja::filters::indent), |args, limit| {
        let s = positional(args, 0).map(|v| v.to_string()).unwrap_or_default();
        let w = positional(args, 1).cloned().or_else(|| keyword(args, "width"));
        let width = match &w {
            Some(w) if w.as_str().is_some() => w.as_str().map(str::len),
            w => usize_arg(w.as_ref()),
        }
        .unwrap_or(4);
        let lines = s.lines().count().max(1);
        fits(lines.checked_mul(width).and_then(|x| x.checked_add(s.len())), limit)
    });
    wrap(env, "join", Value::from_function(minijinja::filters::join), |args, limit| {
        let (Some(items), sep) = (positional(args, 0), positional(args, 1).cloned().or_else(|| keyword(args, "d"))) else {
            return Ok(());
        };
        fits(join_size(items, &sep.map(|s| s.to_string()).unwrap_or_default())?, limit)
    });
    wrap(env, "format", Value::from_function(minijinja::filters::format), |args, limit| {
        positional(args, 0).and_then(|f| f.as_str()).map_or(Ok(()), |f| spec_widths_fit(f, limit))
    });
    wrap(env, "replace", Value::from_function(minijinja::filters::replace), |args, limit| {
        let get = |i| positional(args, i).map(|v: &Value| v.to_string()).unwrap_or_default();
        fits(replace_size(&get(0), &get(1), &get(2), usize_arg(positional(args, 3))), limit)
    });
}

/// Refuses a format string holding a number (a field width or precision) larger than `limit`.
fn spec_widths_fit(fmt: &str, limit: usize) -> Result<(), JError> {
    for run in fmt.split(|c: char| !c.is_ascii_digit()).filter(|r| !r.is_empty()) {
        if run.len() > 19 || run.parse::<u64>().map_or(true, |n| n > limit as u64) {
            return Err(over_limit());
        }
    }
    Ok(())
}

/// Wraps the pycompat method callback (Python string methods: `join`, `replace`, `format`, …)
/// with size pre-checks.
pub(crate) fn checked_method_callback(
    limit: usize,
) -> impl Fn(&mut State, &Value, &str, &[Value]) -> Result<Value, JError> + Send + Sync + 'static {
    move |state: &mut State, value: &Value, method: &str, args: &[Value]| {
        if let Some(s) = value.as_str() {
            match method {
                "join" => {
                    if let Some(items) = args.first() {
                        fits(join_size(items, s)?, limit)?;
                    }
                }
                "replace" => {
                    let (old, new) = (args.first().and_then(|v| v.as_str()), args.get(1).and_then(|v| v.as_str()));
                    if let (Some(old), Some(new)) = (old, new) {
                        fits(replace_size(s, old, new, usize_arg(args.get(2))), limit)?;
                    }
                }
                // A width inside a format spec ("{:>1000000000}") is built by the callee.
                "format" => spec_widths_fit(s, limit)?,
                _ => {}
            }
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    }
}
