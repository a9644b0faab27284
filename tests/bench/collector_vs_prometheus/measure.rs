//! What both sides are measured with: a keep-alive HTTP client on its own single-threaded
//! runtime, a process's peak RSS, the size of a folder, a counter read from a text
//! exposition, and the 24 h `rate()` query timed the same way against either API.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A keep-alive HTTP client on a single-threaded runtime (plain HTTP, loopback).
#[derive(Debug)]
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    /// A client with `timeout` per request.
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            client: reqwest::Client::builder()
                .timeout(timeout)
                .no_proxy()
                .build()?,
        })
    }

    /// GET `url` (with a bearer token if given): status and body.
    pub fn get(&self, url: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
        self.send(self.client.get(url), token)
    }

    /// POST an empty body to `url`: status and body.
    pub fn post(&self, url: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
        self.send(self.client.post(url), token)
    }

    fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        self.rt.block_on(async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            Ok((status, response.text().await?))
        })
    }

    /// GET `url` until it answers 200, at most `limit`; fails naming `what`.
    pub fn wait_ok(&self, url: &str, what: &str, limit: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if matches!(self.get(url, None), Ok((200, _))) {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("{what} did not answer {url} within {limit:?}")
    }
}

/// A field of `/proc/<pid>/status` in bytes (`VmHWM`, `VmRSS`); 0 when gone.
pub fn status_bytes(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|v| v.strip_prefix(':'))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kib| kib * 1024)
}

/// Bytes under `dir`: (sum of file lengths, bytes allocated on disk). Each path is counted
/// once; hard links to a file outside `dir` count in full.
pub fn dir_size(dir: &Path) -> anyhow::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        } else if meta.is_file() {
            total.0 += meta.len();
            total.1 += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// The sum of every sample of `metric` (any labels) in a text exposition; `None` if absent.
pub fn metric_sum(body: &str, metric: &str) -> Option<f64> {
    let mut found = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// The value of `metric` with a label `name="value"` in a text exposition.
pub fn metric_with_label(body: &str, metric: &str, label: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(metric) && l.contains(label))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

/// The 24 h `rate()` query timed against one API.
#[derive(Debug, Default, Clone)]
pub struct QueryFigures {
    /// Median wall time of the timed runs.
    pub median: Duration,
    /// Fastest and slowest run.
    pub min: Duration,
    /// Slowest run.
    pub max: Duration,
    /// Timed runs.
    pub runs: usize,
    /// Series in the answer.
    pub series: usize,
    /// Points in the answer, all series.
    pub points: usize,
    /// Sum over series of each series' mean rate (a CPU's modes add to ~1 s/s): the two
    /// stores should agree closely, as they hold the same values.
    pub mean_rate_sum: f64,
    /// Answer bytes.
    pub bytes: usize,
}

/// Runs `query` over the 24 h ending at the last whole minute, step 60 s, against the
/// Prometheus-compatible `base_url` (`.../api/v1/query_range`): `warm_up` runs, then `runs`
/// timed ones (stopping early after `limit`); median by nearest rank.
pub fn time_range_query(
    http: &Http,
    base_url: &str,
    token: Option<&str>,
    query: &str,
    runs: usize,
    limit: Duration,
) -> anyhow::Result<QueryFigures> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let end = now / 60 * 60;
    let start = end - 86_400;
    let url = format!(
        "{base_url}/api/v1/query_range?query={}&start={start}&end={end}&step=60",
        encode(query)
    );
    let mut figures = QueryFigures::default();
    let mut times = Vec::with_capacity(runs);
    let started = Instant::now();
    for n in 0..runs + 2 {
        if started.elapsed() > limit {
            eprintln!("query time limit {limit:?} reached after {n} runs");
            break;
        }
        let t = Instant::now();
        let (status, body) = http.get(&url, token)?;
        let elapsed = t.elapsed();
        if status != 200 {
            bail!(
                "query answered {status}: {}",
                body.chars().take(300).collect::<String>()
            );
        }
        if n >= 2 {
            times.push(elapsed);
        } else {
            summarise(&body, &mut figures)?;
        }
    }
    times.sort();
    figures.runs = times.len();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        figures.min = *min;
        figures.max = *max;
        figures.median = times[times.len().div_ceil(2) - 1];
    }
    Ok(figures)
}

fn summarise(body: &str, figures: &mut QueryFigures) -> anyhow::Result<()> {
    let json: serde_json::Value = serde_json::from_str(body).context("query answer")?;
    let result = json["data"]["result"]
        .as_array()
        .context("no data.result in the answer")?;
    figures.series = result.len();
    figures.bytes = body.len();
    figures.points = 0;
    figures.mean_rate_sum = 0.0;
    for series in result {
        let values = series["values"].as_array().map_or(&[][..], Vec::as_slice);
        figures.points += values.len();
        let rates: Vec<f64> = values
            .iter()
            .filter_map(|p| p[1].as_str()?.parse().ok())
            .collect();
        if !rates.is_empty() {
            figures.mean_rate_sum += rates.iter().sum::<f64>() / rates.len() as f64;
        }
    }
    Ok(())
}

/// Percent-encodes a query string value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// CPU seconds of `pid` (utime + stime), or `None` when it is gone.
pub fn cpu(pid: i32) -> Option<f64> {
    std::fs::metadata(format!("/proc/{pid}/stat"))
        .ok()
        .map(|_| crate::common::cpu_seconds(pid))
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// One store's run, as the driver watches it.
#[derive(Debug, Default, Clone)]
pub struct Window {
    /// CPU seconds and samples at the end of the warm-up.
    pub cpu_start: f64,
    /// Samples ingested at the end of the warm-up.
    pub samples_start: f64,
    /// CPU seconds since the process started, at the end of the run.
    pub cpu_end: f64,
    /// Samples ingested since the process started, at the end of the run.
    pub samples_end: f64,
    /// Wall seconds from the warm-up's end to the run's end.
    pub steady_secs: f64,
    /// Wall seconds from the process start to the run's end.
    pub whole_secs: f64,
    /// `VmHWM` at the end of the run.
    pub hwm: u64,
    /// `VmRSS` every 30 s: (seconds since start, bytes).
    pub rss: Vec<(u64, u64)>,
}

impl Window {
    /// CPU seconds per million samples over the steady part.
    pub fn cpu_per_million_steady(&self) -> f64 {
        per_million(
            self.cpu_end - self.cpu_start,
            self.samples_end - self.samples_start,
        )
    }

    /// CPU seconds per million samples over the whole process life.
    pub fn cpu_per_million_whole(&self) -> f64 {
        per_million(self.cpu_end, self.samples_end)
    }
}

fn per_million(cpu: f64, samples: f64) -> f64 {
    if samples > 0.0 {
        cpu / samples * 1e6
    } else {
        f64::NAN
    }
}

/// Watches process `pid` (started at `started`) until `started + total`: CPU and samples
/// (`samples()`, the store's own counter) once `warm_up_done()` holds and `warm_up` has
/// passed, again at the end, with `VmHWM`. Fails if the process exits.
pub fn observe(
    pid: i32,
    started: Instant,
    warm_up: Duration,
    total: Duration,
    samples: impl Fn() -> anyhow::Result<f64>,
    mut warm_up_done: impl FnMut() -> bool,
) -> anyhow::Result<Window> {
    let mut window = Window::default();
    let mut warm = false;
    let mut next_rss = Duration::ZERO;
    let mut steady_from = started;
    loop {
        let elapsed = started.elapsed();
        if cpu(pid).is_none() || !muster_tests::pid_alive(pid) {
            bail!("process {pid} exited during the run");
        }
        if elapsed >= next_rss {
            window
                .rss
                .push((elapsed.as_secs(), status_bytes(pid, "VmRSS")));
            next_rss += Duration::from_secs(30);
        }
        // Asked on every pass, so a caller timing its readiness sees it when it happens.
        if !warm && warm_up_done() && elapsed >= warm_up {
            window.cpu_start = cpu(pid).unwrap_or(0.0);
            window.samples_start = samples()?;
            steady_from = Instant::now();
            warm = true;
            eprintln!(
                "collector_vs_prometheus: warm-up over after {:.1} s ({} samples)",
                elapsed.as_secs_f64(),
                window.samples_start
            );
        }
        if elapsed >= total {
            if !warm {
                bail!("the warm-up never finished within the run ({total:?})");
            }
            window.cpu_end = cpu(pid).unwrap_or(0.0);
            window.samples_end = samples()?;
            window.hwm = status_bytes(pid, "VmHWM");
            window.steady_secs = steady_from.elapsed().as_secs_f64();
            window.whole_secs = started.elapsed().as_secs_f64();
            return Ok(window);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
