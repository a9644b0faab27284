//! A real agent with a `[[backup]]` set, called over mutual TLS as the collector calls it:
//! info lists the capabilities, a backup job runs once per idempotency key, the status and
//! series show it, a restore outside the set's targets is refused, one inside works.

use muster_shared::protocol::backups::{BackupSetStatus, SnapshotInfo};
use muster_shared::protocol::jobs::JobStatus;
use muster_tests::{AgentDir, Collector, CollectorOptions, runtime, wait_for};

#[test]
fn collector_runs_backup_and_restore_jobs_on_a_real_agent() {
    let collector = Collector::start(CollectorOptions::default());
    let token = collector.create_token(&["--enroll", "--host", "web1"]);
    let agent = AgentDir::new();
    let src = agent.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/precious"), b"keep me").unwrap();
    let allowed = agent.dir.path().join("restores");
    agent.append_config(&format!(
        "[[backup]]\nname = \"files\"\npaths = [{:?}]\nrestore_targets = [{:?}]\n\
         [[backup.command]]\nname = \"dump.txt\"\nrun = [\"sh\", \"-c\", \"echo dumped\"]\n",
        src.display().to_string(),
        allowed.display().to_string()
    ));
    let out = agent.enroll(&collector.url, &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _proc = agent.start();
    let client = agent.collector_client(&collector, "web1");
    let base = format!("https://127.0.0.1:{}", agent.port);
    let rt = runtime();
    let get = |path: &str| -> (u16, serde_json::Value) {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        rt.block_on(async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(serde_json::Value::Null))
        })
    };
    let post = |body: serde_json::Value| -> (u16, serde_json::Value) {
        let (client, url) = (client.clone(), format!("{base}/v1/jobs"));
        rt.block_on(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(serde_json::Value::Null))
        })
    };
    let finished = |id: &str| -> JobStatus {
        wait_for("the job to finish", || {
            let (_, v) = get(&format!("/v1/jobs/{id}"));
            let s: JobStatus = serde_json::from_value(v).ok()?;
            s.state.is_terminal().then_some(s)
        })
    };

    let (_, info) = get("/v1/info");
    let caps = info["capabilities"].as_array().unwrap();
    assert!(
        caps.iter().any(|c| c == "backups") && caps.iter().any(|c| c == "jobs"),
        "{info}"
    );

    let job = serde_json::json!({"idempotency_key": "run-1", "spec": {"backup": {"set": "files"}}});
    let (code, first) = post(job.clone());
    assert_eq!(code, 200, "{first}");
    let (_, again) = post(job);
    assert_eq!(first["id"], again["id"], "the same key is the same job");
    let done = finished(first["id"].as_str().unwrap());
    assert_eq!(format!("{:?}", done.state), "Succeeded", "{}", done.message);

    let (_, statuses) = get("/v1/backups");
    let statuses: Vec<BackupSetStatus> = serde_json::from_value(statuses).unwrap();
    assert_eq!(statuses.len(), 1);
    let last = statuses[0].last_run.as_ref().unwrap();
    assert!(last.success && last.trigger == "job", "{last:?}");
    assert!(statuses[0].last_success_unix_ms.is_some());
    let (_, snaps) = get("/v1/backups/files/snapshots");
    let snaps: Vec<SnapshotInfo> = serde_json::from_value(snaps).unwrap();
    assert_eq!(snaps.len(), 1, "one run, one snapshot");
    assert!(snaps[0].paths.contains(&"command:dump.txt".to_string()));
    assert_eq!(get("/v1/backups/nope/snapshots").0, 404);

    // The series reach /metrics within a sampling round.
    wait_for("muster_backup_last_run_success on /metrics", || {
        let (client, url) = (client.clone(), format!("{base}/metrics"));
        let text =
            rt.block_on(async move { client.get(url).send().await.ok()?.text().await.ok() })?;
        text.contains("muster_backup_last_run_success{backup=\"files\"} 1")
            .then_some(())
    });

    let restore = |key: &str, target: &std::path::Path| {
        serde_json::json!({"idempotency_key": key, "spec": {"restore": {
            "set": "files", "snapshot_id": snaps[0].id, "target_dir": target.display().to_string(),
            "sub_path": null}}})
    };
    let outside = agent.dir.path().join("elsewhere");
    let (code, refused) = post(restore("restore-1", &outside));
    assert_eq!(code, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not an allowed restore target"),
        "{refused}"
    );
    assert!(!outside.exists());
    let inside = allowed.join("today");
    let (_, ok) = post(restore("restore-2", &inside));
    let ok = finished(ok["id"].as_str().unwrap());
    assert_eq!(format!("{:?}", ok.state), "Succeeded", "{}", ok.message);
    let back = inside
        .join(src.strip_prefix("/").unwrap())
        .join("sub/precious");
    assert_eq!(std::fs::read(back).unwrap(), b"keep me");
    assert_eq!(std::fs::read(inside.join("dump.txt")).unwrap(), b"dumped\n");

    let (code, bad) =
        post(serde_json::json!({"idempotency_key": "x", "spec": {"backup": {"set": "nope"}}}));
    assert_eq!(code, 400, "{bad}");
    let (code, _) = post(serde_json::json!({"spec": 1}));
    assert_eq!(code, 400);
}
