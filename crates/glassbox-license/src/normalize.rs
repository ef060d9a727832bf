//! Licence files arrive as plain text, Markdown or HTML. `to_plain` turns each into lines of
//! plain text (line structure kept, so a match can be located); `words` reduces text to the
//! canonical form phrases and quotes are compared in: lower case, letters and digits only,
//! single spaces, with a dot kept only between two digits ("3.1" stays one token).

use crate::Error;

/// Licence texts over this size are refused: the longest real one (GPL-3.0) is ~36 KB and a
/// vendor's terms page with all its markup ~170 KB.
pub const MAX_TEXT_BYTES: usize = 4 << 20;

/// How a licence document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Markdown,
    Html,
}

impl Format {
    /// Guess from the file name, then from the content.
    pub fn detect(name: &str, text: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".html") || lower.ends_with(".htm") {
            return Format::Html;
        }
        if lower.ends_with(".md") || lower.ends_with(".markdown") {
            return Format::Markdown;
        }
        let head: String = text.chars().take(512).collect::<String>().to_ascii_lowercase();
        if head.trim_start().starts_with("<!doctype html") || head.contains("<html") {
            Format::Html
        } else {
            Format::Plain
        }
    }
}

/// Plain text of a licence document. `name` names the file in errors.
pub fn to_plain(name: &str, bytes: &[u8], format: Format) -> Result<String, Error> {
    if bytes.len() > MAX_TEXT_BYTES {
        return Err(Error::TooLarge { name: name.to_owned(), bytes: bytes.len(), limit: MAX_TEXT_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Error::NotUtf8 { name: name.to_owned(), offset: e.valid_up_to() })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Ok(match format {
        Format::Plain => text.replace("\r\n", "\n"),
        Format::Markdown => markdown_to_plain(&text.replace("\r\n", "\n")),
        Format::Html => html_to_plain(text),
    })
}

/// Drop Markdown markup that is not wording: emphasis markers, heading hashes, backslash
/// escapes, inline HTML tags (link syntax is punctuation, which matching ignores).
fn markdown_to_plain(text: &str) -> String {
    let no_tags = strip_tags(text, false);
    let mut out = String::with_capacity(no_tags.len());
    for line in no_tags.lines() {
        let line = line.trim_start_matches(['#', '>']).trim_start();
        out.extend(line.chars().filter(|c| !matches!(c, '*' | '`' | '\\')));
        out.push('\n');
    }
    decode_entities(&out)
}

/// HTML to text: scripts, styles and comments dropped, block elements end a line, entities
/// decoded. Enough for licence pages; it never executes or fetches anything.
fn html_to_plain(text: &str) -> String {
    decode_entities(&strip_tags(text, true))
}

const BLOCK_TAGS: [&str; 16] = ["p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table", "ul", "ol"];

fn strip_tags(text: &str, html: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let lower = text.to_ascii_lowercase();
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let next = text[i..].find('<').map_or(text.len(), |n| i + n);
            let chunk = &text[i..next];
            if html {
                // Source line breaks are not text breaks in HTML.
                out.push_str(&chunk.replace(['\n', '\r', '\t'], " "));
            } else {
                out.push_str(chunk);
            }
            i = next;
            continue;
        }
        let rest = &lower[i..];
        if rest.starts_with("<!--") {
            i = rest.find("-->").map_or(bytes.len(), |n| i + n + 3);
            continue;
        }
        let name: String = rest[1..].trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        if name.is_empty() {
            // A lone '<' (e.g. "a < b") is text.
            out.push('<');
            i += 1;
            continue;
        }
        if html && (name == "script" || name == "style" || name == "noscript" || name == "template") && !rest.starts_with("</") {
            let close = format!("</{name}");
            i = rest.find(&close).map_or(bytes.len(), |n| i + n);
            i = lower[i..].find('>').map_or(bytes.len(), |n| i + n + 1);
            continue;
        }
        i = rest.find('>').map_or(bytes.len(), |n| i + n + 1);
        if html && BLOCK_TAGS.contains(&name.as_str()) {
            out.push('\n');
        } else {
            out.push(' ');
        }
    }
    out
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[1..].find(|c: char| !c.is_ascii_alphanumeric() && c != '#').map(|n| n + 1);
        let decoded = match end {
            Some(e) if rest.as_bytes().get(e) == Some(&b';') => entity(&rest[1..e]).map(|c| (c, e + 1)),
            _ => None,
        };
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "rsquo" | "lsquo" => '\'',
        "ldquo" | "rdquo" => '"',
        "mdash" | "ndash" => '-',
        "hellip" => '…',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        _ => return None,
    })
}

/// The canonical word form phrases and quotes are compared in.
pub fn words(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for (i, &c) in chars.iter().enumerate() {
        let keep = c.is_alphanumeric()
            || (c == '.' && i > 0 && chars[i - 1].is_ascii_digit() && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if keep {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_versions_and_drop_markup() {
        assert_eq!(words("**Llama 3.1** Version Release Date: July 23, 2024."), "llama 3.1 version release date july 23 2024");
        assert_eq!(words("“Built with Llama”"), "built with llama");
    }

    #[test]
    fn html_and_markdown_become_text() {
        let h = to_plain("t.html", b"<html><head><style>p{}</style><script>x<y</script></head><body><h1>Terms &amp; Conditions</h1><p>Last&nbsp;modified: <b>March</b> 24, 2025</p><!-- c --></body></html>", Format::Html).unwrap();
        assert_eq!(words(&h), "terms conditions last modified march 24 2025");
        assert!(h.contains("Conditions\n"), "{h:?}");
        let m = to_plain("USE_POLICY.md", b"# **Llama 3.3** Policy\nsee [https://x/llama3\\_3](https://x)", Format::Markdown).unwrap();
        assert_eq!(words(&m), "llama 3.3 policy see https x llama3 3 https x");
    }

    #[test]
    fn bad_input_is_named() {
        let e = to_plain("LICENSE", &[b'a', 0xff], Format::Plain).unwrap_err().to_string();
        assert!(e.contains("LICENSE") && e.contains("UTF-8"), "{e}");
    }
}
