//! The host-side HTTP server a test's guest talks to: it serves the NoCloud-net seed
//! (`/user-data`, `/meta-data`, ...) and the root squashfs (with range requests, so the
//! guest's initramfs can fetch it in pieces), and takes the installer's webhook events
//! (POST) into a log file. One server per test, on an ephemeral port of the host's
//! loopback, which user-mode networking shows the guest as 10.0.2.2.
//!
//! Deliberately small (GET/HEAD/POST, HTTP/1.1 with keep-alive off): it runs next to the
//! VMs and must not need anything but std.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a path serves.
#[derive(Clone, Debug)]
pub enum Content {
    Bytes(Arc<Vec<u8>>),
    File(PathBuf),
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Content>>,
    /// POST bodies are appended here, one JSON line each.
    post_log: Mutex<Option<std::fs::File>>,
    stop: AtomicBool,
    bytes_sent: AtomicU64,
    requests: AtomicU64,
}

pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Largest request head or POST body accepted from the (untrusted) guest.
const MAX_HEAD: usize = 16 << 10;
const MAX_POST: usize = 1 << 20;

impl HttpServer {
    /// Starts serving on 127.0.0.1 at an ephemeral port.
    pub fn start() -> std::io::Result<HttpServer> {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(bind: &str) -> std::io::Result<HttpServer> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("http-{}", addr.port()))
            .spawn(move || {
                for conn in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let sh = sh.clone();
                    let _ = std::thread::Builder::new()
                        .name("http-conn".into())
                        .spawn(move || {
                            let _ = handle(conn, &sh);
                        });
                }
            })?;
        Ok(HttpServer {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes `content` at `path` (which starts with `/`).
    pub fn serve(&self, path: &str, content: Content) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), content);
    }

    /// Appends POST bodies (webhook events) to `file`, one per line.
    pub fn log_posts_to(&self, file: PathBuf) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?;
        *self.shared.post_log.lock().unwrap() = Some(f);
        Ok(())
    }

    pub fn bytes_sent(&self) -> u64 {
        self.shared.bytes_sent.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(
    w: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body)
}

/// Parses `bytes=A-B`, `bytes=A-`, `bytes=-N` against `len` into an inclusive range.
fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multi-range: serve the whole thing instead
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (len.saturating_sub(n), len.checked_sub(1)?)
    } else {
        let s: u64 = a.parse().ok()?;
        let e: u64 = if b.is_empty() {
            len.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(len.checked_sub(1)?)
        };
        (s, e)
    };
    (start <= end && end < len).then_some((start, end))
}

fn handle(mut conn: TcpStream, sh: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if head.len() > MAX_HEAD {
            return respond(&mut conn, "431 Request Header Fields Too Large", &[], b"");
        }
    }
    sh.requests.fetch_add(1, Ordering::Relaxed);
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let mut req = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (req.next().unwrap_or(""), req.next().unwrap_or(""));
    let mut headers = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = target.split('?').next().unwrap_or("");
    match method {
        "POST" | "PUT" => {
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if len > MAX_POST {
                return respond(&mut conn, "413 Payload Too Large", &[], b"");
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            if let Some(f) = sh.post_log.lock().unwrap().as_mut() {
                // Keep one event per line whatever the guest sent.
                let line: String = String::from_utf8_lossy(&body)
                    .chars()
                    .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                    .collect();
                writeln!(f, "{line}")?;
            }
            respond(&mut conn, "200 OK", &[("Content-Length", "0".into())], b"")
        }
        "GET" | "HEAD" => {
            let content = sh.routes.lock().unwrap().get(path).cloned();
            let Some(content) = content else {
                return respond(
                    &mut conn,
                    "404 Not Found",
                    &[("Content-Length", "0".into())],
                    b"",
                );
            };
            let head_only = method == "HEAD";
            match content {
                Content::Bytes(b) => {
                    let (status, range) = match headers
                        .get("range")
                        .and_then(|r| parse_range(r, b.len() as u64))
                    {
                        Some((s, e)) => ("206 Partial Content", Some((s, e))),
                        None => ("200 OK", None),
                    };
                    let (s, e) = range.unwrap_or((0, (b.len() as u64).saturating_sub(1)));
                    let body: &[u8] = if b.is_empty() {
                        &[]
                    } else {
                        &b[s as usize..=e as usize]
                    };
                    let mut hs = vec![
                        ("Content-Length", body.len().to_string()),
                        ("Accept-Ranges", "bytes".into()),
                    ];
                    if range.is_some() {
                        hs.push(("Content-Range", format!("bytes {s}-{e}/{}", b.len())));
                    }
                    sh.bytes_sent.fetch_add(
                        if head_only { 0 } else { body.len() as u64 },
                        Ordering::Relaxed,
                    );
                    respond(&mut conn, status, &hs, if head_only { &[] } else { body })
                }
                Content::File(p) => {
                    let mut f = match std::fs::File::open(&p) {
                        Ok(f) => f,
                        Err(_) => {
                            return respond(
                                &mut conn,
                                "404 Not Found",
                                &[("Content-Length", "0".into())],
                                b"",
                            );
                        }
                    };
                    let len = f.metadata()?.len();
                    let range = headers.get("range").and_then(|r| parse_range(r, len));
                    let (s, e) = range.unwrap_or((0, len.saturating_sub(1)));
                    let n = if len == 0 { 0 } else { e - s + 1 };
                    let mut hs = vec![
                        ("Content-Length", n.to_string()),
                        ("Accept-Ranges", "bytes".into()),
                    ];
                    let status = if range.is_some() {
                        hs.push(("Content-Range", format!("bytes {s}-{e}/{len}")));
                        "206 Partial Content"
                    } else {
                        "200 OK"
                    };
                    respond(&mut conn, status, &hs, b"")?;
                    if !head_only && n > 0 {
                        f.seek(SeekFrom::Start(s))?;
                        let sent = std::io::copy(&mut f.take(n), &mut conn)?;
                        sh.bytes_sent.fetch_add(sent, Ordering::Relaxed);
                    }
                    Ok(())
                }
            }
        }
        _ => respond(
            &mut conn,
            "405 Method Not Allowed",
            &[("Content-Length", "0".into())],
            b"",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(port: u16, req: &str) -> (String, Vec<u8>) {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        let i = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&out[..i]).into(),
            out[i + 4..].to_vec(),
        )
    }

    #[test]
    fn serves_bytes_files_ranges_and_posts() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("squashfs");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let s = HttpServer::start().unwrap();
        s.serve(
            "/meta-data",
            Content::Bytes(Arc::new(b"instance-id: x\n".to_vec())),
        );
        s.serve("/root/squashfs", Content::File(file));
        s.log_posts_to(d.path().join("events.json")).unwrap();
        let p = s.port();

        let (h, b) = request(p, "GET /meta-data HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        assert_eq!(b, b"instance-id: x\n");
        let (h, b) = request(p, "GET /root/squashfs HTTP/1.1\r\n\r\n");
        assert!(h.starts_with("HTTP/1.1 200"));
        assert_eq!(b, data);
        let (h, b) = request(
            p,
            "GET /root/squashfs HTTP/1.1\r\nRange: bytes=10-19\r\n\r\n",
        );
        assert!(
            h.starts_with("HTTP/1.1 206") && h.contains("Content-Range: bytes 10-19/100000"),
            "{h}"
        );
        assert_eq!(b, &data[10..20]);
        let (_, b) = request(p, "GET /root/squashfs HTTP/1.1\r\nRange: bytes=-5\r\n\r\n");
        assert_eq!(b, &data[99_995..]);
        let (h, b) = request(p, "HEAD /root/squashfs HTTP/1.1\r\n\r\n");
        assert!(h.contains("Content-Length: 100000") && b.is_empty());
        let (h, _) = request(p, "GET /../etc/passwd HTTP/1.1\r\n\r\n");
        assert!(h.starts_with("HTTP/1.1 404"));
        let (h, _) = request(
            p,
            "POST /webhook HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"a\":\n\"b\"}\n\n",
        );
        assert!(h.starts_with("HTTP/1.1 200"));
        let ev = std::fs::read_to_string(d.path().join("events.json")).unwrap();
        assert_eq!(ev.lines().count(), 1);
        assert!(s.requests() >= 7);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Some((0, 0)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=5-100", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }
}
