//! Writes the seed inputs under `fuzz/seeds/<target>/`: real frames, values, configs, tokens
//! and CSRs made by the project's own encoders, so each fuzzer starts from inputs that pass
//! every check and mutates from there.
//!
//! `cargo run --example write_seeds` (from `fuzz/`). Overwrites the files it writes; tokens
//! and CSRs are random, so a rerun changes them.

use std::fs;
use std::path::{Path, PathBuf};

use muster_collector::hosts::HostRecord;
use muster_shared::codec::{encode_frame, encode_value};
use muster_shared::protocol::PROTOCOL_VERSION;
use muster_shared::protocol::info::{AgentInfo, CAP_JOBS, CAP_SAMPLES};
use muster_shared::protocol::jobs::{DeploySpec, JobRequest, JobSpec, JobState, JobStatus};
use muster_shared::protocol::samples::{Gap, Label, Round, SampleBatch, SeriesDef, SeriesValue};
use muster_shared::tls::{Fingerprint, Role, generate_csr};
use muster_shared::token::{ApiToken, EnrollToken};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir: PathBuf = seeds.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)
    };

    // codec_frame: a compressed batch, a small uncompressed one, an info frame from a newer
    // agent, and a bare payload (the target also wraps its input in a header).
    let batch = batch(40);
    write(
        "codec_frame",
        "batch-zstd.bin",
        &encode_frame(&batch, PROTOCOL_VERSION, 3)?,
    )?;
    write(
        "codec_frame",
        "batch-empty.bin",
        &encode_frame(&SampleBatch::empty(7), PROTOCOL_VERSION, 3)?,
    )?;
    write(
        "codec_frame",
        "info-v2.bin",
        &encode_frame(&info(), PROTOCOL_VERSION + 1, 3)?,
    )?;
    write(
        "codec_frame",
        "batch-payload.bin",
        &encode_value(&self::batch(2))?,
    )?;

    // codec_value: one value per family of types the target decodes.
    write("codec_value", "batch.bin", &encode_value(&self::batch(2))?)?;
    write("codec_value", "info.bin", &encode_value(&info())?)?;
    write(
        "codec_value",
        "job-request.bin",
        &encode_value(&job_request())?,
    )?;
    write(
        "codec_value",
        "job-status.bin",
        &encode_value(&job_status())?,
    )?;
    write(
        "codec_value",
        "host-record.bin",
        &encode_value(&host_record())?,
    )?;

    // config_toml: the shipped examples, a minimal file and a file with an error.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    for name in ["agent.example.toml", "collector.example.toml"] {
        write("config_toml", name, &fs::read(config.join(name))?)?;
    }
    write(
        "config_toml",
        "collector-small.toml",
        b"data_dir = \"/var/lib/muster\"\n\n[api]\nlisten = \"[::1]:7070\"\ntls = false\n\n[scrape]\ninterval = \"1m 30s\"\ntimeout = \"250ms\"\n",
    )?;
    write(
        "config_toml",
        "agent-typo.toml",
        b"listen = \"0.0.0.0:7071\"\n[tls]\nca = \"pki/ca.crt\"\ncrt = \"pki/agent.crt\"\n",
    )?;

    // tokens: one of each kind, and one pasted with capitals and a newline.
    let ca: Fingerprint = Fingerprint::of_der(b"fuzz seed CA");
    let enroll = EnrollToken::generate(ca)?.expose();
    write("tokens", "enroll.txt", enroll.as_bytes())?;
    write(
        "tokens",
        "enroll-pasted.txt",
        format!("  {}\n", enroll.replace('a', "A")).as_bytes(),
    )?;
    write(
        "tokens",
        "api.txt",
        ApiToken::generate()?.expose().as_bytes(),
    )?;

    // csr: what `muster-agent enroll` sends, as PEM and as DER (the target wraps DER in PEM).
    for (name, role) in [
        ("agent", Role::agent("web1")?),
        ("collector", Role::Collector),
    ] {
        let csr = generate_csr(&role)?;
        write("csr", &format!("{name}.pem"), csr.csr_pem.as_bytes())?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(csr.csr_pem.as_bytes())?;
        write("csr", &format!("{name}.der"), &pem.contents)?;
    }

    println!("seeds written under {}", seeds.display());
    Ok(())
}

/// A valid batch with `rounds` rounds over three series, one value a NaN.
fn batch(rounds: u64) -> SampleBatch {
    let label = |name: &str, value: &str| Label {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    SampleBatch {
        first_seq: 11,
        last_seq: 10 + rounds,
        next_after: 10 + rounds,
        more: rounds > 10,
        gap: Some(Gap {
            first_missing: 3,
            last_missing: 10,
        }),
        series: vec![
            SeriesDef {
                id: 0,
                metric: "node_load1".to_owned(),
                labels: vec![],
            },
            SeriesDef {
                id: 1,
                metric: "node_filesystem_avail_bytes".to_owned(),
                labels: vec![label("device", "/dev/sda1"), label("mountpoint", "/")],
            },
            SeriesDef {
                id: 7,
                metric: "node_cpu_seconds_total".to_owned(),
                labels: vec![label("cpu", "0"), label("mode", "iowait")],
            },
        ],
        rounds: (0..rounds)
            .map(|i| Round {
                seq: 11 + i,
                timestamp_unix_ms: 1_700_000_000_000 + 10_000 * i,
                values: vec![
                    SeriesValue {
                        series: 0,
                        value: 0.25 * i as f64,
                    },
                    SeriesValue {
                        series: 1,
                        value: 1.0e9 - i as f64,
                    },
                    SeriesValue {
                        series: 7,
                        value: if i == 1 { f64::NAN } else { 12.5 + i as f64 },
                    },
                ],
            })
            .collect(),
    }
}

fn info() -> AgentInfo {
    AgentInfo {
        host_id: "web1".to_owned(),
        agent_version: "0.1.0".to_owned(),
        protocol_version: PROTOCOL_VERSION + 1,
        capabilities: vec![
            CAP_SAMPLES.to_owned(),
            CAP_JOBS.to_owned(),
            "teleport".to_owned(),
        ],
        started_at_unix_ms: 1_700_000_000_000,
    }
}

fn job_request() -> JobRequest {
    JobRequest {
        idempotency_key: "deploy-42-web1".to_owned(),
        spec: JobSpec::Deploy(DeploySpec {
            service: "api".to_owned(),
            image: "ghcr.io/acme/api".to_owned(),
            tag: "1.4.2".to_owned(),
        }),
    }
}

fn job_status() -> JobStatus {
    JobStatus {
        id: "0192".to_owned(),
        idempotency_key: "deploy-42-web1".to_owned(),
        state: JobState::Running,
        progress: Some(0.5),
        message: "pulling image".to_owned(),
        created_at_unix_ms: 1_700_000_000_000,
        started_at_unix_ms: Some(1_700_000_001_000),
        finished_at_unix_ms: None,
    }
}

fn host_record() -> HostRecord {
    HostRecord {
        id: "db-2.eu_west".to_owned(),
        address: "[2001:db8::5]:7071".parse().expect("a literal address"),
        cert_fingerprint: "ab".repeat(32),
        enrolled_at_unix_ms: 1_700_000_000_000,
    }
}
