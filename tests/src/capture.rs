//! Packet captures with tcpdump inside a lab's namespace, for tests that prove what
//! crossed the underlay.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A tcpdump writing to a file until stopped or dropped; the file goes with it.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `iface` in namespace `ns` (a name under /run/netns) with the
    /// capture filter `filter`, and returns once it is listening.
    pub fn start(ns: &str, iface: &str, filter: &[&str]) -> Capture {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let file = std::env::temp_dir().join(format!(
            "shoal-capture-{}-{}.pcap",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-Z", "root"])
            .args(["--immediate-mode", "-i", iface, "-U", "-n", "-w"])
            .arg(&file)
            .args(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (install it: apt-get install tcpdump)");
        // tcpdump says "listening on IFACE" once its socket is open.
        let mut stderr = child.stderr.take().expect("piped stderr");
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("listening on") {
            match stderr.read(&mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => panic!("tcpdump failed: {}", String::from_utf8_lossy(&seen)),
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Capture { child, file }
    }

    /// The capture file (complete once [`stop`](Self::stop) returned).
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Stops the capture once tcpdump has caught up (its file stopped growing: packets
    /// already on the wire are in it) and returns the file's bytes; the file stays until
    /// the capture is dropped.
    pub fn stop(&mut self) -> Vec<u8> {
        let size = || std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
        let mut last = size();
        crate::wait_until("tcpdump to catch up", Duration::from_secs(10), || {
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now == last {
                Ok(())
            } else {
                last = now;
                Err(format!("{now} bytes and growing"))
            }
        });
        // SAFETY: signalling a child we started and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}
