//! The host-side HTTP server a test's guest talks to: it serves the NoCloud-net seed
//! (`/user-data`, `/meta-data`, ...) and the root squashfs (with range requests, so the
//! guest's initramfs can fetch it in pieces), and takes the installer's webhook events
//! (POST) into a capped log file ([`events`]). One server per test, on an ephemeral port of
//! the host's loopback, which user-mode networking shows the guest as 10.0.2.2.
//!
//! Deliberately small (GET/HEAD/POST, HTTP/1.1 with keep-alive off) and bounded in
//! everything a guest can drive ([`HttpLimits`]):
//! - one thread reads every request head, with `poll` over non-blocking sockets: a
//!   connection costs a descriptor and at most [`MAX_HEAD`] bytes until its head is
//!   complete, must complete it within a deadline, and the oldest is dropped when
//!   `max_pending` are open or descriptors run out (so slow clients cannot lock out a
//!   normal request);
//! - complete requests go to a fixed pool of worker threads through a bounded queue; when
//!   that is full the answer is `503` at once;
//! - accept errors (EMFILE, ...) back off instead of spinning;
//! - reads and writes of a worker time out, and a POST body has a deadline and a size cap.

mod events;
mod request;

pub use events::{Appended, EVENTS_CAP, EventLog};
pub use request::{HeadError, MAX_HEAD, MAX_HEADERS, RequestHead, head_end, parse_range};

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

/// What a path serves.
#[derive(Clone, Debug)]
pub enum Content {
    Bytes(Arc<Vec<u8>>),
    File(PathBuf),
}

/// Bounds on what a guest can make one server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Threads answering requests (the guest fetches seed files and the squashfs one or
    /// two at a time; 8 leaves room for parallel range requests).
    pub workers: usize,
    /// Complete requests waiting for a worker; beyond this, `503`.
    pub queue: usize,
    /// Connections whose head is still being read; a new one beyond this drops the oldest.
    pub max_pending: usize,
    /// Time a connection has to send its whole head.
    pub head_deadline: Duration,
    /// Timeout of each read and write once a worker has the request.
    pub io_timeout: Duration,
    /// Time a POST body has to arrive in full.
    pub body_deadline: Duration,
    /// Largest POST body (curtin's last event carries the whole install log base64).
    pub max_post: u64,
    /// Size cap of the webhook events file.
    pub events_cap: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            workers: 8,
            queue: 16,
            max_pending: 128,
            head_deadline: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            body_deadline: Duration::from_secs(120),
            max_post: 32 << 20,
            events_cap: EVENTS_CAP,
        }
    }
}

struct Shared {
    limits: HttpLimits,
    routes: Mutex<HashMap<String, Content>>,
    /// POST bodies are appended here, one JSON line each.
    post_log: Mutex<Option<EventLog>>,
    stop: AtomicBool,
    bytes_sent: AtomicU64,
    requests: AtomicU64,
    /// The connection each worker is answering, cut on shutdown so no worker waits out
    /// its timeouts.
    active: Mutex<Vec<Option<TcpStream>>>,
}

/// A poisoned lock only means another worker panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection with its complete head (and any body bytes that came with it).
struct Job {
    conn: TcpStream,
    buf: Vec<u8>,
}

pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Starts serving on 127.0.0.1 at an ephemeral port.
    pub fn start() -> std::io::Result<HttpServer> {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(bind: &str) -> std::io::Result<HttpServer> {
        Self::start_with(bind, HttpLimits::default())
    }

    pub fn start_with(bind: &str, limits: HttpLimits) -> std::io::Result<HttpServer> {
        let listener = TcpListener::bind(bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            limits,
            routes: Mutex::default(),
            post_log: Mutex::default(),
            stop: AtomicBool::new(false),
            bytes_sent: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            active: Mutex::new((0..limits.workers.max(1)).map(|_| None).collect()),
        });
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(limits.queue);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for id in 0..limits.workers.max(1) {
            let (sh, rx) = (shared.clone(), rx.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("http-{}-w{id}", addr.port()))
                    .spawn(move || worker(id, &rx, &sh))?,
            );
        }
        let sh = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("http-{}", addr.port()))
            .spawn(move || Acceptor::new(listener, sh, tx).run())?;
        Ok(HttpServer {
            addr,
            shared,
            acceptor: Some(acceptor),
            workers,
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
        lock(&self.shared.routes).insert(path.to_string(), content);
    }

    /// Appends POST bodies (webhook events) to `file`, one per line, up to the events cap.
    pub fn log_posts_to(&self, file: PathBuf) -> std::io::Result<()> {
        *lock(&self.shared.post_log) = Some(EventLog::open(&file, self.shared.limits.events_cap)?);
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
        // Wake the acceptor (it would notice within one poll tick anyway); joining it
        // closes the queue, which ends the workers once their connections are cut.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        for c in lock(&self.shared.active).iter().flatten() {
            let _ = c.shutdown(Shutdown::Both);
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A connection whose head is being read.
struct Pending {
    conn: TcpStream,
    buf: Vec<u8>,
    since: Instant,
}

/// Longest the acceptor sleeps in `poll` (how soon it sees a stop).
const POLL_TICK: Duration = Duration::from_millis(200);
/// Accepts per turn of the loop, so reading pending heads is never starved.
const ACCEPTS_PER_TURN: usize = 64;
/// Back-off after an accept error with nothing to drop: doubles up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

struct Acceptor {
    listener: TcpListener,
    sh: Arc<Shared>,
    queue: SyncSender<Job>,
    pending: Vec<Pending>,
    /// The listener is not polled before this.
    paused_until: Option<Instant>,
    backoff: Duration,
}

impl Acceptor {
    fn new(listener: TcpListener, sh: Arc<Shared>, queue: SyncSender<Job>) -> Self {
        Acceptor {
            listener,
            sh,
            queue,
            pending: Vec::new(),
            paused_until: None,
            backoff: BACKOFF_MIN,
        }
    }

    fn run(mut self) {
        while !self.sh.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let listening = self.paused_until.is_none_or(|t| now >= t);
            let mut wait = POLL_TICK;
            if let Some(t) = self.paused_until.filter(|_| !listening) {
                wait = wait.min(t - now);
            }
            if let Some(oldest) = self.pending.first() {
                let due = oldest.since + self.sh.limits.head_deadline;
                wait = wait.min(due.saturating_duration_since(now));
            }
            let (listener_ready, ready) = self.poll(listening, wait);
            for i in ready.into_iter().rev() {
                self.read_head(i);
            }
            self.expire();
            if listener_ready {
                self.accept();
            }
        }
    }

    /// Waits for input on the listener (when `listening`) and the pending connections;
    /// returns whether the listener is ready and which pending ones are (ascending).
    fn poll(&self, listening: bool, wait: Duration) -> (bool, Vec<usize>) {
        let flags = PollFlags::IN;
        let mut fds = Vec::with_capacity(self.pending.len() + 1);
        if listening {
            fds.push(PollFd::new(&self.listener, flags));
        }
        fds.extend(self.pending.iter().map(|p| PollFd::new(&p.conn, flags)));
        let timeout = Timespec {
            tv_sec: wait.as_secs() as _,
            tv_nsec: wait.subsec_nanos() as _,
        };
        if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
            // EINTR or ENOMEM: try again on the next turn, after a pause.
            std::thread::sleep(BACKOFF_MIN);
            return (false, Vec::new());
        }
        let skip = usize::from(listening);
        let listener_ready = listening && !fds[0].revents().is_empty();
        let ready = fds[skip..]
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.revents().is_empty())
            .map(|(i, _)| i)
            .collect();
        (listener_ready, ready)
    }

    /// Reads what pending connection `i` has sent; hands it to a worker once its head is
    /// complete, answers and drops it when it is over the size limit or closed.
    fn read_head(&mut self, i: usize) {
        let mut chunk = [0u8; 4096];
        let p = &mut self.pending[i];
        let room = MAX_HEAD + 1 - p.buf.len().min(MAX_HEAD + 1);
        let n = match (&p.conn).read(&mut chunk[..room.clamp(1, 4096)]) {
            Ok(0) => {
                self.pending.swap_remove(i);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                self.pending.swap_remove(i);
                return;
            }
        };
        p.buf.extend_from_slice(&chunk[..n]);
        if head_end(&p.buf).is_some() {
            let p = self.pending.swap_remove(i);
            self.dispatch(p);
        } else if p.buf.len() > MAX_HEAD {
            let mut p = self.pending.swap_remove(i);
            refuse(&mut p.conn, HeadError::TooLarge.status());
        }
    }

    fn dispatch(&mut self, p: Pending) {
        let job = Job {
            conn: p.conn,
            buf: p.buf,
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(mut job)) => {
                refuse(&mut job.conn, "503 Service Unavailable");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Drops connections that did not send their head in time.
    fn expire(&mut self) {
        let deadline = self.sh.limits.head_deadline;
        let now = Instant::now();
        // `pending` is not kept in order (swap_remove): check every entry.
        self.pending
            .retain(|p| now.duration_since(p.since) < deadline);
    }

    /// Drops the connection waiting longest for its head; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        let Some((i, _)) = self.pending.iter().enumerate().min_by_key(|(_, p)| p.since) else {
            return false;
        };
        self.pending.swap_remove(i);
        true
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((conn, _)) => {
                    self.paused_until = None;
                    self.backoff = BACKOFF_MIN;
                    if conn.set_nonblocking(true).is_err() {
                        continue;
                    }
                    if self.pending.len() >= self.sh.limits.max_pending {
                        self.drop_oldest();
                    }
                    self.pending.push(Pending {
                        conn,
                        buf: Vec::new(),
                        since: Instant::now(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if is_resource_exhaustion(&e) => {
                    // Out of descriptors or memory: free one held by a slow client and
                    // retry, or, with none to free, stop accepting for a while.
                    if !self.drop_oldest() {
                        self.paused_until = Some(Instant::now() + self.backoff);
                        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                        return;
                    }
                }
                // ECONNABORTED and the like concern one connection only.
                Err(_) => {}
            }
        }
    }
}

fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A best-effort status-only answer from the acceptor (its socket is non-blocking).
fn refuse(conn: &mut TcpStream, status: &str) {
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n"
        )
        .as_bytes(),
    );
}

fn worker(id: usize, rx: &Mutex<Receiver<Job>>, sh: &Shared) {
    loop {
        let job = lock(rx).recv();
        let Ok(job) = job else { return };
        lock(&sh.active)[id] = job.conn.try_clone().ok();
        // A stop after the shutdown sweep must not start a new request.
        if !sh.stop.load(Ordering::SeqCst) {
            let _ = handle(job, sh);
        }
        lock(&sh.active)[id] = None;
    }
}

/// Reads a body from a connection until a deadline, each read within the I/O timeout.
struct DeadlineReader<'a> {
    conn: &'a TcpStream,
    deadline: Instant,
    io_timeout: Duration,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body deadline passed",
            ));
        }
        self.conn
            .set_read_timeout(Some(left.min(self.io_timeout)))?;
        (&mut &*self.conn).read(buf)
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

fn empty(w: &mut TcpStream, status: &str) -> std::io::Result<()> {
    respond(w, status, &[("Content-Length", "0".into())], b"")
}

fn handle(job: Job, sh: &Shared) -> std::io::Result<()> {
    let Job { mut conn, buf } = job;
    let limits = &sh.limits;
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(limits.io_timeout))?;
    conn.set_write_timeout(Some(limits.io_timeout))?;
    let Some(end) = head_end(&buf) else {
        return empty(&mut conn, "400 Bad Request");
    };
    let head = match RequestHead::parse(&buf[..end]) {
        Ok(h) => h,
        Err(e) => return empty(&mut conn, e.status()),
    };
    sh.requests.fetch_add(1, Ordering::Relaxed);
    let range = match head.header("range") {
        Ok(r) => r.map(str::to_string),
        Err(e) => return empty(&mut conn, e.status()),
    };
    match head.method.as_str() {
        "POST" | "PUT" => {
            let len = match head.content_length() {
                Ok(l) => l,
                Err(e) => return empty(&mut conn, e.status()),
            };
            if len > limits.max_post {
                return empty(&mut conn, "413 Payload Too Large");
            }
            let came = &buf[end..];
            let came = &came[..came.len().min(len as usize)];
            let rest = DeadlineReader {
                conn: &conn,
                deadline: Instant::now() + limits.body_deadline,
                io_timeout: limits.io_timeout,
            };
            let mut body = came.chain(rest.take(len - came.len() as u64));
            match lock(&sh.post_log).as_mut() {
                Some(log) => {
                    log.append(&mut body, len)?;
                }
                None => {
                    std::io::copy(&mut body, &mut std::io::sink())?;
                }
            }
            empty(&mut conn, "200 OK")
        }
        "GET" | "HEAD" => {
            let content = lock(&sh.routes).get(&head.path).cloned();
            let Some(content) = content else {
                return empty(&mut conn, "404 Not Found");
            };
            let head_only = head.method == "HEAD";
            match content {
                Content::Bytes(b) => {
                    let (status, range) = match range
                        .as_deref()
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
                    let Ok(mut f) = std::fs::File::open(&p) else {
                        return empty(&mut conn, "404 Not Found");
                    };
                    let len = f.metadata()?.len();
                    let range = range.as_deref().and_then(|r| parse_range(r, len));
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
        _ => empty(&mut conn, "405 Method Not Allowed"),
    }
}

#[cfg(test)]
mod tests;
