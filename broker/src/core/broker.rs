//! The set of topics on disk, and the admin operations on them.
//!
//! Data directory layout (`docs/FORMAT.md`):
//!
//! ```text
//! <data-dir>/broker.lock            held (flock) while a broker runs
//! <data-dir>/topics/<name>/topic.meta
//! <data-dir>/topics/<name>/<partition>/   one partition log
//! <data-dir>/staging/<name>/        a topic being created
//! <data-dir>/trash/<nanos>/         a topic being deleted
//! ```
//!
//! Creating and deleting a topic are each one directory rename, so after a
//! crash a topic is either fully there or fully gone: a topic is built in
//! `staging/` and renamed into `topics/`; a deleted one is renamed into
//! `trash/` and removed from there. Startup empties both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Semaphore;

use super::budget::ResponseBudget;
use super::config::{DurabilityKind, Limits, SharedBounds, TopicConfig, TopicDefaults};
use super::error::{BrokerError, Result};
use super::partition::Partition;
pub use super::topic::Topic;
use super::topic::{self, TopicMeta, TopicState, remove_children, remove_tmp_files};
use crate::storage::checkpoint;
use crate::storage::vfs::{self, Fs, LockGuard, Vfs};
use crate::storage::{Log, StorageError};

/// What one round of [`Broker::apply_cleanup`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupDone {
    /// Segments retention deleted.
    pub segments_deleted: usize,
    /// Partitions that had a compaction pass.
    pub partitions_compacted: usize,
    /// Records (and tombstones) compaction removed.
    pub records_removed: u64,
    /// Rolled segments whose seal still waits for disk space.
    pub seals_waiting_for_space: usize,
}

/// The producer ids a broker has handed out.
#[derive(Debug)]
struct ProducerIds {
    /// The next id to hand out; every id below it may be in use.
    next: i64,
    /// The end of the block persisted in `producer-id-block.checkpoint`:
    /// ids are never reused across restarts, at the cost of one fsync per
    /// [`PRODUCER_ID_BLOCK`] ids.
    block_end: i64,
}

/// A new idempotent producer's id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// The producer id.
    pub id: i64,
    /// Its epoch.
    pub epoch: i16,
}

impl CleanupDone {
    fn add(&mut self, other: CleanupDone) {
        self.segments_deleted += other.segments_deleted;
        self.partitions_compacted += other.partitions_compacted;
        self.records_removed += other.records_removed;
        self.seals_waiting_for_space += other.seals_waiting_for_space;
    }
}

/// Producer ids reserved per persisted block.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// Where the broker keeps its data, and its defaults and limits.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Topic settings for keys a topic does not set.
    pub defaults: TopicDefaults,
    /// Bounds on requests and resources.
    pub limits: Limits,
    /// The file system under `data_dir`: the real one, or a simulated
    /// disk in tests.
    pub fs: Fs,
}

/// All topics of one broker.
#[derive(Debug)]
pub struct Broker {
    options: BrokerOptions,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises admin operations (create, delete, alter, grow); they are
    /// rare, and one at a time keeps their crash reasoning simple.
    admin: Mutex<()>,
    /// Moves whenever a topic is created, deleted or grown: readers of
    /// partition counts (the groups) reread them only when it moved.
    /// Starts at 1, so state restored with generation 0 rereads at once.
    topology_generation: AtomicU64,
    appends: Arc<Semaphore>,
    /// What fetch answers and queued subscription messages may hold.
    response_budget: ResponseBudget,
    /// Which sealed segments of all partitions keep their files open.
    shared: SharedBounds,
    /// Producer ids handed out so far.
    producer_ids: Mutex<ProducerIds>,
    /// Held for the broker's life: a second broker on the same directory
    /// would corrupt it.
    _lock: LockGuard,
}

fn topics_dir(data: &Path) -> PathBuf {
    data.join("topics")
}

/// One partition to open at startup.
#[derive(Debug)]
struct PartitionPlan {
    topic: Arc<str>,
    id: u32,
    dir: PathBuf,
    config: crate::storage::LogConfig,
    /// Why it cannot be opened, found before trying.
    missing: Option<String>,
}

impl PartitionPlan {
    fn open(&self) -> Partition {
        match &self.missing {
            Some(reason) => Partition::failed(self.topic.clone(), self.id, reason.clone()),
            None => Partition::open(self.topic.clone(), self.id, &self.dir, self.config.clone()),
        }
    }
}

/// Opens every planned partition on up to `threads` threads; the result
/// is in the order of `plans`. A partition that fails keeps its reason
/// (`Partition::failed`), so one bad partition never stops the others.
fn open_partitions(plans: Vec<PartitionPlan>, threads: usize) -> Vec<Partition> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<std::sync::OnceLock<Partition>> =
        plans.iter().map(|_| std::sync::OnceLock::new()).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(plans.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(plan) = plans.get(i) else { break };
                    let _ = done[i].set(plan.open());
                }
            });
        }
    });
    done.into_iter()
        .map(|p| p.into_inner().expect("every planned partition was opened"))
        .collect()
}

fn sync_dir(fs: &dyn Vfs, dir: &Path) -> Result<()> {
    Ok(checkpoint::sync_dir(fs, dir)?)
}

impl Broker {
    /// Creates the data directory if needed and takes its lock, held for as
    /// long as the returned file lives: a second broker on the same
    /// directory would corrupt it.
    pub fn lock(fs: &dyn Vfs, data: &Path) -> Result<LockGuard> {
        vfs::create_dir_durable(fs, data).map_err(BrokerError::io(data, "create directory"))?;
        let lock_path = data.join("broker.lock");
        match fs.lock(&lock_path) {
            Ok(guard) => Ok(guard),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err(BrokerError::DataDirLocked(data.to_owned()))
            }
            Err(e) => Err(BrokerError::io(&lock_path, "lock")(e)),
        }
    }

    /// Opens the data directory: takes its lock, finishes interrupted
    /// creates and deletes, and recovers every partition.
    pub fn open(options: BrokerOptions) -> Result<Self> {
        let lock = Self::lock(&*options.fs, &options.data_dir)?;
        Self::open_locked(options, lock)
    }

    /// Like [`Broker::open`], with the lock already taken by [`Broker::lock`].
    pub fn open_locked(options: BrokerOptions, lock: LockGuard) -> Result<Self> {
        let data = &options.data_dir;
        let fs = &*options.fs;
        for d in [topics_dir(data), data.join("staging"), data.join("trash")] {
            vfs::create_dir_durable(fs, &d).map_err(BrokerError::io(&d, "create directory"))?;
        }
        remove_children(fs, &data.join("staging"))?;
        remove_children(fs, &data.join("trash"))?;
        remove_tmp_files(fs, data)?;

        let dir = topics_dir(data);
        let names: Vec<String> = fs
            .list(&dir)
            .map_err(BrokerError::io(&dir, "list topics"))?
            .into_iter()
            .filter(|e| e.is_dir)
            .map(|e| e.name)
            .collect();
        // Every topic's metadata first, then every partition of every
        // topic recovered side by side: recovery waits on the disk.
        let shared = SharedBounds::new(&options.limits);
        let mut planned = Vec::with_capacity(names.len());
        for name in names {
            planned.push(Self::load_topic(&options, &shared, &name)?);
        }
        let plans: Vec<PartitionPlan> = planned
            .iter_mut()
            .flat_map(|(_, plans)| std::mem::take(plans))
            .collect();
        let threads = options.limits.recovery_threads.max(1) as usize;
        let mut opened = open_partitions(plans, threads).into_iter();
        let mut topics = BTreeMap::new();
        for (topic, count) in planned.into_iter().map(|(t, _)| {
            let n = t.state.lock().expect("topic lock").meta.partitions;
            let n = if t.damaged.is_some() { 0 } else { n };
            (t, n)
        }) {
            let parts: Vec<Arc<Partition>> =
                opened.by_ref().take(count as usize).map(Arc::new).collect();
            *topic.partitions.write().expect("partitions lock") = parts;
            topics.insert(topic.name.to_string(), Arc::new(topic));
        }
        let next_id = match checkpoint::read(fs, data, checkpoint::Kind::ProducerIdBlock)? {
            checkpoint::Read::Value(v) => v as i64,
            checkpoint::Read::Missing => 0,
            // Damaged: we cannot know which ids were handed out. Refuse
            // rather than risk giving one to a second producer.
            checkpoint::Read::Damaged => {
                return Err(BrokerError::Disk(StorageError::corrupt(
                    data.join(checkpoint::file_name(checkpoint::Kind::ProducerIdBlock)),
                    0,
                    "the producer-id block is damaged; restore it, or remove it only if no producer from before is still running",
                )));
            }
        };
        Ok(Self {
            producer_ids: Mutex::new(ProducerIds {
                next: next_id,
                block_end: next_id,
            }),
            appends: Arc::new(Semaphore::new(
                options.limits.appends_in_flight_max as usize,
            )),
            response_budget: ResponseBudget::new(options.limits.response_bytes_max),
            shared,
            options,
            topics: RwLock::new(topics),
            topology_generation: AtomicU64::new(1),
            admin: Mutex::new(()),
            _lock: lock,
        })
    }

    /// Reads a topic's metadata and plans the opening of its partitions
    /// (removing those of an interrupted grow); the topic comes back with
    /// no partitions yet.
    fn load_topic(
        options: &BrokerOptions,
        shared: &SharedBounds,
        name: &str,
    ) -> Result<(Topic, Vec<PartitionPlan>)> {
        let dir = topics_dir(&options.data_dir).join(name);
        let name: Arc<str> = name.into();
        let fs = &*options.fs;
        remove_tmp_files(fs, &dir)?;
        let (meta, config, damaged) = match TopicMeta::read(fs, &dir)? {
            Ok(meta) => match TopicConfig::resolve_stored(&options.defaults, &meta.overrides) {
                Ok(config) => (topic::with_id(fs, &dir, meta), config, None),
                Err(e) => {
                    let config = TopicConfig::from_defaults(&options.defaults);
                    (meta, config, Some(format!("stored config is invalid: {e}")))
                }
            },
            Err(reason) => {
                tracing::error!(topic = %name, %reason, "topic metadata unreadable; the topic is unavailable");
                let meta = TopicMeta {
                    partitions: 0,
                    overrides: BTreeMap::new(),
                    id: None,
                };
                (
                    meta,
                    TopicConfig::from_defaults(&options.defaults),
                    Some(reason),
                )
            }
        };
        let mut plans = Vec::new();
        if damaged.is_none() {
            // Partition directories past the count are an interrupted grow.
            for e in fs
                .list(&dir)
                .map_err(BrokerError::io(&dir, "list partitions"))?
            {
                let p = dir.join(&e.name);
                let n = e.name.parse::<u32>().ok().filter(|_| e.is_dir);
                if let Some(n) = n.filter(|&n| n >= meta.partitions) {
                    fs.remove_dir_all(&p)
                        .map_err(BrokerError::io(&p, "remove leftover partition"))?;
                    tracing::info!(topic = %name, partition = n, "removed a partition of an interrupted grow");
                }
            }
            for id in 0..meta.partitions {
                let dir = dir.join(id.to_string());
                let present = fs.is_dir(&dir);
                plans.push(PartitionPlan {
                    topic: name.clone(),
                    id,
                    config: config.log_config(&options.fs, shared),
                    missing: (!present).then(|| format!("directory {} is missing", dir.display())),
                    dir,
                });
            }
        }
        let topic = Topic {
            name,
            dir,
            state: Mutex::new(TopicState { meta, config }),
            partitions: RwLock::new(Vec::new()),
            damaged,
        };
        Ok((topic, plans))
    }

    /// The options the broker runs with.
    pub fn options(&self) -> &BrokerOptions {
        &self.options
    }

    /// The limits the broker enforces.
    pub fn limits(&self) -> &Limits {
        &self.options.limits
    }

    /// Slots for appends in flight (`appends_in_flight_max`).
    pub fn append_slots(&self) -> &Arc<Semaphore> {
        &self.appends
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics
            .read()
            .expect("topics lock")
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownTopic(name.into()))
    }

    /// A partition by topic and number.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        self.topic(topic)?.partition(partition)
    }

    /// All topics, sorted by name.
    /// The topic with this id (Kafka clients name topics by id).
    pub fn topic_by_id(&self, id: [u8; 16]) -> Option<Arc<Topic>> {
        let topics = self.topics.read().expect("topics lock");
        topics.values().find(|t| t.id() == id).cloned()
    }

    /// Every topic.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .expect("topics lock")
            .values()
            .cloned()
            .collect()
    }

    fn check_partition_count(&self, n: u32) -> Result<()> {
        let max = self.options.limits.partitions_max;
        if n == 0 {
            return Err(BrokerError::InvalidArgument(
                "a topic needs at least one partition".into(),
            ));
        }
        if n > max {
            return Err(BrokerError::LimitExceeded {
                limit: "partitions_max",
                max: max.into(),
                what: format!("{n} partitions requested"),
            });
        }
        Ok(())
    }

    /// A topic's storage settings, on this broker's disk and registry of
    /// open segments.
    fn log_config(&self, config: &TopicConfig) -> crate::storage::LogConfig {
        config.log_config(&self.options.fs, &self.shared)
    }

    /// The budget of response memory (see `super::budget`).
    pub fn response_budget(&self) -> &ResponseBudget {
        &self.response_budget
    }

    /// The topology generation (see the field).
    pub fn topology_generation(&self) -> u64 {
        self.topology_generation.load(Ordering::Acquire)
    }

    fn topology_changed(&self) {
        self.topology_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Checks a topic could be created as asked, creating nothing (Kafka's
    /// `validate_only`): its name, partition count, config, and that it
    /// does not exist yet.
    pub fn check_new_topic(
        &self,
        name: &str,
        partitions: u32,
        overrides: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.plan_topic(name, partitions, overrides)?;
        if self.topics.read().expect("topics lock").contains_key(name) {
            return Err(BrokerError::TopicExists(name.into()));
        }
        Ok(())
    }

    /// A new topic's partition count (0: the default) and config, checked.
    fn plan_topic(
        &self,
        name: &str,
        partitions: u32,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(u32, TopicConfig)> {
        topic::validate_name(name)?;
        let partitions = if partitions == 0 {
            self.options.defaults.partitions
        } else {
            partitions
        };
        self.check_partition_count(partitions)?;
        let config = TopicConfig::resolve(&self.options.defaults, overrides)?;
        Ok((partitions, config))
    }

    /// Creates a topic (`partitions` 0 means the default count).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>> {
        let (partitions, config) = self.plan_topic(name, partitions, &overrides)?;
        let _admin = self.admin.lock().expect("admin lock");
        let topics_count = self.topics.read().expect("topics lock").len();
        if self.topics.read().expect("topics lock").contains_key(name) {
            return Err(BrokerError::TopicExists(name.into()));
        }
        if topics_count as u64 >= u64::from(self.options.limits.topics_max) {
            return Err(BrokerError::LimitExceeded {
                limit: "topics_max",
                max: self.options.limits.topics_max.into(),
                what: format!("creating topic {name:?}"),
            });
        }
        let data = &self.options.data_dir;
        let fs = &*self.options.fs;
        let log_config = self.log_config(&config);
        let staging = data.join("staging").join(name);
        let fin = topics_dir(data).join(name);
        if fs.is_dir(&staging) {
            fs.remove_dir_all(&staging)
                .map_err(BrokerError::io(&staging, "remove stale staging"))?;
        }
        fs.create_dir(&staging)
            .map_err(BrokerError::io(&staging, "create topic"))?;
        for id in 0..partitions {
            let log =
                Log::open(staging.join(id.to_string()), log_config.clone()).map_err(|source| {
                    BrokerError::Storage {
                        topic: name.into(),
                        partition: id,
                        source,
                    }
                })?;
            log.close().map_err(|source| BrokerError::Storage {
                topic: name.into(),
                partition: id,
                source,
            })?;
        }
        let meta = TopicMeta {
            partitions,
            overrides,
            id: Some(topic::new_id()),
        };
        meta.write(fs, &staging)?;
        sync_dir(fs, &staging)?;
        // The commit point: one rename makes the whole topic appear.
        fs.rename(&staging, &fin)
            .map_err(BrokerError::io(&fin, "rename topic into place"))?;
        sync_dir(fs, &topics_dir(data))?;
        sync_dir(fs, &data.join("staging"))?;
        let name_arc: Arc<str> = name.into();
        let parts = (0..partitions)
            .map(|id| {
                Arc::new(Partition::open(
                    name_arc.clone(),
                    id,
                    &fin.join(id.to_string()),
                    log_config.clone(),
                ))
            })
            .collect();
        let topic = Arc::new(Topic {
            name: name_arc,
            dir: fin,
            state: Mutex::new(TopicState { meta, config }),
            partitions: RwLock::new(parts),
            damaged: None,
        });
        self.topics
            .write()
            .expect("topics lock")
            .insert(name.into(), topic.clone());
        self.topology_changed();
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = self.admin.lock().expect("admin lock");
        let topic = self.topic(name)?;
        // Threads may still hold this topic's logs (appends in flight,
        // subscriptions, background seals): make them write nothing more,
        // or they would write into a new topic of the same name.
        for p in topic.partitions() {
            p.retire();
        }
        let data = &self.options.data_dir;
        let fs = &*self.options.fs;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Named by time only: a topic name may be 249 bytes, and any suffix
        // on it would pass the file system's 255-byte limit.
        let mut trash = data.join("trash").join(nanos.to_string());
        while fs.is_dir(&trash) {
            trash.set_extension("1");
        }
        // The commit point: after this rename the topic is gone, even if
        // the removal below is interrupted.
        fs.rename(&topic.dir, &trash)
            .map_err(BrokerError::io(&topic.dir, "move topic to trash"))?;
        sync_dir(fs, &topics_dir(data))?;
        self.topics.write().expect("topics lock").remove(name);
        self.topology_changed();
        // Requests in flight keep their open files; they finish on unlinked
        // data and nothing new can find the topic.
        fs.remove_dir_all(&trash)
            .map_err(BrokerError::io(&trash, "remove deleted topic"))?;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Sets config keys on a topic; an empty value removes the override.
    pub fn alter_topic_config(
        &self,
        name: &str,
        changes: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>> {
        let _admin = self.admin.lock().expect("admin lock");
        let topic = self.topic(name)?;
        let mut meta = topic.state.lock().expect("topic lock").meta.clone();
        let mut set_now = BTreeMap::new();
        for (k, v) in changes {
            if v.is_empty() {
                super::config::check_key(&k)?;
                meta.overrides.remove(&k);
            } else {
                set_now.insert(k.clone(), v.clone());
                meta.overrides.insert(k, v);
            }
        }
        // The new values meet today's floors; the ones kept are read as
        // at startup (a floor raised since does not block other changes).
        TopicConfig::resolve(&self.options.defaults, &set_now)?;
        let config = TopicConfig::resolve_stored(&self.options.defaults, &meta.overrides)?;
        meta.write(&*self.options.fs, &topic.dir)?;
        for p in topic.partitions() {
            p.set_config(self.log_config(&config))?;
        }
        *topic.state.lock().expect("topic lock") = TopicState { meta, config };
        tracing::info!(topic = name, "altered topic config");
        Ok(topic)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(&self, name: &str, count: u32) -> Result<Arc<Topic>> {
        let _admin = self.admin.lock().expect("admin lock");
        let topic = self.topic(name)?;
        self.check_partition_count(count)?;
        let (mut meta, config) = {
            let s = topic.state.lock().expect("topic lock");
            (s.meta.clone(), s.config.clone())
        };
        if count < meta.partitions {
            return Err(BrokerError::InvalidArgument(format!(
                "topic {name:?} has {} partitions; partitions can be added, never removed",
                meta.partitions
            )));
        }
        let old = meta.partitions;
        let mut added = Vec::new();
        for id in old..count {
            let dir = topic.dir.join(id.to_string());
            let log_config = self.log_config(&config);
            let p = Partition::open(topic.name.clone(), id, &dir, log_config);
            p.check_open()?;
            added.push(Arc::new(p));
        }
        let fs = &*self.options.fs;
        sync_dir(fs, &topic.dir)?;
        meta.partitions = count;
        // The commit point: partitions past the stored count are removed at
        // startup, so a crash before this write undoes the grow.
        meta.write(fs, &topic.dir)?;
        topic.state.lock().expect("topic lock").meta = meta;
        topic
            .partitions
            .write()
            .expect("partitions lock")
            .extend(added);
        self.topology_changed();
        tracing::info!(topic = name, from = old, to = count, "added partitions");
        Ok(topic)
    }

    /// Refuses a batch of an idempotent producer whose id this broker never
    /// handed out: accepting one would let a client collide with (or
    /// fence) a producer that gets that id later. Malformed batches pass
    /// here; validation names their fault.
    pub fn check_producer_id(&self, batch: &[u8]) -> Result<()> {
        let Ok(h) = strata_proto::BatchHeader::parse(batch) else {
            return Ok(());
        };
        let issued_below = self.producer_ids.lock().expect("producer id lock").next;
        if h.producer_id >= issued_below {
            return Err(BrokerError::InvalidArgument(format!(
                "producer id {} was never issued by this broker (it has issued ids below {issued_below}); get one from InitProducerId",
                h.producer_id
            )));
        }
        Ok(())
    }

    /// Hands out a new idempotent producer id (epoch 0).
    pub fn init_producer(&self) -> Result<ProducerIdentity> {
        let mut ids = self.producer_ids.lock().expect("producer id lock");
        if ids.next >= ids.block_end {
            let end = ids.next + PRODUCER_ID_BLOCK;
            checkpoint::write(
                &*self.options.fs,
                &self.options.data_dir,
                checkpoint::Kind::ProducerIdBlock,
                end as u64,
            )?;
            ids.block_end = end;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(ProducerIdentity { id, epoch: 0 })
    }

    /// Applies each topic's cleanup policy at time `now_ms`: retention
    /// (`retention.ms`, `retention.bytes`) on `delete` topics, and a
    /// compaction pass on each partition of a `compact` topic whose
    /// uncompacted share reached `min.cleanable.dirty.ratio`, or whose last
    /// pass is `delete.retention.ms` old (so expired tombstones go even on
    /// a quiet partition). Returns what it did; failures are logged and the
    /// other partitions still cleaned.
    pub fn apply_cleanup(&self, now_ms: i64) -> CleanupDone {
        let mut done = CleanupDone::default();
        for t in self.topics() {
            let c = t.config();
            for p in t.partitions() {
                done.add(p.clean(&c, self.options.limits.compaction_map_bytes_max, now_ms));
            }
        }
        done
    }

    /// Fsyncs partitions whose `durability=interval` window has passed.
    pub fn flush_due(&self) {
        for t in self.topics() {
            if t.config().durability != DurabilityKind::Interval {
                continue;
            }
            for p in t.partitions() {
                if let Err(e) = p.flush_if_due() {
                    tracing::error!(error = %e, "interval fsync failed");
                }
            }
        }
    }

    /// Closes every partition cleanly. Returns the first error, after
    /// trying them all.
    pub fn close(&self) -> Result<()> {
        let mut first = None;
        for t in self.topics() {
            for p in t.partitions() {
                if let Err(e) = p.close() {
                    tracing::error!(error = %e, "closing a partition failed");
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
