//! `container_sampling`: one pass of Muster's container sampler against
//! `docker stats --no-stream` over the same 50 running containers, in one
//! run.
//!
//! Muster's pass is the library's own [`ContainerSampler`], started as the
//! agent starts it (`sample::container::start`: cgroup detection, the
//! inventory task on the real engine) and timed as the scheduler runs it
//! (`begin_round`, `sample`, `forget_stale`): the median of 20 passes after
//! a warm-up pass, once the inventory lists every container. docker stats:
//! the median wall time of 5 runs (after one warm-up run) of
//! `docker stats --no-stream --format '{{.ID}}' <ids...>`.
//!
//! Not like for like, and the output says so: docker stats asks the engine,
//! which reads each container's cgroup through the runtime and, for CPU
//! percentages, waits for a second reading; Muster reads the cgroup files
//! directly and leaves rates to the query side. Both give one reading of
//! every container, which is what a sampling round needs.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p
//! muster-tests --bench container_sampling`. Needs Docker and Debian's
//! `busybox-static`. Prints lines only; nothing asserts on them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use muster_agent::sample::container::{self, ContainerConfig};
use muster_agent::sample::paths::SamplePaths;
use muster_agent::sample::{Sampler, SeriesTable};
use muster_tests::docker::DockerKit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const NAME: &str = "container_sampling";
const CONTAINERS: usize = 50;
const MUSTER_PASSES: usize = 20;
const DOCKER_RUNS: usize = 5;
/// Upper bound on waiting for the inventory, and on one docker stats run.
const LIMIT: Duration = Duration::from_secs(120);

fn main() {
    let Some(mut kit) = DockerKit::new("container_sampling needs running containers") else {
        common::give_up("no Docker engine or no /bin/busybox (busybox-static)");
    };
    let ids = common::start_containers(&mut kit, CONTAINERS);
    let foreign_at_start = common::foreign_containers(&kit);
    eprintln!("{NAME}: load1 at start {}", common::load1());
    println!(
        "{NAME} fairness: docker stats goes through the engine, which reads every container's stats via the \
         runtime and waits for a second reading to compute CPU%; muster reads cgroup files directly \
         (rates are left to queries). Each gives one reading of all {CONTAINERS} containers."
    );

    let (muster, series, sampled) = time_muster_passes(&kit);
    let docker = time_docker_stats(&ids);
    println!(
        "{NAME} pass_ms muster={} docker_stats={} speedup={:.1}x (target >= 20x; {CONTAINERS} containers; \
         muster's pass sampled {sampled} running containers into {series} series)",
        common::ms(muster),
        common::ms(docker),
        docker.as_secs_f64() / muster.as_secs_f64().max(1e-9),
    );
    println!(
        "{NAME} other_containers start={foreign_at_start} end={} (running containers not this run's; \
         muster's pass reads them too)",
        common::foreign_containers(&kit)
    );
    // `kit` drops here: the containers and the image are removed.
}

/// Median wall time of [`MUSTER_PASSES`] passes; also the series count of
/// the last pass and how many running containers it read.
fn time_muster_passes(kit: &DockerKit) -> (Duration, usize, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let tasks = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let mut sampler = rt
        .block_on(container::start(
            &SamplePaths::default(),
            &ContainerConfig::default(),
            shutdown.clone(),
            &tasks,
        ))
        .expect("the container sampler is enabled by default");

    let mut table = SeriesTable::new();
    let pass = |sampler: &mut Box<dyn Sampler>, table: &mut SeriesTable| {
        let started = Instant::now();
        table.begin_round();
        let result = sampler.sample(table);
        table.forget_stale();
        (started.elapsed(), result)
    };

    // Until the inventory lists every test container and their cgroups read.
    let deadline = Instant::now() + LIMIT;
    loop {
        let _ = pass(&mut sampler, &mut table);
        let seen = running_sampled(&table, Some(&kit.tag));
        if seen == CONTAINERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sampler never read all {CONTAINERS} containers (read {seen})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = pass(&mut sampler, &mut table); // warm-up
    let mut times = Vec::with_capacity(MUSTER_PASSES);
    for _ in 0..MUSTER_PASSES {
        let (took, result) = pass(&mut sampler, &mut table);
        if let Err(err) = result {
            eprintln!("{NAME}: a pass failed: {err}");
        }
        times.push(took);
    }
    eprintln!(
        "{NAME}: muster passes min {} median {} max {} ms",
        common::ms(*times.iter().min().unwrap()),
        common::ms(common::quantile(&times, 0.5)),
        common::ms(*times.iter().max().unwrap()),
    );
    shutdown.cancel();
    tasks.close();
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await;
    });
    (
        common::quantile(&times, 0.5),
        table.live_count(),
        running_sampled(&table, None),
    )
}

/// Containers with a `container_cpu_usage_seconds_total` series in the
/// table's current round; only the kit's when `tag` is given.
fn running_sampled(table: &SeriesTable, tag: Option<&str>) -> usize {
    let prefix = tag.map(|t| format!("muster-test-{t}-"));
    table
        .live()
        .filter(|s| {
            let Some(family) = table.family_of(s.family) else {
                return false;
            };
            if &*family.name != "container_cpu_usage_seconds_total" {
                return false;
            }
            let Some(at) = family.labels.iter().position(|l| &**l == "name") else {
                return false;
            };
            prefix
                .as_deref()
                .is_none_or(|p| s.values[at].starts_with(p))
        })
        .count()
}

/// Median wall time of [`DOCKER_RUNS`] runs of docker stats over `ids`.
fn time_docker_stats(ids: &[String]) -> Duration {
    let run = || {
        let started = Instant::now();
        let out = muster_tests::run(
            Command::new("docker")
                .args(["stats", "--no-stream", "--format", "{{.ID}}"])
                .args(ids),
        );
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "docker stats: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(
            lines,
            ids.len(),
            "docker stats printed one line per container"
        );
        assert!(took < LIMIT);
        took
    };
    let _ = run(); // warm-up
    let times: Vec<Duration> = (0..DOCKER_RUNS).map(|_| run()).collect();
    eprintln!(
        "{NAME}: docker stats runs {} ms",
        times
            .iter()
            .map(|t| common::ms(*t))
            .collect::<Vec<_>>()
            .join(", ")
    );
    common::quantile(&times, 0.5)
}
