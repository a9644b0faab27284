//! The `docker` kind: is a local container running, and healthy by its own health check?
//!
//! The run inspects the container named by the target on the local engine (the socket of
//! `[sample.paths] docker_socket`, connected as the container sampler does and kept between
//! runs). It succeeds when the container is running and has no health check or a healthy
//! one; `starting` is not healthy yet. `[HEALTH]` is Docker's health status (`healthy`,
//! `unhealthy`, `starting`, `none`), so `[HEALTH] == "healthy"` also requires a health check.
//! Series: `muster_probe_container_running`.
//!
//! [`judge`] is the pure part, tested on inspect answers; reasons are bounded (`container
//! exited`, `container unhealthy`, `container not found`, `docker engine unreachable`).
//!
//! Leaves out: other engines, restart counts (the container sampler exports them), and
//! acting on the container (deploys do that).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::InspectContainerOptions;

use super::families::CONTAINER_RUNNING;
use super::{Outcome, Prober};
use crate::sample::container::engine;
use crate::sample::container::inventory::container_from_inspect;
use crate::sample::container::{Health, State};

/// A docker probe.
#[derive(Debug)]
pub struct DockerProber {
    socket: PathBuf,
    container: String,
    /// The engine connection, kept while it works.
    client: Mutex<Option<Docker>>,
}

impl DockerProber {
    /// A probe of `container` on the engine at `socket`. Connects at the first run.
    pub fn new(socket: &Path, container: &str) -> Self {
        Self {
            socket: socket.to_owned(),
            container: container.to_owned(),
            client: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Docker> {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn keep(&self, docker: Option<Docker>) {
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = docker;
    }
}

impl Prober for DockerProber {
    async fn probe(&self, out: &mut Outcome) {
        out.set(&CONTAINER_RUNNING, 0.0);
        let docker = match self.cached() {
            Some(docker) => docker,
            None => match engine::connect(&self.socket).await {
                Ok(docker) => {
                    self.keep(Some(docker.clone()));
                    docker
                }
                Err(err) => {
                    tracing::debug!(error = %err, "docker probe cannot reach the engine");
                    return out.fail("docker engine unreachable");
                }
            },
        };
        let answer = docker
            .inspect_container(&self.container, Some(InspectContainerOptions::default()))
            .await;
        match answer {
            Ok(inspect) => judge(&inspect, out),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => out.fail("container not found"),
            Err(err) => {
                tracing::debug!(error = %err, "docker probe inspect failed; reconnecting next run");
                self.keep(None);
                out.fail("docker engine unreachable");
            }
        }
    }
}

/// Judges a container from Docker's inspect answer: `muster_probe_container_running`,
/// `[HEALTH]`, and the failure when it is not running or not healthy.
pub fn judge(inspect: &ContainerInspectResponse, out: &mut Outcome) {
    let Some(container) = container_from_inspect(inspect) else {
        return out.fail("container not found");
    };
    let running = container.state == State::Running;
    out.set(&CONTAINER_RUNNING, if running { 1.0 } else { 0.0 });
    out.facts.health = Some(container.health.as_str());
    if !running {
        return out.fail(format!("container {}", container.state.as_str()));
    }
    match container.health {
        Health::Unhealthy => out.fail("container unhealthy"),
        Health::Starting => out.fail("container starting"),
        Health::Healthy | Health::None => {}
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};

    use super::*;

    fn inspect() -> ContainerInspectResponse {
        serde_json::from_str(include_str!(
            "../sample/container/testdata/inspect_running.json"
        ))
        .unwrap()
    }

    fn judged(inspect: &ContainerInspectResponse) -> Outcome {
        let mut out = Outcome::default();
        judge(inspect, &mut out);
        out
    }

    #[test]
    fn a_running_healthy_container_succeeds() {
        let out = judged(&inspect());
        assert_eq!(out.failure(), None);
        assert_eq!(out.value("muster_probe_container_running"), Some(1.0));
        assert_eq!(out.facts.health, Some("healthy"));
    }

    #[test]
    fn a_running_container_without_health_check_succeeds() {
        let mut i = inspect();
        if let Some(state) = &mut i.state {
            state.health = None;
        }
        let out = judged(&i);
        assert_eq!(out.failure(), None);
        assert_eq!(out.facts.health, Some("none"));
    }

    #[test]
    fn unhealthy_starting_and_stopped_containers_fail_with_their_state() {
        let table = [
            (
                ContainerStateStatusEnum::RUNNING,
                HealthStatusEnum::UNHEALTHY,
                "container unhealthy",
                1.0,
            ),
            (
                ContainerStateStatusEnum::RUNNING,
                HealthStatusEnum::STARTING,
                "container starting",
                1.0,
            ),
            (
                ContainerStateStatusEnum::EXITED,
                HealthStatusEnum::UNHEALTHY,
                "container exited",
                0.0,
            ),
            (
                ContainerStateStatusEnum::PAUSED,
                HealthStatusEnum::HEALTHY,
                "container paused",
                0.0,
            ),
            (
                ContainerStateStatusEnum::RESTARTING,
                HealthStatusEnum::HEALTHY,
                "container restarting",
                0.0,
            ),
        ];
        for (status, health, reason, running) in table {
            let mut i = inspect();
            if let Some(state) = &mut i.state {
                state.status = Some(status);
                if let Some(h) = &mut state.health {
                    h.status = Some(health);
                }
            }
            let out = judged(&i);
            assert_eq!(out.failure(), Some(reason), "{status:?} {health:?}");
            assert_eq!(out.value("muster_probe_container_running"), Some(running));
        }
    }

    #[tokio::test]
    async fn an_unreachable_engine_fails_the_run() {
        let prober = DockerProber::new(Path::new("/nonexistent/muster/docker.sock"), "web");
        let mut out = Outcome::default();
        prober.probe(&mut out).await;
        assert_eq!(out.failure(), Some("docker engine unreachable"));
        assert_eq!(out.value("muster_probe_container_running"), Some(0.0));
    }

    /// Against the local engine: a container that does not exist. Skips without an engine
    /// (fails when `CI=true`).
    #[tokio::test]
    async fn a_missing_container_on_a_live_engine_is_not_found() {
        let socket = Path::new("/var/run/docker.sock");
        if let Err(err) = engine::ping(socket).await {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI needs a Docker engine: {err}"
            );
            eprintln!("skipped: no Docker engine ({err})");
            return;
        }
        let prober = DockerProber::new(socket, "muster-probe-test-no-such-container");
        let mut out = Outcome::default();
        prober.probe(&mut out).await;
        assert_eq!(out.failure(), Some("container not found"));
        // The connection is kept for the next run.
        assert!(prober.cached().is_some());
    }
}
