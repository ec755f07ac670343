//! The engine's invariant, checked where Cargo resolves it: nothing in
//! `strata-storage`'s dependency tree is an async runtime or an RPC layer.
//! (A `use tokio::…` in the engine would not even compile, since its
//! manifest does not name tokio; this test keeps a dependency from
//! bringing one in unnoticed.)

use std::process::Command;

#[test]
fn the_storage_engine_depends_on_no_async_runtime_or_rpc_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "strata-storage",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"strata-storage"), "{tree}");
    assert!(crates.contains(&"strata-batch"), "{tree}");
    for banned in [
        "tokio",
        "tonic",
        "prost",
        "hyper",
        "strata-proto",
        "futures",
    ] {
        assert!(
            !crates.contains(&banned),
            "strata-storage depends on {banned}:\n{tree}"
        );
    }
}
