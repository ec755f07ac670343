//! Unit tests of `broker`.

use super::*;

fn options(dir: &Path) -> BrokerOptions {
    BrokerOptions {
        data_dir: dir.to_owned(),
        defaults: TopicDefaults::default(),
        limits: Limits::default(),
        fs: vfs::real(),
    }
}

#[test]
fn interrupted_creates_deletes_and_grows_are_undone_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Broker::open(options(dir.path())).unwrap();
        b.create_topic("kept", 2, BTreeMap::new()).unwrap();
        b.close().unwrap();
    }
    // A create that crashed before its rename, a delete that crashed
    // after its rename, and a grow that crashed before its meta write.
    std::fs::create_dir_all(dir.path().join("staging/half-made/0")).unwrap();
    std::fs::create_dir_all(dir.path().join("trash/123/0")).unwrap();
    std::fs::create_dir_all(dir.path().join("topics/kept/2")).unwrap();
    // Atomic writes interrupted before their rename, outside partitions.
    let tmps = [
        dir.path().join("producer-id-block.checkpoint.tmp"),
        dir.path().join("topics/kept/topic.meta.tmp"),
    ];
    for t in &tmps {
        std::fs::write(t, b"half").unwrap();
    }
    let b = Broker::open(options(dir.path())).unwrap();
    for t in &tmps {
        assert!(!t.exists(), "{} is left", t.display());
    }
    let names: Vec<String> = b.topics().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, vec!["kept".to_string()]);
    assert_eq!(b.topic("kept").unwrap().partitions().len(), 2);
    assert!(!dir.path().join("topics/kept/2").exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("trash")).unwrap().count(),
        0
    );
}

#[test]
fn damaged_metadata_makes_only_that_topic_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Broker::open(options(dir.path())).unwrap();
        b.create_topic("a", 1, BTreeMap::new()).unwrap();
        b.create_topic("b", 1, BTreeMap::new()).unwrap();
        b.close().unwrap();
    }
    std::fs::write(dir.path().join("topics/a/topic.meta"), b"garbage").unwrap();
    let b = Broker::open(options(dir.path())).unwrap();
    let err = b.partition("a", 0).unwrap_err();
    assert!(matches!(err, BrokerError::PartitionFailed { .. }), "{err}");
    assert!(err.to_string().contains("topic.meta"), "{err}");
    assert!(b.partition("b", 0).is_ok());
}

#[test]
fn a_deleted_topics_log_writes_nothing_into_a_new_topic_of_its_name() {
    let fs = crate::storage::SimFs::new();
    let options = BrokerOptions {
        fs: Arc::new(fs.clone()),
        ..options(Path::new("/data"))
    };
    let b = Broker::open(options).unwrap();
    b.create_topic("t", 1, BTreeMap::new()).unwrap();
    // A thread that still holds the old partition's log.
    let old = b.partition("t", 0).unwrap();
    let mut builder = strata_proto::BatchBuilder::new();
    builder.push(0, None, Some(b"v"), &[]);
    let batch = builder.finish().to_vec();
    let _ = old.write_blocking(&batch).unwrap();
    b.delete_topic("t").unwrap();
    b.create_topic("t", 1, BTreeMap::new()).unwrap();
    let err = old.write_blocking(&batch).unwrap_err();
    assert!(
        matches!(
            err,
            BrokerError::Storage {
                source: StorageError::Closed(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(old.close().is_err(), "a retired log writes no checkpoints");
    let new = b.partition("t", 0).unwrap();
    assert_eq!(new.stats().unwrap().log_end, 0, "the new topic is empty");
    let files = fs.list(Path::new("/data/topics/t/0")).unwrap();
    assert!(
        files
            .iter()
            .all(|f| !f.name.starts_with("producer") && !f.name.contains("clean")),
        "{files:?}"
    );
}
