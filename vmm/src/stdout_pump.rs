//! The serial console's copy on stdout, written by a thread of its own.
//!
//! A vCPU thread writes the guest's serial output as the guest sends it. Writing straight
//! to stdout blocked that thread whenever stdout was not being read (a pipe nobody drains,
//! a terminal stopped with Ctrl-S), and the watchdog, which kicks the vCPU threads out of
//! KVM_RUN and waits for them, then waited for ever: a blocked `write` is restarted after
//! the kick. So the vCPU only queues the bytes here (bounded: past the limit the terminal
//! copy drops them and says how many; the serial log file keeps everything) and a writer
//! thread, with no part in stopping the VM, does the blocking writes, flushing each time
//! so a prompt shows at once.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes the terminal copy may hold back before it drops output.
pub const PUMP_LIMIT: usize = 1 << 20;
/// How long a flush (the end of a run) waits for the terminal to take what is queued.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    queued: VecDeque<u8>,
    /// Bytes being written by the thread right now (not in `queued` any more).
    in_flight: usize,
    dropped: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when bytes arrive, when the pump closes, and when a write completes.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A [`Write`] that never blocks its caller; a thread copies what it takes to `out`.
pub struct StdoutPump {
    shared: Arc<Shared>,
}

impl StdoutPump {
    /// A pump into this process's stdout.
    pub fn stdout() -> io::Result<Self> {
        Self::new(io::stdout())
    }

    pub fn new(mut out: impl Write + Send + 'static) -> io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("serial-stdout".into())
            .spawn(move || {
                loop {
                    let chunk: Vec<u8> = {
                        let mut st = sh.lock();
                        while st.queued.is_empty() && !st.closed {
                            st = sh.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                        }
                        if st.queued.is_empty() {
                            return; // closed and drained
                        }
                        let n = st.queued.len().min(64 << 10);
                        st.in_flight = n;
                        st.queued.drain(..n).collect()
                    };
                    let ok = out.write_all(&chunk).and_then(|()| out.flush()).is_ok();
                    let mut st = sh.lock();
                    st.in_flight = 0;
                    if !ok {
                        // stdout is gone (closed pipe): nothing more will show there.
                        st.queued.clear();
                        st.closed = true;
                    }
                    sh.changed.notify_all();
                    if !ok {
                        return;
                    }
                }
            })?;
        Ok(Self { shared })
    }

    pub fn drain(&self) -> Drain {
        Drain {
            shared: self.shared.clone(),
        }
    }

    /// Bytes dropped because the terminal did not take them fast enough.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

impl Write for StdoutPump {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.shared.lock();
        if st.closed {
            return Ok(buf.len());
        }
        let room = PUMP_LIMIT.saturating_sub(st.queued.len());
        let take = buf.len().min(room);
        st.queued.extend(&buf[..take]);
        st.dropped += (buf.len() - take) as u64;
        self.shared.changed.notify_all();
        Ok(buf.len())
    }

    /// Nothing to do: the thread flushes after each write. (The UART flushes after every
    /// byte, so this must not wait; [`Drain::wait`] does, at the end of a run.)
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Waits for a pump's queue to reach the terminal, from outside the vCPU threads.
pub struct Drain {
    shared: Arc<Shared>,
}

impl Drain {
    /// Waits (at most a couple of seconds) until the terminal took what is queued.
    pub fn wait(&self) {
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut st = self.shared.lock();
        while !(st.closed || st.queued.is_empty() && st.in_flight == 0) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for StdoutPump {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if st.dropped > 0 {
            tracing::warn!(
                bytes = st.dropped,
                "the terminal did not keep up with the serial console: output dropped there (the serial log has it)"
            );
        }
        // The thread drains what is queued and ends; if stdout never takes it, the thread
        // stays blocked in its write, alone, and the VM's end does not wait for it.
        st.closed = true;
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A writer that blocks until released, like a pipe nobody reads.
    struct Stuck {
        released: Arc<AtomicBool>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            while !self.released.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_never_block_and_excess_is_dropped_not_queued_without_bound() {
        let released = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut pump = StdoutPump::new(Stuck {
            released: released.clone(),
            got: got.clone(),
        })
        .unwrap();
        let start = Instant::now();
        for _ in 0..(3 * PUMP_LIMIT / 4096) {
            pump.write_all(&[b'x'; 4096]).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(2), "writes blocked");
        assert!(pump.dropped() > 0, "past the limit output is dropped");
        // A flush (the UART's, after every byte) never waits; a drain waits, not for ever.
        let t = Instant::now();
        pump.flush().unwrap();
        pump.drain().wait();
        assert!(t.elapsed() < FLUSH_WAIT + Duration::from_secs(1));
        // Once stdout takes bytes again, what was queued arrives in order, and what is
        // written after it has drained is not dropped. A drain gives up after FLUSH_WAIT
        // by design, so wait here for the bytes themselves: on a loaded host the writer
        // thread may take longer than that to be scheduled.
        released.store(true, Ordering::SeqCst);
        let wait_for = |pump: &StdoutPump, done: &dyn Fn(&[u8], u64) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done(&got.lock().unwrap(), pump.dropped()) && Instant::now() < deadline {
                pump.drain().wait();
            }
        };
        let all = 3 * PUMP_LIMIT as u64;
        wait_for(&pump, &|g, dropped| g.len() as u64 + dropped == all);
        pump.write_all(b"end").unwrap();
        wait_for(&pump, &|g, _| g.ends_with(b"end"));
        let got = got.lock().unwrap();
        assert!(got.ends_with(b"end"), "{} bytes", got.len());
        assert!(got.len() as u64 + pump.dropped() == 3 * PUMP_LIMIT as u64 + 3);
    }
}
