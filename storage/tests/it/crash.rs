//! Acknowledged records survive `kill -9`.
//!
//! The test re-runs itself, this one test of its own binary, as a child
//! process; the child (told so by an environment variable) appends from
//! several threads in
//! fsync-before-acknowledge mode and prints a line for every acknowledged
//! batch. The parent kills the child with SIGKILL at a random moment,
//! reopens the log, and checks that every acknowledged batch is there,
//! once, in order, with its bytes intact. Seeds are printed on failure.
//!
//! A killed process leaves its writes in the page cache, so this proves the
//! engine's own bookkeeping (acks, offsets, recovery); what fsync adds
//! against power loss cannot be shown without cutting a machine's power.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::common::*;
use strata_storage::{Durability, Log, LogConfig, Offset};

const CHILD_ENV: &str = "STRATA_CRASH_CHILD_DIR";
const THREADS: usize = 4;

/// The child's side: append to the log in `dir` until killed.
fn child(dir: &str) -> ! {
    let cfg = LogConfig {
        segment_bytes_max: 64 * 1024,
        batch_bytes_max: 64 * 1024,
        durability: Durability::Fsync,
        ..LogConfig::default()
    };
    let log = Arc::new(Log::open(dir, cfg).expect("child opens the log"));
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (log, out) = (log.clone(), out.clone());
            std::thread::spawn(move || {
                for seq in 0u64.. {
                    let n = 1 + (seq as usize % 4);
                    let batch = make_batch(&format!("t{t}s{seq}"), n, seq as i64);
                    let info = log.append(&batch).expect("append");
                    let mut o = out.lock().unwrap();
                    writeln!(
                        o,
                        "ACK {t} {seq} {} {}",
                        info.base_offset.0, info.last_offset.0
                    )
                    .unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    unreachable!("the appenders run until the parent kills the process")
}

fn crash_once(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("child.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::acknowledged_records_survive_kill_9",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let kill_after = rng.usize(1..400);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: Vec<(usize, u64, u64, u64)> = Vec::new();
    let parse = |line: &str, acked: &mut Vec<_>| {
        if let Some(rest) = line.strip_prefix("ACK ") {
            let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            acked.push((f[0] as usize, f[1], f[2], f[3]));
        }
    };
    for line in lines.by_ref() {
        parse(&line.unwrap(), &mut acked);
        if acked.len() >= kill_after {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acks already in the pipe were made before the kill: they count too.
    for line in lines {
        match line {
            Ok(l) => parse(&l, &mut acked),
            Err(_) => break,
        }
    }
    assert!(
        acked.len() >= kill_after,
        "seed {seed}: child died early: {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );

    let log = Log::open(dir.path(), LogConfig::default())
        .unwrap_or_else(|e| panic!("seed {seed}: reopen: {e}"));
    // Every record in the log, in offset order, tagged by its (thread, seq).
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    let mut off = Offset(0);
    let mut expected_offset = 0i64;
    loop {
        let r = log.read(off, 1 << 20).unwrap();
        if r.batches.is_empty() {
            break;
        }
        for rec in records(&r.batches) {
            assert_eq!(
                rec.offset, expected_offset,
                "seed {seed}: offsets are contiguous"
            );
            expected_offset += 1;
            let value = String::from_utf8(rec.value.unwrap().to_vec()).unwrap();
            seen.entry(value).or_default().push(rec.offset);
        }
        off = Offset(expected_offset as u64);
    }
    for &(t, seq, base, last) in &acked {
        for (i, offset) in (base..=last).enumerate() {
            let value = format!("t{t}s{seq}-{i}");
            let at = seen
                .get(&value)
                .unwrap_or_else(|| panic!("seed {seed}: acknowledged record {value} lost"));
            assert_eq!(
                at,
                &vec![offset as i64],
                "seed {seed}: {value} must be at {offset}, exactly once"
            );
        }
    }
    // Nothing appears twice, acknowledged or not.
    assert!(
        seen.values().all(|v| v.len() == 1),
        "seed {seed}: a record appears twice"
    );
}

#[test]
fn acknowledged_records_survive_kill_9() {
    // In the child this test is the appender, and never returns.
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let base = fastrand::u64(..);
    for i in 0..5 {
        crash_once(base.wrapping_add(i));
    }
}
