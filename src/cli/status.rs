//! `shoal status [--watch]`: this node's view, once or as it changes.
//!
//! With `--watch` on a terminal the screen is redrawn every second until Ctrl-C; when
//! stdout is not a terminal (a pipe, a file, a test) a new block is printed, after a
//! blank line, each time the status changes ([`crate::status::change_key`]: handshake
//! ages and byte counts ticking are not changes), so the output reads as a log.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use shoal_control::api::StatusInfo;

use super::args::Format;
use super::print;
use crate::client::ApiClient;
use crate::status::{change_key, render};

/// How often `--watch` asks the agent.
const EVERY: Duration = Duration::from_secs(1);

/// `shoal status` arguments.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Keep watching until Ctrl-C: redraw every second on a terminal; otherwise print
    /// a new block, after a blank line, whenever the status changes.
    #[arg(long)]
    pub watch: bool,
}

/// `shoal status`.
pub async fn run(client: &ApiClient, args: StatusArgs) -> anyhow::Result<()> {
    if !args.watch {
        let s: StatusInfo = client.get("/v1/status").await?;
        return print(args.format, &s, render);
    }
    let terminal = std::io::stdout().is_terminal();
    let mut last: Option<String> = None;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let (key, block) = match client.get::<StatusInfo>("/v1/status").await {
            Ok(s) => (change_key(&s), block(args.format, &s)?),
            Err(e) => {
                let text = format!("cannot read the status: {e:#}\n");
                (text.clone(), text)
            }
        };
        let out = if terminal {
            format!("\x1b[H\x1b[2Jshoal status --watch (every second; Ctrl-C to stop)\n\n{block}")
        } else if last.as_ref() != Some(&key) {
            let gap = if last.is_some() { "\n" } else { "" };
            format!("{gap}{block}")
        } else {
            String::new()
        };
        last = Some(key);
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // Whoever read the output is gone.
            return Ok(());
        }
        drop(stdout);
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// One status as `format` prints it.
fn block(format: Format, s: &StatusInfo) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(s)? + "\n",
        Format::Table => render(s),
    })
}
