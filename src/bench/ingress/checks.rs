//! One request through each contender before measuring, proving it does the work
//! (headers, stripped path, gzip that decodes to the backend's bytes).

use super::*;

/// One response as curl got it: the head (status line and headers) and the body as sent.
struct Fetched {
    head: String,
    body: Vec<u8>,
}

impl Fetched {
    /// The value of the header `name` (any case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn status(&self) -> Option<&str> {
        self.head.lines().next()?.split_whitespace().nth(1)
    }
}

/// One `GET path` on `target`'s port, with its header, from inside `ns`.
fn fetch(
    curl: &Path,
    ns: &Path,
    dir: &Path,
    target: Target,
    path: &str,
) -> anyhow::Result<Fetched> {
    let head_file = dir.join(format!("head-{}", target.port));
    let mut cmd = Command::new(curl);
    cmd.args(["-sS", "--max-time", "5", "-D"]).arg(&head_file);
    if let Some(h) = target.header {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(format!("http://127.0.0.1:{}{path}", target.port));
    netns::command_in(&mut cmd, &netns::open(&ns.to_string_lossy())?, false)?;
    let out = cmd.output().context("cannot run curl")?;
    anyhow::ensure!(
        out.status.success(),
        "GET {path} on port {}: {}",
        target.port,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let head = std::fs::read_to_string(&head_file)?;
    Ok(Fetched {
        head,
        body: out.stdout,
    })
}

/// Checks that `c` sets the request header, strips the prefix and sets the response
/// header, with one request.
pub(super) fn check_chain(curl: &Path, ns: &Path, dir: &Path, c: &Contender) -> anyhow::Result<()> {
    let got = fetch(curl, ns, dir, c.target, &format!("{CHAIN_PREFIX}/seen"))?;
    let seen = String::from_utf8_lossy(&got.body);
    let want = "path=/seen header=on";
    anyhow::ensure!(
        got.status() == Some("200") && seen.trim() == want,
        "{}: the backend should have seen {want:?} (prefix {CHAIN_PREFIX} stripped, {CHAIN_REQUEST_HEADER} set) but answered {:?} with {seen:?}",
        c.label,
        got.status()
    );
    anyhow::ensure!(
        got.header(CHAIN_RESPONSE_HEADER) == Some("on"),
        "{}: the response lacks {CHAIN_RESPONSE_HEADER}: on; its head:\n{}",
        c.label,
        got.head.trim()
    );
    Ok(())
}

/// Checks that `c` answers [`PAGE`] gzip-encoded and that it decodes to `page`: the
/// encoded size.
pub(super) fn check_gzip(
    curl: &Path,
    ns: &Path,
    dir: &Path,
    c: &Contender,
    page: &str,
) -> anyhow::Result<usize> {
    let got = fetch(curl, ns, dir, c.target, PAGE)?;
    anyhow::ensure!(
        got.status() == Some("200") && got.header("content-encoding") == Some("gzip"),
        "{}: {PAGE} with {ACCEPT_GZIP} should come gzip-encoded; its head:\n{}",
        c.label,
        got.head.trim()
    );
    let gz = dir.join(format!("{}.gz", c.target.port));
    std::fs::write(&gz, &got.body)?;
    let gzip = tools::apt("gzip", "gzip").map_err(anyhow::Error::msg)?;
    let out = Command::new(gzip).arg("-dc").arg(&gz).output()?;
    anyhow::ensure!(
        out.status.success() && out.stdout == page.as_bytes(),
        "{}: {PAGE} does not decode to the backend's {PAGE_BYTES} bytes ({} bytes, gzip: {})",
        c.label,
        out.stdout.len(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(got.body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_without_case() {
        let got = Fetched {
            head: "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nx-bench-response:  on\r\n\r\n"
                .into(),
            body: Vec::new(),
        };
        assert_eq!(got.status(), Some("200"));
        assert_eq!(got.header("content-encoding"), Some("gzip"));
        assert_eq!(got.header("X-Bench-Response"), Some("on"));
        assert_eq!(got.header("vary"), None);
    }
}
