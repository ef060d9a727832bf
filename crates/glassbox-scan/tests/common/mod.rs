//! Builders shared by the scanner's tests: pickles opcode by opcode and zip archives byte by byte
//! (local headers, central directory, data descriptors), so each test states exactly which
//! bytes it feeds the scanner. Nothing here is ever unpickled or extracted.
#![allow(dead_code)]

pub mod adversarial;

/// SHORT_BINUNICODE push.
pub fn s(text: &str) -> Vec<u8> {
    let mut v = vec![0x8c, text.len() as u8];
    v.extend_from_slice(text.as_bytes());
    v
}

/// A pickle: PROTO `proto`, the body, STOP.
pub fn pickle(proto: u8, body: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![0x80, proto];
    for b in body {
        v.extend_from_slice(b);
    }
    v.push(b'.');
    v
}

/// A benign protocol-2 pickle: an empty dict.
pub fn benign2() -> Vec<u8> {
    b"\x80\x02}q\x00.".to_vec()
}

/// A protocol-0 pickle (no PROTO opcode) that runs `os.system("id")` when unpickled.
pub fn evil0() -> Vec<u8> {
    b"cos\nsystem\n(S'id'\ntR.".to_vec()
}

/// A protocol-4 pickle that runs `os.system("id")` when unpickled.
pub fn evil4() -> Vec<u8> {
    pickle(4, &[&s("os"), &s("system"), &[0x93], &s("id"), &[0x85, b'R']])
}

pub fn deflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec(data, 9)
}

/// A deflate stream made of stored (uncompressed) blocks: the raw bytes appear verbatim in the
/// compressed data.
pub fn deflate_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(65535).collect() };
    for (i, c) in chunks.iter().enumerate() {
        out.push(if i + 1 == chunks.len() { 1 } else { 0 });
        let n = c.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

#[derive(Clone)]
pub struct Member {
    pub name: String,
    /// Bytes as stored in the archive (already compressed when `method` is 8).
    pub data: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    /// Compressed size written in the local header (default: the real size; 0 with flag bit 3).
    pub local_csize: Option<u32>,
    /// Compressed size written in the central directory (default: the real size).
    pub cd_csize: Option<u32>,
    /// Name written in the central directory (default: `name`).
    pub cd_name: Option<String>,
    /// Listed in the central directory.
    pub listed: bool,
    /// Write a signed data descriptor after the data.
    pub descriptor: bool,
}

impl Member {
    pub fn stored(name: &str, data: &[u8]) -> Member {
        Member { name: name.into(), data: data.to_vec(), method: 0, flags: 0, local_csize: None, cd_csize: None, cd_name: None, listed: true, descriptor: false }
    }
    pub fn deflated(name: &str, raw: &[u8]) -> Member {
        Member { method: 8, data: deflate(raw), ..Member::stored(name, &[]) }
    }
    /// As PyTorch writes members: flag bit 3, sizes 0 in the local header, a data descriptor.
    pub fn torch_style(mut self) -> Member {
        self.flags |= 0x808;
        self.local_csize = Some(0);
        self.descriptor = true;
        self
    }
}

/// A zip archive of `members`, with a central directory listing those marked `listed`.
pub fn zip(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    let mut n = 0u16;
    for m in members {
        let off = out.len() as u32;
        let real = m.data.len() as u32;
        let lcs = m.local_csize.unwrap_or(real);
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&m.flags.to_le_bytes());
        out.extend_from_slice(&m.method.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // time, date
        out.extend_from_slice(&[0; 4]); // crc (nobody here checks it)
        out.extend_from_slice(&lcs.to_le_bytes());
        out.extend_from_slice(&lcs.to_le_bytes());
        out.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(m.name.as_bytes());
        out.extend_from_slice(&m.data);
        if m.descriptor {
            out.extend_from_slice(b"PK\x07\x08");
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&real.to_le_bytes());
            out.extend_from_slice(&real.to_le_bytes());
        }
        if m.listed {
            let name = m.cd_name.as_deref().unwrap_or(&m.name);
            let cs = m.cd_csize.unwrap_or(real);
            cd.extend_from_slice(b"PK\x01\x02");
            cd.extend_from_slice(&20u16.to_le_bytes());
            cd.extend_from_slice(&20u16.to_le_bytes());
            cd.extend_from_slice(&m.flags.to_le_bytes());
            cd.extend_from_slice(&m.method.to_le_bytes());
            cd.extend_from_slice(&[0; 8]); // time, date, crc
            cd.extend_from_slice(&cs.to_le_bytes());
            cd.extend_from_slice(&cs.to_le_bytes());
            cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
            cd.extend_from_slice(&off.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
            n += 1;
        }
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Text holding a complete local header and a malicious pickle: inside a member's data, a
/// phantom member that no zip reader sees (the text is not itself an archive).
pub fn phantom() -> Vec<u8> {
    let inner = zip(&[Member::stored("evil.pkl", &evil4())]);
    let mut v = b"some text before ".to_vec();
    v.extend_from_slice(&inner);
    v.extend_from_slice(b" and after");
    v
}

/// Findings as "SEVERITY location: message" lines, for assertion messages.
pub fn show(r: &glassbox_scan::Report) -> String {
    r.findings.iter().map(|f| format!("{:?} {} @{:?}: {}", f.severity, f.location, f.offset, f.message)).collect::<Vec<_>>().join("\n")
}

/// The high findings that say the analysis could not be completed.
pub fn incomplete(r: &glassbox_scan::Report) -> Vec<String> {
    r.findings.iter().filter(|f| f.severity == glassbox_scan::Severity::High && f.message.starts_with("could not fully analyse: ")).map(|f| f.message.clone()).collect()
}
