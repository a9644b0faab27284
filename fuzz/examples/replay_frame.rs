//! Decodes frame files as the collector does, outside libFuzzer and its sanitizers, to see
//! what a regression input does to a plain build:
//!
//! `cargo run --example replay_frame -- regressions/codec_frame-*.bin`
//!
//! Prints one line per file and type. Under a memory limit (`ulimit -v`), an input that makes
//! the decoder allocate beyond it aborts the process instead of printing.

use muster_shared::codec::{Limits, decode_frame};
use muster_shared::protocol::info::AgentInfo;
use muster_shared::protocol::is_compatible;
use muster_shared::protocol::samples::SampleBatch;

fn main() -> std::io::Result<()> {
    for path in std::env::args().skip(1) {
        let frame = std::fs::read(&path)?;
        let batch = decode_frame::<SampleBatch>(&frame, &Limits::DEFAULT, is_compatible);
        println!(
            "{path}: SampleBatch: {:?}",
            batch.map(|(v, b)| (v, b.rounds.len()))
        );
        let info = decode_frame::<AgentInfo>(&frame, &Limits::DEFAULT, is_compatible);
        println!("{path}: AgentInfo: {info:?}");
    }
    Ok(())
}
