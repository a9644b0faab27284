//! A progress bar on a terminal (bytes and entries, with rate), nothing elsewhere.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::backup::archiver::Progress;

/// A spinner with a byte count, hidden unless stderr is a terminal and `--json` is off.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
    entries: AtomicU64,
}

impl Bar {
    /// A bar labelled `what`.
    pub fn new(what: &'static str, json: bool) -> Self {
        let visible = !json && std::io::stderr().is_terminal();
        let bar = if visible {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {prefix}: {binary_bytes} ({binary_bytes_per_sec}), {msg} entries, {elapsed}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(what);
        if visible {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Bar {
            bar,
            entries: AtomicU64::new(0),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }

    fn entry(&self) {
        let n = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        // The message takes a lock: refresh it every few entries only.
        if n.is_multiple_of(64) {
            self.bar.set_message(n.to_string());
        }
    }
}

/// Bytes in binary units, as restic prints them.
pub fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}
