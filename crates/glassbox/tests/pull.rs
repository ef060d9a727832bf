//! `glassbox pull` against a local HTTP server (loopback only): truncated transfers resume with a
//! Range request, wrong bytes are deleted, redirects are followed, and only verified files land
//! (and get pinned in the lockfile).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

fn content() -> Vec<u8> {
    (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    // Test-side digest via glassbox's own `verify --sha256` would be circular; use sha256sum.
    let dir = std::env::temp_dir().join(format!("glassbox-pull-digest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("c.bin");
    std::fs::write(&f, b).unwrap();
    let o = Command::new("sha256sum").arg(&f).output().expect("sha256sum");
    String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// Serves a bounded number of connections, then stops.
fn server(body: Vec<u8>, connections: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in l.incoming().take(connections) {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let mut range = None;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            let n = body.len();
            let _ = match (path.split('/').nth(1).unwrap_or(""), range) {
                ("redir", _) => write!(s, "HTTP/1.1 302 Found\r\nLocation: /good/x.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                ("good", Some(start)) => {
                    let _ = write!(s, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{n}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", n - 1, n - start);
                    s.write_all(&body[start..])
                }
                ("good", None) => {
                    let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n");
                    s.write_all(&body)
                }
                ("wrong", _) => {
                    let mut b = body.clone();
                    b[1234] ^= 1;
                    let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n");
                    s.write_all(&b)
                }
                ("trunc", _) => {
                    let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n");
                    s.write_all(&body[..n / 3])
                }
                _ => write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    port
}

fn pull(dir: &std::path::Path, url: &str, sha: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(["pull", url, "--sha256", sha, "-o", "models", "--lock", "glassbox.lock"]).current_dir(dir).output().unwrap()
}

#[test]
fn pull_resumes_verifies_and_pins() {
    let body = content();
    let sha = sha256_hex(&body);
    let port = server(body.clone(), 16);
    let dir = std::env::temp_dir().join(format!("glassbox-pull-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = format!("http://127.0.0.1:{port}");

    // Truncated transfer: error says how far it got; the partial stays for resuming.
    let o = pull(&dir, &format!("{base}/trunc/m.bin"), &sha);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("stopped at 100000 of 300000 bytes") && err.contains("resume"), "{err}");
    assert!(dir.join("models/.m.bin.partial").exists() && !dir.join("models/m.bin").exists());
    // Same name from a server that supports ranges: resumes at the partial's end.
    let o = pull(&dir, &format!("{base}/good/m.bin"), &sha);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("resumed at byte 100000"), "{err}");
    assert_eq!(std::fs::read(dir.join("models/m.bin")).unwrap(), body);
    let lock = std::fs::read_to_string(dir.join("glassbox.lock")).unwrap();
    assert!(lock.contains("path = \"models/m.bin\"") && lock.contains(&sha), "{lock}");
    // Again: already there and verified.
    let o = pull(&dir, &format!("{base}/good/m.bin"), &sha);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already present"));

    // Wrong bytes: refused, nothing kept.
    let o = pull(&dir, &format!("{base}/wrong/w.bin"), &sha);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("sha256 mismatch") && err.contains(&sha), "{err}");
    assert!(!dir.join("models/w.bin").exists() && !dir.join("models/.w.bin.partial").exists());

    // Redirect followed.
    let o = pull(&dir, &format!("{base}/redir/r.bin"), &sha);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(dir.join("models/r.bin")).unwrap(), body);
    let lock = std::fs::read_to_string(dir.join("glassbox.lock")).unwrap();
    assert!(lock.contains("models/m.bin") && lock.contains("models/r.bin"), "pins merge: {lock}");

    // An existing different file is never overwritten.
    std::fs::write(dir.join("models/e.bin"), b"other").unwrap();
    let o = pull(&dir, &format!("{base}/good/e.bin"), &sha);
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"));
    // Bad digest and 404.
    assert!(String::from_utf8_lossy(&pull(&dir, &format!("{base}/good/z.bin"), "abc").stderr).contains("invalid sha256"));
    assert!(String::from_utf8_lossy(&pull(&dir, &format!("{base}/missing/z.bin"), &sha).stderr).contains("HTTP status 404"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hugging_face_shorthand() {
    assert_eq!(glassbox_pull::resolve("org/repo/model.gguf").unwrap(), "https://huggingface.co/org/repo/resolve/main/model.gguf");
    assert_eq!(glassbox_pull::resolve("org/repo/sub/m.gguf@v1.0").unwrap(), "https://huggingface.co/org/repo/resolve/v1.0/sub/m.gguf");
    for bad in ["org/repo", "../etc/passwd/x", "org/repo/a b", "ftp://x/y"] {
        assert!(glassbox_pull::resolve(bad).is_err(), "{bad}");
    }
}
