//! The simulated disk's own rules (`storage::sim`): what a power loss
//! keeps of fsynced and unfsynced data and directory entries, and its
//! injected faults. The model tests that run the engine on it are
//! `power_loss.rs`, `compaction.rs` and `groups_power_loss.rs`.

use std::io;
use std::path::Path;

use strata_storage::SimFs;
use strata_storage::vfs::{Open, Vfs};

fn write(fs: &SimFs, path: &str, bytes: &[u8], sync: bool) {
    let f = fs.open(Path::new(path), Open::Truncate).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    if sync {
        f.sync_data().unwrap();
    }
}

#[test]
fn synced_data_and_entries_survive_every_power_loss() {
    for seed in 0..200 {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        write(&fs, "/d/a", &[7; 1500], true);
        fs.sync_dir(Path::new("/d")).unwrap();
        // Unsynced: more data, a new file, a removal.
        let f = fs.open(Path::new("/d/a"), Open::Existing).unwrap();
        f.write_all_at(&[9; 2000], 1500).unwrap();
        write(&fs, "/d/b", b"new", true);
        let after = fs.restart(seed);
        let a = after.read(Path::new("/d/a")).unwrap();
        assert!(a.len() >= 1500, "seed {seed}: synced bytes lost");
        assert_eq!(&a[..1500], &[7; 1500][..], "seed {seed}");
        assert!(
            a[1500..].iter().all(|&b| b == 9 || b == 0),
            "seed {seed}: only written or zero bytes past the synced end"
        );
        // The power is off on the old disk.
        assert!(f.len().is_err());
    }
}

#[test]
fn unsynced_writes_and_entries_may_go_either_way() {
    let (mut kept, mut dropped, mut torn, mut entry_lost) = (0, 0, 0, 0);
    for seed in 0..400 {
        let fs = SimFs::new();
        write(&fs, "/a", &[1; 1024], true);
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.open(Path::new("/a"), Open::Existing).unwrap();
        f.write_all_at(&[2; 2048], 1024).unwrap();
        write(&fs, "/b", b"x", true);
        let after = fs.restart(seed);
        match after.read(Path::new("/a")).unwrap().len() {
            1024 => dropped += 1,
            3072 => kept += 1,
            _ => torn += 1,
        }
        if after.read(Path::new("/b")).is_err() {
            entry_lost += 1;
        }
    }
    assert!(kept > 0 && dropped > 0 && torn > 0 && entry_lost > 0);
}

#[test]
fn overwrites_of_synced_sectors_can_revert() {
    let mut reverted = 0;
    for seed in 0..100 {
        let fs = SimFs::new();
        write(&fs, "/a", &[1; 1024], true);
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.open(Path::new("/a"), Open::Existing).unwrap();
        f.write_all_at(&[5; 10], 600).unwrap();
        f.set_len(100).unwrap();
        let a = fs.restart(seed).read(Path::new("/a")).unwrap();
        if a == [1; 1024] {
            reverted += 1;
        } else {
            assert_eq!(a, [1; 100], "seed {seed}");
        }
    }
    assert!(reverted > 0);
}

#[test]
fn power_off_after_n_operations_and_space_limits() {
    let fs = SimFs::new();
    fs.power_off_after(2);
    let f = fs.open(Path::new("/a"), Open::CreateNew).unwrap();
    f.write_all_at(b"one", 0).unwrap();
    assert!(f.sync_data().is_err());
    assert!(fs.is_powered_off());

    let fs = SimFs::new();
    fs.set_space_bytes_max(Some(10));
    let f = fs.open(Path::new("/a"), Open::CreateNew).unwrap();
    let e = f.write_all_at(&[0; 12], 0).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    assert_eq!(f.len().unwrap(), 10);
    f.set_len(0).unwrap();
    assert_eq!(fs.used_bytes(), 0);
    fs.remove_file(Path::new("/a")).unwrap();
    fs.set_space_bytes_max(None);
    assert!(fs.open(Path::new("/a"), Open::Existing).is_err());
}
