//! The server against real sockets: what a guest may send, and what it gets back.

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

fn status_of(port: u16, req: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = c.write_all(req);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn oversized_slow_and_bad_requests() {
    let s = HttpServer::start_with(
        "127.0.0.1:0",
        HttpLimits {
            head_deadline: Duration::from_millis(300),
            max_post: 100,
            ..HttpLimits::default()
        },
    )
    .unwrap();
    let p = s.port();
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    assert!(status_of(p, huge.as_bytes()).contains("431"));
    assert!(status_of(p, b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n").contains("413"));
    assert!(status_of(p, b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").contains("400"));
    assert!(status_of(p, b"BREW / HTCPCP/1.0\r\n\r\n").contains("400"));
    // A head that never ends is dropped at its deadline, without an answer.
    let mut c = TcpStream::connect(("127.0.0.1", p)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    assert_eq!(c.read_to_end(&mut out).unwrap(), 0);
    // A body that stops short is not logged.
    let d = tempfile::tempdir().unwrap();
    s.log_posts_to(d.path().join("ev.json")).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", p)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"short\"")
        .unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let _ = c.read_to_end(&mut out);
    assert!(status_of(p, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}").contains("200"));
    assert_eq!(
        std::fs::read_to_string(d.path().join("ev.json")).unwrap(),
        "{}\n"
    );
}

/// With every worker busy and the queue full, a request is answered 503 at once.
#[test]
fn a_full_pool_answers_503() {
    let d = tempfile::tempdir().unwrap();
    let big = d.path().join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let s = HttpServer::start_with(
        "127.0.0.1:0",
        HttpLimits {
            workers: 1,
            queue: 1,
            ..HttpLimits::default()
        },
    )
    .unwrap();
    s.serve("/big", Content::File(big));
    let p = s.port();
    // A client that never reads: the one worker blocks writing to it.
    let mut stuck = TcpStream::connect(("127.0.0.1", p)).unwrap();
    stuck.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
    while s.requests() == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    // One request waits in the queue, the next is refused.
    let mut queued = TcpStream::connect(("127.0.0.1", p)).unwrap();
    queued.write_all(b"GET /none HTTP/1.1\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(status_of(p, b"GET /none HTTP/1.1\r\n\r\n").contains("503"));
    drop(stuck);
    let mut out = Vec::new();
    queued.read_to_end(&mut out).unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 404"));
    // Dropping the server with a worker mid-request returns (the connection is cut).
    let mut stuck = TcpStream::connect(("127.0.0.1", p)).unwrap();
    stuck.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
}

/// The webhook events file stops at its cap with a note.
#[test]
fn events_file_is_capped() {
    let d = tempfile::tempdir().unwrap();
    let s = HttpServer::start_with(
        "127.0.0.1:0",
        HttpLimits {
            events_cap: 100,
            ..HttpLimits::default()
        },
    )
    .unwrap();
    s.log_posts_to(d.path().join("ev.json")).unwrap();
    for _ in 0..10 {
        let r = format!(
            "POST / HTTP/1.1\r\nContent-Length: 30\r\n\r\n{{\"e\": \"{}\"}}",
            "x".repeat(21)
        );
        assert!(status_of(s.port(), r.as_bytes()).contains("200"));
    }
    let text = std::fs::read_to_string(d.path().join("ev.json")).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.lines().last().unwrap().contains("100-byte cap"));
}

/// Reads a /proc file through a handle opened beforehand (procfs regenerates it on a
/// read from offset 0), so it works once descriptors are exhausted.
fn reread(f: &mut std::fs::File) -> String {
    let mut text = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut text).unwrap();
    text
}

/// (threads, CPU ticks in user + system) of this process.
fn proc_stats(status: &mut std::fs::File, stat: &mut std::fs::File) -> (u64, u64) {
    let status = reread(status);
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = reread(stat);
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    (threads, ticks)
}

/// The server side of `slow_clients_under_a_low_descriptor_limit`, in a child process
/// whose descriptor limit is 64. Prints its port, then on each line of stdin its
/// thread count and CPU ticks; exits at EOF.
#[test]
#[ignore = "run by slow_clients_under_a_low_descriptor_limit in a child process"]
fn http_fd_limit_child() {
    let lim = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads the struct we pass; it changes only this (child) process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut status = std::fs::File::open("/proc/self/status").unwrap();
    let mut stat = std::fs::File::open("/proc/self/stat").unwrap();
    let s = HttpServer::start().unwrap();
    s.serve("/ping", Content::Bytes(Arc::new(b"pong".to_vec())));
    let port = s.port();
    println!("PORT {port}");
    for _ in std::io::stdin().lines() {
        let (threads, ticks) = proc_stats(&mut status, &mut stat);
        println!("STATS {threads} {ticks}");
    }
}

/// 300 slow clients (heads never finished) against a server limited to 64
/// descriptors: a normal request is still answered, long before the slow clients'
/// head deadline; the server's threads stay at 1 + workers; while descriptors stay
/// exhausted its CPU use is far from a busy loop.
#[test]
fn slow_clients_under_a_low_descriptor_limit() {
    use std::io::BufRead;
    /// The child is killed however this test ends.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reaped(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "http::tests::http_fd_limit_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut to_child = child.0.stdin.take().unwrap();
    let (line_tx, lines) = std::sync::mpsc::channel();
    let out = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = line_tx.send(l);
        }
    });
    let next = |prefix: &str| loop {
        let l = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the server's process stopped answering");
        // libtest prints `test NAME ... ` on the same line before the first output.
        if let Some(at) = l.find(prefix) {
            break l[at + prefix.len()..].to_string();
        }
    };
    let port: u16 = next("PORT ").parse().unwrap();
    let stats = |to: &mut std::process::ChildStdin| {
        writeln!(to).unwrap();
        let v: Vec<u64> = next("STATS ")
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect();
        (v[0], v[1])
    };
    let mut slow = Vec::new();
    for _ in 0..300 {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            let _ = c.write_all(b"GET /ping HTTP/1.1\r\nX-Slow: ");
            slow.push(c);
        }
    }
    let (threads, ticks_before) = stats(&mut to_child);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let (_, ticks_after) = stats(&mut to_child);
    let busy = (ticks_after - ticks_before) as f64 / 100.0 / started.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let answer = (|| -> std::io::Result<Vec<u8>> {
        let mut c = TcpStream::connect(("127.0.0.1", port))?;
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        c.write_all(b"GET /ping HTTP/1.1\r\n\r\n")?;
        let mut out = Vec::new();
        c.read_to_end(&mut out)?;
        Ok(out)
    })();
    let waited = t0.elapsed();
    drop(to_child);
    drop(child);
    eprintln!(
        "{} slow clients connected; child threads {threads}; server CPU {:.1}% while flooded; normal request answered in {waited:?}",
        slow.len(),
        busy * 100.0
    );
    let out = answer.expect("the normal request failed");
    assert!(out.ends_with(b"pong"), "{}", String::from_utf8_lossy(&out));
    assert!(
        waited < HttpLimits::default().head_deadline,
        "the normal request waited {waited:?}, as long as slow clients may hold a connection"
    );
    // The child's main and test threads, the acceptor and the workers.
    assert!(
        threads <= 3 + HttpLimits::default().workers as u64,
        "{threads} threads in the server's process"
    );
    assert!(
        busy < 0.5,
        "the server used {:.0}% of a CPU while idle under the flood",
        busy * 100.0
    );
}
