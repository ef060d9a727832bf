//! Zip archives (PyTorch checkpoints, numpy `.npz`), read the ways loaders read them:
//!
//! - by the central directory, as Python's `zipfile` (numpy) and miniz (PyTorch) do — both of
//!   their readings of the end record, when a crafted archive makes them differ;
//! - by walking the local headers from the start, as streaming readers do: each member's
//!   compressed data is skipped using its size (the local header's, or the central directory's
//!   when flag bit 3 defers it to a data descriptor), so `PK\x03\x04` bytes inside compressed
//!   data never create phantom members, while members hidden from the central directory are
//!   still found. Bytes between members that belong to no member are searched for headers.
//!
//! A member is analysed with every (method, size) the two readings give it. Inflation is
//! streamed against per-file budgets shared by all members and nesting levels: bytes
//! inflated in total (time) and bytes held in memory at once (only members that need a full
//! analysis — pickles, object arrays, nested archives — are held; for the others a prefix is
//! enough) — and a third bounds the bytes of members analysed (a member several directory
//! entries point at is analysed each time). Exceeding any is a high "could not fully analyse"
//! finding.

use miniz_oxide::inflate::stream::{InflateState, inflate};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

use crate::budget::Ctx;
use crate::container::{NPY_MAGIC, looks_like_pickle, npy_needs_pickle};
use crate::{Finding, Severity, container};

pub(crate) const LOCAL: &[u8] = b"PK\x03\x04";
const CENTRAL: &[u8] = b"PK\x01\x02";
const END: &[u8] = b"PK\x05\x06";
const END64: &[u8] = b"PK\x06\x06";
const LOCATOR64: &[u8] = b"PK\x06\x07";
const DESCRIPTOR: &[u8] = b"PK\x07\x08";
/// Characters of a member name kept in finding locations.
const NAME_CAP: usize = 256;
/// Inflated bytes that decide whether a member needs a full analysis.
const PREFIX: usize = 64 << 10;
const CHUNK: usize = 32 << 10;

fn le(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
}
fn u16le(b: &[u8], at: usize) -> Option<u16> {
    le(b, at, 2).map(|v| v as u16)
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    le(b, at, 4).map(|v| v as u32)
}
fn u64le(b: &[u8], at: usize) -> Option<u64> {
    le(b, at, 8)
}

/// The zip64 extended-information extra field (id 1): its 8-byte values in order.
fn zip64_values(extra: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let mut p = 0usize;
    let mut body: &[u8] = &[];
    while let (Some(id), Some(n)) = (u16le(extra, p), u16le(extra, p + 2)) {
        let Some(b) = extra.get(p + 4..p + 4 + n as usize) else { break };
        if id == 1 {
            body = b;
            break;
        }
        p += 4 + n as usize;
    }
    body.chunks_exact(8).map(|c| u64le(c, 0).unwrap_or(0))
}

struct Local<'a> {
    flags: u16,
    method: u16,
    /// Compressed size in the local header (zip64 resolved); `None` when deferred or unknown.
    csize: Option<u64>,
    zip64: bool,
    name: &'a [u8],
    body: usize,
}

fn local_header(data: &[u8], h: usize) -> Option<Local<'_>> {
    if data.get(h..h.checked_add(4)?)? != LOCAL {
        return None;
    }
    let flags = u16le(data, h + 6)?;
    let method = u16le(data, h + 8)?;
    let (cs, us) = (u32le(data, h + 18)?, u32le(data, h + 22)?);
    let (nlen, xlen) = (u16le(data, h + 26)? as usize, u16le(data, h + 28)? as usize);
    let name = data.get(h + 30..h + 30 + nlen)?;
    let extra = data.get(h + 30 + nlen..h + 30 + nlen + xlen).unwrap_or(&[]);
    let body = h + 30 + nlen + xlen;
    if body > data.len() {
        return None;
    }
    let zip64 = cs == u32::MAX || us == u32::MAX;
    let csize = if cs == u32::MAX {
        // The local zip64 field holds the uncompressed size first, then the compressed size.
        zip64_values(extra).nth(if us == u32::MAX { 1 } else { 0 })
    } else if flags & 8 != 0 && cs == 0 {
        None
    } else {
        Some(cs as u64)
    };
    Some(Local { flags, method, csize, zip64, name, body })
}

struct Central<'a> {
    flags: u16,
    method: u16,
    csize: u64,
    header: u64,
    name: &'a [u8],
    /// Offset just past this entry.
    next: usize,
}

/// One reading of the central directory: where it starts, how long it is, and the shift its
/// reader applies to local-header offsets.
#[derive(Clone, Copy, PartialEq)]
struct Directory {
    start: usize,
    len: usize,
    shift: i128,
}

/// The central directory as miniz (offsets as written) and Python's zipfile (offsets relative to
/// where the directory really ends, for archives with data prepended) read it.
fn directories(data: &[u8]) -> Vec<Directory> {
    let len = data.len();
    let Some(last) = len.checked_sub(22) else { return Vec::new() };
    let lo = last.saturating_sub(0xffff);
    let Some(eocd) = (lo..=last).rev().find(|&p| data[p..].starts_with(END)) else { return Vec::new() };
    let (Some(size), Some(offset)) = (u32le(data, eocd + 12), u32le(data, eocd + 16)) else { return Vec::new() };
    let (mut size, mut offset, mut end_of_dir) = (size as u64, offset as u64, eocd as u64);
    let mut miniz_offset = offset;
    if eocd >= 20 && data[eocd - 20..].starts_with(LOCATOR64) {
        // Python reads the zip64 end record just before the locator, miniz where it points.
        let python64 = (eocd - 20).checked_sub(56).filter(|&p| data[p..].starts_with(END64));
        let miniz64 = u64le(data, eocd - 12).and_then(|p| usize::try_from(p).ok()).filter(|&p| data.get(p..).is_some_and(|d| d.starts_with(END64)));
        if let Some(p) = python64 {
            size = u64le(data, p + 40).unwrap_or(size);
            offset = u64le(data, p + 48).unwrap_or(offset);
            end_of_dir = p as u64;
        }
        if let Some(p) = miniz64 {
            miniz_offset = u64le(data, p + 48).unwrap_or(miniz_offset);
        }
    }
    let mut out = Vec::new();
    let mut add = |start: i128, shift: i128| {
        if let (Ok(start), Ok(len)) = (usize::try_from(start), usize::try_from(size))
            && start < data.len()
        {
            let d = Directory { start, len, shift };
            if !out.contains(&d) {
                out.push(d);
            }
        }
    };
    add(miniz_offset as i128, 0);
    let concat = end_of_dir as i128 - size as i128 - offset as i128;
    add(offset as i128 + concat, concat);
    out
}

/// Where a directory's parsed entries end.
fn central_end(data: &[u8], d: Directory) -> usize {
    let mut end = d.start;
    for c in central_entries(data, d) {
        end = c.next;
    }
    end
}

fn central_entries(data: &[u8], d: Directory) -> impl Iterator<Item = Central<'_>> + '_ {
    let end = d.start.saturating_add(d.len).min(data.len());
    let mut p = d.start;
    std::iter::from_fn(move || {
        if p >= end || !data[p..].starts_with(CENTRAL) {
            return None;
        }
        let h = p;
        let (nlen, xlen, clen) = (u16le(data, h + 28)? as usize, u16le(data, h + 30)? as usize, u16le(data, h + 32)? as usize);
        let name = data.get(h + 46..h + 46 + nlen)?;
        let extra = data.get(h + 46 + nlen..h + 46 + nlen + xlen).unwrap_or(&[]);
        p = h + 46 + nlen + xlen + clen;
        let (us, cs, off) = (u32le(data, h + 24)?, u32le(data, h + 20)?, u32le(data, h + 42)?);
        let mut z = zip64_values(extra);
        if us == u32::MAX {
            z.next();
        }
        let csize = if cs == u32::MAX { z.next().unwrap_or(u64::MAX) } else { cs as u64 };
        let offset = if off == u32::MAX { z.next().unwrap_or(u64::MAX) } else { off as u64 };
        let header = u64::try_from(offset as i128 + d.shift).unwrap_or(u64::MAX);
        Some(Central { flags: u16le(data, h + 8)?, method: u16le(data, h + 10)?, csize, header, name, next: p })
    })
}

/// One way of reading a member.
struct View<'a> {
    header: usize,
    name: &'a [u8],
    method: u16,
    flags: u16,
    body: usize,
    /// Compressed size; `None` when no reader can tell it.
    size: Option<u64>,
}

pub(crate) fn zip(data: &[u8], location: &str, depth: usize, ctx: &mut Ctx) {
    let dirs = directories(data);
    // Central-directory sizes by local-header offset, for members whose local header defers them.
    let mut sizes: Vec<(u64, u64)> = dirs.iter().flat_map(|&d| central_entries(data, d).map(|c| (c.header, c.csize))).collect();
    sizes.sort_unstable();
    // Bytes of parsed directory entries: not searched for local headers (names and comments
    // there are not members for any reader).
    let dir_ranges: Vec<(usize, usize)> = dirs.iter().map(|&d| (d.start, central_end(data, d))).collect();
    let mut visited: Vec<usize> = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if let Some(&(_, end)) = dir_ranges.iter().find(|&&(s, e)| s <= pos && pos < e) {
            pos = end;
            continue;
        }
        let Some(l) = local_header(data, pos) else {
            // Not a member here: search for the next local header (outside any directory).
            match data.get(pos + 1..).and_then(|rest| rest.windows(4).position(|w| w == LOCAL)) {
                Some(i) => pos += 1 + i,
                None => break,
            }
            continue;
        };
        visited.push(pos);
        let size = l.csize.or_else(|| sizes.binary_search_by_key(&(pos as u64), |&(h, _)| h).ok().map(|i| sizes[i].1));
        let view = View { header: pos, name: l.name, method: l.method, flags: l.flags, body: l.body, size };
        let end = member(data, location, depth, ctx, &view);
        match size.and_then(|n| usize::try_from(n).ok()).and_then(|n| l.body.checked_add(n)).or(end) {
            Some(e) => {
                pos = e.min(data.len());
                if l.flags & 8 != 0 && data[pos..].starts_with(DESCRIPTOR) {
                    pos = pos.saturating_add(if l.zip64 { 24 } else { 16 }).min(data.len());
                }
            }
            // Where the data ends is unknown (already reported): search on from its start.
            None => pos = l.body,
        }
        pos = pos.max(view.header + 4);
    }
    let mut any = !visited.is_empty();
    for &d in &dirs {
        for c in central_entries(data, d) {
            any = true;
            let Some(l) = usize::try_from(c.header).ok().and_then(|h| local_header(data, h)) else {
                // Readers refuse a directory entry without a local header there: nothing loads.
                continue;
            };
            let h = c.header as usize;
            // Skip a reading identical to the one the walk made.
            let walked = l.csize.or_else(|| sizes.binary_search_by_key(&c.header, |&(h, _)| h).ok().map(|i| sizes[i].1));
            let same = visited.binary_search(&h).is_ok() && l.method == c.method && walked == Some(c.csize) && l.name == c.name;
            if !same {
                member(data, location, depth, ctx, &View { header: h, name: c.name, method: c.method, flags: c.flags, body: l.body, size: Some(c.csize) });
            }
        }
    }
    if !any {
        ctx.push(Finding::new(Severity::Medium, "malformed-archive", location, Some(0), "zip signature but no readable member".into()));
    }
}

fn display_name(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.char_indices().nth(NAME_CAP) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

/// Analyse one view of a member. Returns where its compressed data ends when only inflating it
/// could tell (deflate with a deferred size that no directory gives).
fn member(data: &[u8], location: &str, depth: usize, ctx: &mut Ctx, v: &View) -> Option<usize> {
    let name = display_name(v.name);
    let loc = format!("{location}!{name}");
    let at = Some(v.header as u64);
    let avail = data.get(v.body..).unwrap_or(&[]);
    let comp = match v.size {
        Some(n) if n <= avail.len() as u64 => &avail[..n as usize],
        Some(_) => {
            ctx.push(Finding::new(Severity::Medium, "truncated-member", &loc, at, format!("member {name} is truncated: its data ends before the size its header declares")));
            avail
        }
        None => avail,
    };
    match v.method {
        0 if v.size.is_none() => {
            ctx.incomplete(&loc, at, &format!("stored member {name} gives its size only in a data descriptor and no central directory lists it, so where its data ends is unknown"));
            None
        }
        0 => {
            route(comp, &name, &loc, depth, ctx, v);
            None
        }
        8 => inflate_member(comp, &name, &loc, depth, ctx, v),
        m => {
            if looks_like_pickle(&name, &[]) {
                ctx.incomplete(&loc, at, &format!("member {name} is compressed with method {m}, which cannot be inspected here, and its name says it is a pickle"));
            } else if v.size.is_none() {
                ctx.incomplete(&loc, at, &format!("member {name} (method {m}) gives its size only in a data descriptor and no central directory lists it, so where its data ends is unknown"));
            }
            None
        }
    }
}

/// Scan a member's (possibly partial) content when it may be unpickled.
fn route(content: &[u8], name: &str, loc: &str, depth: usize, ctx: &mut Ctx, v: &View) {
    // The "encrypted" flag is only a claim: loaders such as PyTorch's ignore it and unpickle the
    // bytes as they are, so a member that may be unpickled is analysed whatever the flag says.
    if looks_like_pickle(name, content) {
        let n = content.len() as u64;
        if n > ctx.member_left {
            if !ctx.member_exhausted {
                ctx.member_exhausted = true;
                let b = ctx.member_budget;
                ctx.incomplete(loc, Some(v.header as u64), &format!("analysing member {name} exceeds the budget of {b} member bytes analysed per file (all members and nesting levels together)"));
            }
            return;
        }
        ctx.member_left -= n;
        container::scan_bytes(content, loc, depth + 1, ctx);
    } else if v.flags & 1 != 0 {
        ctx.push(Finding::new(Severity::Info, "encrypted-member", loc, Some(v.header as u64), "encrypted archive member: its content cannot be read (nor unpickled without the password)".into()));
    }
}

enum Want {
    /// Not decided yet: inflate at least this many bytes.
    Need(usize),
    Full,
    Skip,
}

/// How much of a member the analysis needs, from its first bytes (`complete`: all of it).
fn want(name: &str, head: &[u8], complete: bool) -> Want {
    if head.starts_with(LOCAL) {
        return Want::Full;
    }
    if head.starts_with(NPY_MAGIC) || (!complete && NPY_MAGIC.starts_with(head)) {
        return match npy_needs_pickle(head) {
            Ok(true) => Want::Full,
            Ok(false) => Want::Skip,
            Err(Some(n)) if !complete => Want::Need(n),
            Err(_) => Want::Full,
        };
    }
    if !complete && head.len() < PREFIX {
        return Want::Need(PREFIX);
    }
    if looks_like_pickle(name, head) { Want::Full } else { Want::Skip }
}

/// Inflate a deflated member as far as its analysis needs, within the file's budgets, then
/// analyse it. Returns where its compressed data ends when the stream was inflated to its end
/// and its size was unknown.
fn inflate_member(comp: &[u8], name: &str, loc: &str, depth: usize, ctx: &mut Ctx, v: &View) -> Option<usize> {
    let at = Some(v.header as u64);
    let need_end = v.size.is_none();
    let mut st = InflateState::new_boxed(DataFormat::Raw);
    let mut chunk = vec![0u8; CHUNK];
    let mut out: Vec<u8> = Vec::new();
    let mut keep = Want::Need(PREFIX);
    let mut in_pos = 0usize;
    let mut ended = false;
    let mut over_budget = false;
    loop {
        if let Want::Skip = keep
            && !need_end
        {
            break;
        }
        if ctx.inflate_left == 0 {
            if !ctx.inflate_exhausted {
                ctx.inflate_exhausted = true;
                let b = ctx.inflate_budget;
                ctx.incomplete(loc, at, &format!("inflating member {name} exceeds the inflate budget of {b} bytes per file (all members and nesting levels together; archive bomb?)"));
            }
            over_budget = true;
            break;
        }
        let room = chunk.len().min(usize::try_from(ctx.inflate_left).unwrap_or(usize::MAX));
        let res = inflate(&mut st, &comp[in_pos..], &mut chunk[..room], MZFlush::None);
        in_pos += res.bytes_consumed;
        ctx.inflate_left = ctx.inflate_left.saturating_sub(res.bytes_written as u64);
        if !matches!(keep, Want::Skip) && res.bytes_written > 0 {
            if !hold(&mut out, &chunk[..res.bytes_written], ctx) {
                let b = ctx.held_budget;
                ctx.incomplete(loc, at, &format!("member {name} inflates past the {b} bytes the analysis may hold in memory at once (archive bomb?)"));
                over_budget = true;
                break;
            }
            if let Want::Need(n) = keep
                && out.len() >= n
            {
                keep = want(name, &out, false);
            }
        }
        match res.status {
            Ok(MZStatus::StreamEnd) => {
                ended = true;
                break;
            }
            Ok(_) if res.bytes_consumed == 0 && res.bytes_written == 0 => break,
            Ok(_) => {}
            // Corrupt or truncated deflate data: readers stop there; what came out is analysed.
            Err(_) => break,
        }
    }
    route(&out, name, loc, depth, ctx, v);
    ctx.held_left = ctx.held_left.saturating_add(out.capacity() as u64);
    if need_end && !ended && !over_budget {
        ctx.incomplete(loc, at, &format!("member {name} gives its size only in a data descriptor, no central directory lists it, and its deflate stream does not end, so where its data ends is unknown"));
    }
    (need_end && ended).then(|| v.body.saturating_add(in_pos))
}

/// Append to a held buffer, charging its capacity to the held budget; false when over budget.
fn hold(out: &mut Vec<u8>, bytes: &[u8], ctx: &mut Ctx) -> bool {
    let need = out.len().saturating_add(bytes.len());
    if need > out.capacity() {
        // Grow by an eighth (not doubling), so capacity stays close to what is held.
        let mut target = need.max(out.len() + out.len() / 8).max(CHUNK);
        if (target - out.capacity()) as u64 > ctx.held_left {
            target = need;
        }
        if (target - out.capacity()) as u64 > ctx.held_left {
            return false;
        }
        let before = out.capacity();
        out.reserve_exact(target - out.len());
        ctx.held_left = ctx.held_left.saturating_sub((out.capacity() - before) as u64);
    }
    out.extend_from_slice(bytes);
    true
}
