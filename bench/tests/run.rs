//! The bench binary for real: short runs against a broker it spawns,
//! which must find every message it sent, once, and say so.

use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args(args)
        .args(["--spawn-broker", "--dir"])
        .arg(dir.path())
        .args(["--json", "-", "--warmup", "200ms"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "strata-bench {args:?} failed:\n{stdout}\n{stderr}"
    );
    // With `--json -` standard output is the JSON alone (so `| jq` works),
    // and the report for people is on standard error.
    assert!(
        stderr.contains(&format!("strata-bench {}", args[0])),
        "{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"))
}

#[test]
fn e2e_finds_every_message_once_and_measures_latency() {
    let r = bench(&[
        "e2e",
        "--rate",
        "4000",
        "--messages",
        "3000",
        "--partitions",
        "3",
        "--keys",
        "fixed:7",
        "--message-size",
        "100",
    ]);
    let i = &r["integrity"];
    assert_eq!(i["ok"], true, "{r}");
    assert_eq!(i["missing"], 0);
    assert_eq!(i["duplicates"], 0);
    // The warm-up's messages are checked too: at least the 3000 measured.
    assert!(i["acknowledged"].as_u64().unwrap() >= 3000, "{r}");
    assert_eq!(i["received"], i["acknowledged"]);
    assert_eq!(r["publish"]["messages"], 3000);
    assert_eq!(r["publish"]["bytes"], 300_000);
    assert_eq!(r["e2e_latency"]["count"], 3000);
    assert!(r["e2e_latency"]["p50_us"].as_u64().unwrap() > 0);
    assert_eq!(r["params"]["keys"], "fixed:7");
}

#[test]
fn consume_drains_a_backlog_through_a_group() {
    let r = bench(&[
        "consume",
        "--messages",
        "4000",
        "--partitions",
        "4",
        "--consumers",
        "2",
        "--group",
        "bench-group",
        "--acks",
        "written",
    ]);
    assert_eq!(r["integrity"]["ok"], true, "{r}");
    assert_eq!(r["integrity"]["received"], 4000);
    assert_eq!(r["consume"]["messages"], 4000);
    assert!(r["drain_seconds"].as_f64().unwrap() > 0.0);
    assert!(r["durability"].as_str().unwrap().contains("page_cache"));
}

#[test]
fn produce_reports_throughput_and_publish_latency() {
    let r = bench(&[
        "produce",
        "--messages",
        "2000",
        "--producers",
        "2",
        "--keys",
        "random",
    ]);
    assert_eq!(r["publish"]["messages"], 2000);
    assert_eq!(r["publish_errors"], 0);
    assert_eq!(r["publish_latency"]["count"], 2000);
    assert!(r["integrity"].is_null(), "produce runs no consumers");
}

#[test]
fn ctrl_c_stops_the_run_and_still_reports() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args([
            "e2e",
            "--rate",
            "2000",
            "--duration",
            "10m",
            "--warmup",
            "0s",
        ])
        .args(["--spawn-broker", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = stderr.next().expect("the bench says it runs").unwrap();
        if line.contains("Ctrl-C stops it") {
            break;
        }
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert!(stdout.contains("no message lost or duplicated"), "{stdout}");
}

#[test]
fn the_batch_api_with_two_in_flight_loses_and_repeats_nothing() {
    let r = bench(&[
        "e2e",
        "--batch-api",
        "--in-flight",
        "2",
        "--batch-bytes",
        "8192",
        "--rate",
        "5000",
        "--messages",
        "3000",
        "--message-size",
        "200",
    ]);
    let i = &r["integrity"];
    assert_eq!(i["ok"], true, "{r}");
    assert_eq!(i["missing"], 0);
    assert_eq!(i["duplicates"], 0);
    assert_eq!(r["publish"]["messages"], 3000);
    assert_eq!(r["params"]["batch_api"], "true");
    assert_eq!(r["params"]["in_flight"], "2");
}
