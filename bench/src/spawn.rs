//! `--spawn-broker`: a broker from this build, on a temporary data
//! directory, stopped and removed when the run ends, so one command
//! measures everything.

use std::process::{Child, Command, Stdio};

use anyhow::Context;
use anyhow::bail;

/// A broker child process, stopped (SIGTERM) and its directory removed on drop.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Starts `strata-broker` from beside this executable on a temporary data
/// directory in `dir`; returns it and its URL.
pub fn spawn_broker(dir: &std::path::Path) -> anyhow::Result<(Spawned, String)> {
    let exe = broker_exe()?;
    let tmp = tempfile::Builder::new()
        .prefix("strata-bench-broker-")
        .tempdir_in(dir)?;
    let (child, url) = start_broker(&exe, tmp.path(), "127.0.0.1:0")?;
    Ok((Spawned { child, _dir: tmp }, url))
}

/// Starts the broker `exe` on `data_dir`, listening on `listen`, and waits
/// until it says where it listens; returns the child and its URL.
pub fn start_broker(
    exe: &std::path::Path,
    data_dir: &std::path::Path,
    listen: &str,
) -> anyhow::Result<(Child, String)> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        // Its own process group: a Ctrl-C at the terminal stops the bench
        // (which then reports), not the broker under it.
        .process_group(0)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", listen, "--no-metrics", "--no-kafka"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(a) = l.strip_prefix("strata-broker listening on ") {
                    break a.to_string();
                }
            }
            _ => bail!("the broker exited before listening"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, format!("http://{addr}")))
}

/// `strata-broker` beside this executable.
pub fn broker_exe() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("strata-broker");
    if !exe.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p strata-broker)",
            exe.display()
        );
    }
    Ok(exe)
}
