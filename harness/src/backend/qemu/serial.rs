//! qemu's serial console output, copied from a pipe into the serial log by a harness
//! thread, so the log has the same cap on both backends ([`vmm::CappedLog`]: the first
//! half kept, a marker line, the newest output) instead of growing in a file qemu writes
//! itself for as long as the guest prints.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::path::Path;
use std::thread::JoinHandle;

/// The thread filling one phase's serial log.
pub struct SerialCopier {
    thread: JoinHandle<std::io::Result<u64>>,
}

impl SerialCopier {
    /// Creates (or replaces) the log at `path` with `cap`, and returns the pipe end to
    /// hand qemu. The copy ends when every copy of that end is closed (qemu exited).
    pub fn start(path: &Path, cap: u64) -> std::io::Result<(PipeWriter, SerialCopier)> {
        let log = vmm::CappedLog::create(path, true, cap)?;
        let (reader, writer) = std::io::pipe()?;
        let thread = std::thread::Builder::new()
            .name("qemu-serial".into())
            .spawn(move || copy(reader, log))?;
        Ok((writer, SerialCopier { thread }))
    }

    /// Waits for the end of the output (call once qemu has exited); the bytes copied.
    pub fn finish(self) -> std::io::Result<u64> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the serial copier panicked")))
    }
}

fn copy(mut from: PipeReader, mut log: vmm::CappedLog) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        log.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_cap_is_capped_and_the_copy_ends_with_the_writer() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("serial.log");
        std::fs::write(&log, b"an earlier phase's log").unwrap();
        let (mut w, copier) = SerialCopier::start(&log, 4096).unwrap();
        let line = b"the guest prints and prints\n";
        for _ in 0..2000 {
            w.write_all(line).unwrap();
        }
        drop(w);
        assert_eq!(copier.finish().unwrap(), 2000 * line.len() as u64);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.len() <= 4096, "{}", text.len());
        assert!(text.starts_with("the guest prints"));
        assert!(text.contains("[vmtest: log cap of 4096 bytes reached:"));
        assert!(text.ends_with("and prints\n"));
    }
}
