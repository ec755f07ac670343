//! The `strata` command-line tool against the real broker.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::BrokerProcess;

fn strata(broker: &BrokerProcess, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--broker", &broker.url()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn produce_from_stdin_then_consume_from_the_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let (ok, out, err) = strata(&b, &["topic", "create", "t", "--partitions", "1"], None);
    assert!(ok, "{err}");
    assert!(out.contains("created topic t"));
    let (ok, _, err) = strata(&b, &["produce", "t"], Some("a\nb\n"));
    assert!(ok, "{err}");
    let (ok, out, err) = strata(
        &b,
        &["consume", "t", "--from-beginning", "--max-messages", "2"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "a\nb\n");
}

#[test]
fn produce_compressed_then_consume() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    assert!(strata(&b, &["topic", "create", "z", "--partitions", "1"], None).0);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let line = format!("{{\"codec\":\"{codec}\"}}\n");
        let (ok, _, err) = strata(&b, &["produce", "z", "--compression", codec], Some(&line));
        assert!(ok, "{codec}: {err}");
    }
    let (ok, out, err) = strata(
        &b,
        &["consume", "z", "--from-beginning", "--max-messages", "4"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "{\"codec\":\"gzip\"}\n{\"codec\":\"snappy\"}\n{\"codec\":\"lz4\"}\n{\"codec\":\"zstd\"}\n"
    );
    let (ok, _, err) = strata(
        &b,
        &["produce", "z", "--compression", "brotli"],
        Some("x\n"),
    );
    assert!(!ok);
    assert!(err.contains("--compression must be"), "{err}");
}

#[test]
fn keys_headers_formats_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    assert!(
        strata(
            &b,
            &[
                "topic",
                "create",
                "f",
                "--partitions",
                "2",
                "--config",
                "retention.ms=60000"
            ],
            None
        )
        .0
    );
    let (ok, _, err) = strata(
        &b,
        &[
            "produce",
            "f",
            "--key-separator",
            ":",
            "--partition",
            "1",
            "--header",
            "src=cli",
        ],
        Some("k1:v1\nk2:v2\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, _) = strata(
        &b,
        &[
            "consume",
            "f",
            "--partition",
            "1",
            "--offset",
            "0",
            "--max-messages",
            "2",
            "--format",
            "%p/%o %k=%v [%h] 100%%",
        ],
        None,
    );
    assert!(ok);
    assert_eq!(out, "1/0 k1=v1 [src=cli] 100%\n1/1 k2=v2 [src=cli] 100%\n");
    let (ok, out, _) = strata(
        &b,
        &[
            "consume",
            "f",
            "--partition",
            "1",
            "--from-beginning",
            "--max-messages",
            "1",
            "--json",
        ],
        None,
    );
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["key"], "k1");
    assert_eq!(v["value"], "v1");
    assert_eq!(v["headers"][0]["key"], "src");

    let (ok, out, _) = strata(&b, &["topic", "describe", "f", "--json"], None);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["partitions"][1]["end_offset"], 2);
    assert_eq!(v["config"]["retention.ms"], "60000");
    let (ok, out, _) = strata(&b, &["topic", "list"], None);
    assert!(ok && out.contains('f'));
    assert!(
        strata(
            &b,
            &["topic", "alter", "f", "--config", "retention.ms=1000"],
            None
        )
        .0
    );
    assert!(strata(&b, &["topic", "delete", "f"], None).0);
}

#[test]
fn failures_go_to_stderr_with_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let (ok, _, err) = strata(&b, &["produce", "nope"], Some("x\n"));
    assert!(!ok);
    assert!(err.contains("nope"), "{err}");
    let (ok, _, err) = strata(&b, &["topic", "describe", "nope"], None);
    assert!(!ok);
    assert!(err.contains("unknown topic"), "{err}");
    let (ok, _, err) = strata(&b, &["topic", "create", "bad name"], None);
    assert!(!ok);
    assert!(err.contains("invalid topic name"), "{err}");
}

#[test]
fn group_commands_consume_describe_reset_and_delete() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let run = |args: &[&str], stdin: Option<&str>| {
        let (ok, out, err) = strata(&b, args, stdin);
        assert!(ok, "strata {args:?}: {err}");
        out
    };
    run(&["topic", "create", "t", "--partitions", "1"], None);
    run(&["produce", "t"], Some("a\nb\n"));
    let out = run(
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            "2",
        ],
        None,
    );
    assert_eq!(out, "a\nb\n");
    let out = run(&["group", "list"], None);
    assert!(
        out.lines()
            .any(|l| l.starts_with("g ") && l.contains("empty")),
        "{out}"
    );
    run(&["produce", "t"], Some("c\n"));
    let out = run(&["group", "describe", "g", "--json"], None);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["offsets"][0]["offset"], 2, "{d}");
    assert_eq!(d["offsets"][0]["lag"], 1, "{d}");

    // An active member: a consumer that runs until interrupted.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--broker", &b.url(), "consume", "t", "--group", "g"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "c",
        "resumes after the commit"
    );
    let (ok, _, err) = strata(
        &b,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("active member"), "{err}");
    let (ok, _, err) = strata(&b, &["group", "delete", "g"], None);
    assert!(!ok && err.contains("active member"), "{err}");
    let out = run(&["group", "describe", "g"], None);
    assert!(out.contains("strata-cli") && out.contains("t/0"), "{out}");
    // Ctrl-C: the consumer commits what it printed and leaves.
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(child.wait().unwrap().success());

    let out = run(
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
        ],
        None,
    );
    assert!(
        out.lines().nth(1).unwrap().trim_end().ends_with(" 0"),
        "{out}"
    );
    let out = run(
        &["consume", "t", "--group", "g", "--max-messages", "3"],
        None,
    );
    assert_eq!(out, "a\nb\nc\n");
    for (flag, value, expect) in [
        ("--to-datetime", "2000-01-01T00:00:00Z", " 0"),
        ("--to-offset", "1", " 1"),
        ("--to-latest", "", " 3"),
    ] {
        let mut args = vec!["group", "reset-offsets", "g", "--topic", "t", flag];
        if !value.is_empty() {
            args.push(value);
        }
        let out = run(&args, None);
        assert!(
            out.lines().nth(1).unwrap().ends_with(expect),
            "{flag}: {out}"
        );
    }
    let (ok, _, err) = strata(
        &b,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-datetime",
            "yesterday",
        ],
        None,
    );
    assert!(!ok && err.contains("RFC 3339"), "{err}");
    run(&["group", "delete", "g"], None);
    let out = run(&["group", "list"], None);
    assert!(!out.lines().any(|l| l.starts_with("g ")), "{out}");
}

#[test]
fn health_says_serving_and_fails_without_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let (ok, out, err) = strata(&b, &["health"], None);
    assert!(ok, "{err}");
    assert_eq!(out, "SERVING\n");
    assert!(b.terminate().success());
    let (ok, _, err) = strata(&b, &["health"], None);
    assert!(!ok);
    assert!(err.contains("cannot connect to"), "{err}");
}

/// The broker as `docker/Dockerfile` runs it: no flags, every setting from
/// `STRATA_*` variables; then the image's health check, `strata health`.
#[test]
fn the_container_setup_works_from_the_environment_alone() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::support::broker_bin())
        .env("STRATA_DATA_DIR", dir.path().join("data"))
        .env("STRATA_LISTEN", "127.0.0.1:0")
        .env("STRATA_METRICS_LISTEN", "127.0.0.1:0")
        .env("STRATA_KAFKA_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    let mut metrics = None;
    let mut kafka = None;
    while addr.is_none() {
        let line = lines.next().unwrap().unwrap();
        if let Some(a) = line.strip_prefix("strata-broker metrics on ") {
            metrics = Some(a.to_string());
        }
        if let Some(a) = line.strip_prefix("strata-broker kafka on ") {
            kafka = Some(a.to_string());
        }
        if let Some(a) = line.strip_prefix("strata-broker listening on ") {
            addr = Some(a.to_string());
        }
    }
    assert!(metrics.is_some(), "the metrics address is printed first");
    assert!(kafka.is_some(), "the Kafka listener is on, as in the image");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--broker", &format!("http://{}", addr.unwrap()), "health"])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SERVING\n");
    assert!(dir.path().join("data/broker.lock").exists());
}

#[test]
fn produce_from_a_file_with_a_delimiter_then_consume_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    assert!(strata(&b, &["topic", "create", "f", "--partitions", "2"], None).0);
    // NUL-separated records, one holding a newline.
    let file = dir.path().join("records");
    std::fs::write(&file, b"one\0two\nlines\0three").unwrap();
    let path = file.to_str().unwrap();
    let (ok, _, err) = strata(
        &b,
        &[
            "produce",
            "f",
            "--file",
            path,
            "--delimiter",
            "\\0",
            "--partition",
            "1",
        ],
        None,
    );
    assert!(ok, "{err}");
    // --exit-at-end: every partition read to where it ended, then exit
    // (partition 0 is empty, so it is at its end at once).
    let (ok, out, err) = strata(
        &b,
        &["consume", "f", "--from-beginning", "--exit-at-end"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "one\ntwo\nlines\nthree\n");
    // --offset -N: the last N of each partition.
    let (ok, out, err) = strata(
        &b,
        &[
            "consume",
            "f",
            "--partition",
            "1",
            "--offset",
            "-2",
            "--exit-at-end",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "two\nlines\nthree\n");
    // An offset past the end: said on stderr, started at the end.
    let (ok, out, err) = strata(
        &b,
        &[
            "consume",
            "f",
            "--partition",
            "1",
            "--offset",
            "100",
            "--exit-at-end",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("offset 100 is out of range for f/1") && err.contains("starting at 3"),
        "{err}"
    );
    // A bad delimiter and a missing file are errors that say so.
    let (ok, _, err) = strata(&b, &["produce", "f", "--delimiter", "\\q"], Some("x"));
    assert!(!ok && err.contains("--delimiter"), "{err}");
    let (ok, _, err) = strata(&b, &["produce", "f", "--file", "/no/such/file"], None);
    assert!(!ok && err.contains("/no/such/file"), "{err}");
}

#[test]
fn consume_from_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    assert!(strata(&b, &["topic", "create", "tm", "--partitions", "1"], None).0);
    assert!(strata(&b, &["produce", "tm"], Some("early\n")).0);
    let (ok, out, err) = strata(
        &b,
        &[
            "consume",
            "tm",
            "--from-beginning",
            "--exit-at-end",
            "--format",
            "%t",
        ],
        None,
    );
    assert!(ok, "{err}");
    let early_ms: i64 = out.trim().parse().unwrap();
    // The clock moves past the first record's millisecond before the next.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        <= early_ms
    {
        std::hint::spin_loop();
    }
    assert!(strata(&b, &["produce", "tm"], Some("late\n")).0);
    let after = (early_ms + 1).to_string();
    let (ok, out, err) = strata(
        &b,
        &["consume", "tm", "--from-time", &after, "--exit-at-end"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "late\n");
    let (ok, out, _) = strata(
        &b,
        &[
            "consume",
            "tm",
            "--from-time",
            "1970-01-02T00:00:00Z",
            "--exit-at-end",
        ],
        None,
    );
    assert!(ok);
    assert_eq!(out, "early\nlate\n");
    let (ok, _, err) = strata(&b, &["consume", "tm", "--from-time", "yesterday"], None);
    assert!(!ok && err.contains("--from-time"), "{err}");
}

#[test]
fn share_consume_in_each_mode_then_replay_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let run = |args: &[&str], stdin: Option<&str>| {
        let (ok, out, err) = strata(&b, args, stdin);
        assert!(ok, "strata {args:?}: {err}");
        out
    };
    run(&["topic", "create", "jobs", "--partitions", "1"], None);
    run(&["produce", "jobs"], Some("a\nb\nc\n"));
    // One rejected: to the dead-letter topic, with the reason.
    let out = run(
        &[
            "share",
            "consume",
            "jobs",
            "--group",
            "w",
            "--mode",
            "reject",
            "--reason",
            "bad",
            "--max-messages",
            "1",
            "--json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["value"].as_str(), v["delivery"].as_u64()),
        (Some("a"), Some(1)),
        "{out}"
    );
    // The rest accepted; the one left over by --max-messages came back.
    let out = run(
        &[
            "share",
            "consume",
            "jobs",
            "--group",
            "w",
            "--exit-when-idle",
        ],
        None,
    );
    assert_eq!(out, "b\nc\n");
    let out = run(&["share", "describe", "w", "--json"], None);
    let d: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(d["dead_letter_topic"], "jobs.w.dlq");
    assert_eq!(d["partitions"][0]["dead_lettered"], 1, "{out}");
    assert_eq!(d["partitions"][0]["lag"], 0, "{out}");
    let out = run(
        &[
            "consume",
            "jobs.w.dlq",
            "--from-beginning",
            "--exit-at-end",
            "--format",
            "%v %h",
        ],
        None,
    );
    assert!(out.starts_with("a "), "{out}");
    assert!(out.contains("strata.dlq.error=bad"), "{out}");
    // Replay puts it back on jobs, where the group delivers it again.
    let out = run(&["dlq", "replay", "jobs.w.dlq"], None);
    assert!(out.contains("replayed 1 dead letter(s)"), "{out}");
    assert!(out.contains("jobs.w.dlq/0: next offset 1"), "{out}");
    let out = run(
        &[
            "share",
            "consume",
            "jobs",
            "--group",
            "w",
            "--exit-when-idle",
            "--format",
            "%v %h",
        ],
        None,
    );
    assert_eq!(out, "a \n", "the record's own headers only (it had none)");
    let out = run(&["share", "list"], None);
    assert!(out.contains('w'), "{out}");
    run(
        &["share", "reset", "w", "--topic", "jobs", "--to-earliest"],
        None,
    );
    let out = run(
        &[
            "share",
            "consume",
            "jobs",
            "--group",
            "w",
            "--exit-when-idle",
        ],
        None,
    );
    assert_eq!(out, "a\nb\nc\na\n", "everything again after the reset");
    run(&["share", "delete", "w"], None);
    let (ok, _, err) = strata(&b, &["share", "describe", "w"], None);
    assert!(!ok && err.contains("unknown group"), "{err}");
}
