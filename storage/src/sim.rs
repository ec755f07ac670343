//! A simulated disk for tests: a [`Vfs`] that keeps, per file and per
//! directory, what is durable and what is only written, and can lose power.
//!
//! What a power loss ([`SimFs::restart`]) leaves, chosen by a seeded
//! generator so that a failing seed replays exactly:
//! - a file's data that was fsynced stays; what was written since its last
//!   fsync is dropped, kept, kept as a torn prefix at 512-byte sector
//!   granularity, or kept as a prefix with the file's new length filled
//!   with zeros (the length reached the disk, the data did not);
//! - each creation, rename or removal of a directory entry is one atomic
//!   operation. A directory fsync makes durable every operation up to the
//!   last one that touched that directory (a journal commits in order);
//!   each later one survives or not on its own, replayed in order, and one
//!   whose source is gone by then (a rename of a file whose creation was
//!   lost) does nothing;
//! - a file or directory that no surviving entry names is gone.
//!
//! Faults can also be injected: power off after a number of operations
//! (every later call fails, so the code under test stops wherever it was),
//! failing fsyncs, and a capacity past which writes fail with ENOSPC.
//!
//! Everything sits behind one mutex: tests want determinism, not speed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::vfs::{DirEntry, LockGuard, Open, Vfs, VfsFile};

/// The granularity at which a write tears.
pub const SECTOR_BYTES: u64 = 512;
const ROOT: u64 = 0;

/// The simulated disk. Clones share one disk.
#[derive(Debug, Clone)]
pub struct SimFs {
    sim: Arc<Mutex<Sim>>,
}

#[derive(Debug, Default)]
struct Faults {
    /// The operation count at which the power goes.
    power_off_at_op: Option<u64>,
    powered_off: bool,
    syncs_fail: bool,
    space_bytes_max: Option<u64>,
}

/// One change of directory entries, not yet known durable.
#[derive(Debug, Clone)]
enum MetaOp {
    Link {
        dir: u64,
        name: String,
        id: u64,
    },
    Unlink {
        dir: u64,
        name: String,
    },
    Rename {
        from: (u64, String),
        to: (u64, String),
    },
}

impl MetaOp {
    fn touches(&self, d: u64) -> bool {
        match self {
            MetaOp::Link { dir, .. } | MetaOp::Unlink { dir, .. } => *dir == d,
            MetaOp::Rename { from, to } => from.0 == d || to.0 == d,
        }
    }

    /// Applies the change to durable directory maps.
    fn apply(&self, maps: &mut HashMap<u64, BTreeMap<String, u64>>) {
        match self {
            MetaOp::Link { dir, name, id } => {
                maps.entry(*dir).or_default().insert(name.clone(), *id);
            }
            MetaOp::Unlink { dir, name } => {
                maps.entry(*dir).or_default().remove(name);
            }
            MetaOp::Rename { from, to } => {
                if let Some(id) = maps.entry(from.0).or_default().remove(&from.1) {
                    maps.entry(to.0).or_default().insert(to.1.clone(), id);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Sim {
    nodes: HashMap<u64, Node>,
    next_id: u64,
    /// Directory changes since they were last made durable, in order.
    pending: Vec<MetaOp>,
    /// Mutating operations so far.
    ops: u64,
    /// Bytes in files that some directory entry names.
    used_bytes: u64,
    faults: Faults,
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug, Default)]
struct FileNode {
    data: Vec<u8>,
    /// Length at the last fsync.
    durable_len: u64,
    /// Durable content of every sector below `durable_len` changed (or cut
    /// off) since the last fsync; other sectors there are unchanged.
    saved: BTreeMap<u64, Vec<u8>>,
    /// Directory entries naming this file.
    links: u32,
}

#[derive(Debug, Default)]
struct DirNode {
    entries: BTreeMap<String, u64>,
    /// The entries as the disk holds them, without `Sim::pending`.
    durable: BTreeMap<String, u64>,
}

fn power_lost() -> io::Error {
    io::Error::other("simulated power loss: the disk is gone")
}

fn sectors(len: u64) -> u64 {
    len.div_ceil(SECTOR_BYTES)
}

fn sector_range(s: u64, len: u64) -> std::ops::Range<usize> {
    (s * SECTOR_BYTES) as usize..((s + 1) * SECTOR_BYTES).min(len) as usize
}

impl FileNode {
    /// Saves the durable content of sectors in `[from, to)` before they change.
    fn save(&mut self, from: u64, to: u64) {
        if from >= to || from >= self.durable_len {
            return;
        }
        for s in from / SECTOR_BYTES..sectors(to.min(self.durable_len)) {
            if !self.saved.contains_key(&s) {
                let r = sector_range(s, self.durable_len);
                self.saved.insert(s, self.data[r].to_vec());
            }
        }
    }

    fn sync(&mut self) {
        self.saved.clear();
        self.durable_len = self.data.len() as u64;
    }

    fn durable_sector(&self, s: u64) -> &[u8] {
        match self.saved.get(&s) {
            Some(v) => v,
            None => &self.data[sector_range(s, self.durable_len)],
        }
    }

    /// What a power loss leaves of this file's data.
    fn after_power_loss(&self, rng: &mut fastrand::Rng) -> Vec<u8> {
        let len = self.data.len() as u64;
        let durable = |upto: u64| -> Vec<u8> {
            let mut out = Vec::with_capacity(self.durable_len as usize);
            for s in 0..sectors(upto.min(self.durable_len)) {
                out.extend_from_slice(self.durable_sector(s));
            }
            out
        };
        if self.saved.is_empty() && len == self.durable_len {
            return self.data.clone();
        }
        let mode = if len < self.durable_len {
            rng.u8(0..2)
        } else {
            rng.u8(0..4)
        };
        match mode {
            0 => durable(self.durable_len),
            1 => self.data.clone(),
            _ => {
                // Sectors below `k` reached the disk, the rest did not.
                let k = rng.u64(0..=sectors(len));
                let kept_len = self.durable_len.max(len.min(k * SECTOR_BYTES));
                let mut out = Vec::with_capacity(kept_len as usize);
                for s in 0..sectors(kept_len) {
                    if s < k {
                        out.extend_from_slice(&self.data[sector_range(s, len)]);
                    } else {
                        out.extend_from_slice(self.durable_sector(s));
                    }
                }
                out.truncate(kept_len as usize);
                if mode == 3 {
                    // The new length reached the disk, the data did not.
                    out.resize(len as usize, 0);
                }
                out
            }
        }
    }
}

impl Sim {
    fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        Self {
            nodes,
            next_id: ROOT + 1,
            pending: Vec::new(),
            ops: 0,
            used_bytes: 0,
            faults: Faults::default(),
        }
    }

    fn alive(&self) -> io::Result<()> {
        if self.faults.powered_off {
            return Err(power_lost());
        }
        Ok(())
    }

    /// Counts a mutating operation; the power goes at the chosen one.
    fn tick(&mut self) -> io::Result<()> {
        self.alive()?;
        if self.faults.power_off_at_op.is_some_and(|at| self.ops >= at) {
            self.faults.powered_off = true;
            return Err(power_lost());
        }
        self.ops += 1;
        Ok(())
    }

    fn dir(&self, id: u64) -> &DirNode {
        match self.nodes.get(&id) {
            Some(Node::Dir(d)) => d,
            _ => unreachable!("node {id} is a directory"),
        }
    }

    fn dir_mut(&mut self, id: u64) -> &mut DirNode {
        match self.nodes.get_mut(&id) {
            Some(Node::Dir(d)) => d,
            _ => unreachable!("node {id} is a directory"),
        }
    }

    fn file_mut(&mut self, id: u64) -> &mut FileNode {
        match self.nodes.get_mut(&id) {
            Some(Node::File(f)) => f,
            _ => unreachable!("node {id} is a file"),
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let mut at = ROOT;
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => {
                    let Some(Node::Dir(d)) = self.nodes.get(&at) else {
                        return Err(io::ErrorKind::NotADirectory.into());
                    };
                    at = *d
                        .entries
                        .get(&*name.to_string_lossy())
                        .ok_or(io::ErrorKind::NotFound)?;
                }
                _ => return Err(io::Error::other("the simulated disk takes plain paths")),
            }
        }
        Ok(at)
    }

    /// The directory holding `path`, and the last component's name.
    fn parent(&self, path: &Path) -> io::Result<(u64, String)> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other("a path with no file name"))?
            .to_string_lossy()
            .into_owned();
        let parent = self.lookup(path.parent().unwrap_or(Path::new("/")))?;
        match self.nodes.get(&parent) {
            Some(Node::Dir(_)) => Ok((parent, name)),
            _ => Err(io::ErrorKind::NotADirectory.into()),
        }
    }

    /// The directory holding `path`, its name there, and what it names.
    fn entry(&self, path: &Path) -> io::Result<(u64, String, u64)> {
        let (dir, name) = self.parent(path)?;
        let id = *self
            .dir(dir)
            .entries
            .get(&name)
            .ok_or(io::ErrorKind::NotFound)?;
        Ok((dir, name, id))
    }

    fn add(&mut self, node: Node) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.insert(id, node);
        id
    }

    /// Removes the entry `name` of `dir`, as one recorded change.
    fn remove_entry(&mut self, dir: u64, name: &str) {
        if let Some(id) = self.dir_mut(dir).entries.remove(name) {
            self.unlink(id);
            self.pending.push(MetaOp::Unlink {
                dir,
                name: name.to_owned(),
            });
        }
    }

    /// Drops one link to `id`; a file no entry names no longer takes space.
    /// A directory's children go first, each removal its own change, as
    /// `remove_dir_all` does it.
    fn unlink(&mut self, id: u64) {
        match self.nodes.get_mut(&id) {
            Some(Node::File(f)) => {
                f.links -= 1;
                if f.links == 0 {
                    self.used_bytes -= f.data.len() as u64;
                }
            }
            Some(Node::Dir(_)) => {
                let names: Vec<String> = self.dir(id).entries.keys().cloned().collect();
                for name in names {
                    self.remove_entry(id, &name);
                }
            }
            None => {}
        }
    }

    /// Bytes a file of `links` links may grow by before the disk is full.
    fn room(&self, links: u32) -> u64 {
        match self.faults.space_bytes_max {
            Some(max) if links > 0 => max.saturating_sub(self.used_bytes),
            _ => u64::MAX,
        }
    }

    fn write(&mut self, id: u64, buf: &[u8], pos: u64) -> io::Result<()> {
        self.tick()?;
        let (len, links) = match self.nodes.get(&id) {
            Some(Node::File(f)) => (f.data.len() as u64, f.links),
            _ => return Err(io::ErrorKind::NotFound.into()),
        };
        let room = self.room(links);
        let end = pos + buf.len() as u64;
        let allowed_end = end.min(len.saturating_add(room).max(len));
        let n = allowed_end.saturating_sub(pos).min(buf.len() as u64) as usize;
        let f = self.file_mut(id);
        f.save(pos, pos + n as u64);
        if (f.data.len() as u64) < pos + n as u64 {
            f.data.resize((pos + n as u64) as usize, 0);
        }
        f.data[pos as usize..pos as usize + n].copy_from_slice(&buf[..n]);
        let grown = (f.data.len() as u64).saturating_sub(len);
        if links > 0 {
            self.used_bytes += grown;
        }
        if n < buf.len() {
            return Err(io::ErrorKind::StorageFull.into());
        }
        Ok(())
    }

    fn set_len(&mut self, id: u64, new_len: u64) -> io::Result<()> {
        self.tick()?;
        let (len, links) = match self.nodes.get(&id) {
            Some(Node::File(f)) => (f.data.len() as u64, f.links),
            _ => return Err(io::ErrorKind::NotFound.into()),
        };
        if new_len > len && new_len - len > self.room(links) {
            return Err(io::ErrorKind::StorageFull.into());
        }
        let f = self.file_mut(id);
        f.save(new_len.min(len), new_len.max(len));
        f.data.resize(new_len as usize, 0);
        if links > 0 {
            // Never below zero: `used_bytes` counts this file's `len`.
            self.used_bytes = self.used_bytes + new_len - len;
        }
        Ok(())
    }

    fn sync_file(&mut self, id: u64) -> io::Result<()> {
        self.tick()?;
        if self.faults.syncs_fail {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.file_mut(id).sync();
        Ok(())
    }

    /// Makes durable every change up to the last one touching `dir`.
    fn commit_through(&mut self, dir: u64) {
        let Some(last) = self.pending.iter().rposition(|op| op.touches(dir)) else {
            return;
        };
        let ops: Vec<MetaOp> = self.pending.drain(..=last).collect();
        let mut maps = self.durable_maps();
        for op in &ops {
            op.apply(&mut maps);
        }
        for (id, map) in maps {
            if let Some(Node::Dir(d)) = self.nodes.get_mut(&id) {
                d.durable = map;
            }
        }
    }

    fn durable_maps(&self) -> HashMap<u64, BTreeMap<String, u64>> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| match n {
                Node::Dir(d) => Some((id, d.durable.clone())),
                Node::File(_) => None,
            })
            .collect()
    }

    /// The state a power loss leaves, as a new powered-on disk.
    fn after_power_loss(&self, rng: &mut fastrand::Rng) -> Sim {
        let mut maps = self.durable_maps();
        for op in &self.pending {
            if rng.bool() {
                op.apply(&mut maps);
            }
        }
        let mut out = Sim::new();
        let mut files: HashMap<u64, u64> = HashMap::new();
        let mut placed_dirs: HashSet<u64> = HashSet::new();
        let mut stack = vec![(ROOT, ROOT)];
        placed_dirs.insert(ROOT);
        while let Some((old, new)) = stack.pop() {
            let mut entries = BTreeMap::new();
            for (name, &child) in maps.get(&old).into_iter().flatten() {
                match &self.nodes[&child] {
                    Node::File(f) => {
                        let id = match files.get(&child) {
                            Some(&id) => id,
                            None => {
                                let data = f.after_power_loss(rng);
                                out.used_bytes += data.len() as u64;
                                let id = out.add(Node::File(FileNode {
                                    durable_len: data.len() as u64,
                                    data,
                                    ..FileNode::default()
                                }));
                                files.insert(child, id);
                                id
                            }
                        };
                        out.file_mut(id).links += 1;
                        entries.insert(name.clone(), id);
                    }
                    Node::Dir(_) => {
                        // Replayed renames can name a directory twice;
                        // it keeps its first name only.
                        if placed_dirs.insert(child) {
                            let id = out.add(Node::Dir(DirNode::default()));
                            stack.push((child, id));
                            entries.insert(name.clone(), id);
                        }
                    }
                }
            }
            let nd = out.dir_mut(new);
            nd.durable = entries.clone();
            nd.entries = entries;
        }
        out
    }
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

impl SimFs {
    /// An empty disk with a root directory.
    pub fn new() -> Self {
        Self {
            sim: Arc::new(Mutex::new(Sim::new())),
        }
    }

    /// Removes a file (`dir` false) or a directory and all in it.
    fn remove(&self, path: &Path, dir: bool) -> io::Result<()> {
        let mut s = self.lock_sim();
        s.tick()?;
        let (parent, name, id) = s.entry(path)?;
        match (matches!(s.nodes[&id], Node::Dir(_)), dir) {
            (true, false) => Err(io::ErrorKind::IsADirectory.into()),
            (false, true) => Err(io::ErrorKind::NotADirectory.into()),
            _ => {
                s.remove_entry(parent, &name);
                Ok(())
            }
        }
    }

    fn lock_sim(&self) -> MutexGuard<'_, Sim> {
        // A panicking test thread must not hide the disk from the others.
        self.sim.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mutating operations so far (writes, syncs, creations, renames...).
    pub fn ops(&self) -> u64 {
        self.lock_sim().ops
    }

    /// The power goes before the `n`-th mutating operation from now: that
    /// one and every later call fail.
    pub fn power_off_after(&self, n: u64) {
        let mut s = self.lock_sim();
        s.faults.power_off_at_op = Some(s.ops + n);
    }

    /// The power goes now.
    pub fn power_off(&self) {
        self.lock_sim().faults.powered_off = true;
    }

    /// Whether the power went.
    pub fn is_powered_off(&self) -> bool {
        self.lock_sim().faults.powered_off
    }

    /// Makes every fsync (file or directory) fail, or work again.
    pub fn set_syncs_fail(&self, fail: bool) {
        self.lock_sim().faults.syncs_fail = fail;
    }

    /// Caps the bytes files may hold; writes past it fail with ENOSPC.
    pub fn set_space_bytes_max(&self, max: Option<u64>) {
        self.lock_sim().faults.space_bytes_max = max;
    }

    /// Bytes the files hold now.
    pub fn used_bytes(&self) -> u64 {
        self.lock_sim().used_bytes
    }

    /// A power loss: this disk goes dark (every call on it or on its open
    /// files fails from now on), and the returned one holds what survived,
    /// as chosen by `seed`, with the power back on and no faults set.
    pub fn restart(&self, seed: u64) -> SimFs {
        let mut s = self.lock_sim();
        s.faults.powered_off = true;
        let next = s.after_power_loss(&mut fastrand::Rng::with_seed(seed));
        SimFs {
            sim: Arc::new(Mutex::new(next)),
        }
    }

    /// A crash of the process, not of the machine: everything written
    /// survives, fsynced or not (it is in the page cache). This disk goes
    /// dark, so the dead process's threads stop where they are.
    pub fn restart_process(&self) -> SimFs {
        let mut s = self.lock_sim();
        s.faults.powered_off = true;
        let next = Sim {
            nodes: clone_synced(&s.nodes),
            next_id: s.next_id,
            pending: Vec::new(),
            ops: 0,
            used_bytes: s.used_bytes,
            faults: Faults::default(),
        };
        SimFs {
            sim: Arc::new(Mutex::new(next)),
        }
    }
}

/// The nodes as they would be if everything had been fsynced.
fn clone_synced(nodes: &HashMap<u64, Node>) -> HashMap<u64, Node> {
    nodes
        .iter()
        .map(|(&id, n)| {
            let n = match n {
                Node::File(f) => Node::File(FileNode {
                    data: f.data.clone(),
                    durable_len: f.data.len() as u64,
                    saved: BTreeMap::new(),
                    links: f.links,
                }),
                Node::Dir(d) => Node::Dir(DirNode {
                    entries: d.entries.clone(),
                    durable: d.entries.clone(),
                }),
            };
            (id, n)
        })
        .collect()
}

#[derive(Debug)]
struct SimFile {
    sim: Arc<Mutex<Sim>>,
    id: u64,
}

impl SimFile {
    fn sim(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl VfsFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let s = self.sim();
        s.alive()?;
        let Some(Node::File(f)) = s.nodes.get(&self.id) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let end = pos as usize + buf.len();
        if end > f.data.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&f.data[pos as usize..end]);
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.sim().write(self.id, buf, pos)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.sim().set_len(self.id, len)
    }
    fn len(&self) -> io::Result<u64> {
        let s = self.sim();
        s.alive()?;
        match s.nodes.get(&self.id) {
            Some(Node::File(f)) => Ok(f.data.len() as u64),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sim().sync_file(self.id)
    }
    fn map(&self) -> io::Result<Bytes> {
        let s = self.sim();
        s.alive()?;
        match s.nodes.get(&self.id) {
            Some(Node::File(f)) => Ok(Bytes::from(f.data.clone())),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }
}

#[derive(Debug)]
struct NoLock;

impl Vfs for SimFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn VfsFile>> {
        let mut s = self.lock_sim();
        s.alive()?;
        let (dir, name) = s.parent(path)?;
        let existing = s.dir(dir).entries.get(&name).copied();
        let id = match (existing, how) {
            (Some(id), _) if matches!(s.nodes[&id], Node::Dir(_)) => {
                return Err(io::ErrorKind::IsADirectory.into());
            }
            (Some(_), Open::CreateNew) => return Err(io::ErrorKind::AlreadyExists.into()),
            (Some(id), Open::Truncate) => {
                s.set_len(id, 0)?;
                id
            }
            (Some(id), Open::Existing) => id,
            (None, Open::Existing) => return Err(io::ErrorKind::NotFound.into()),
            (None, _) => {
                s.tick()?;
                let id = s.add(Node::File(FileNode {
                    links: 1,
                    ..FileNode::default()
                }));
                s.dir_mut(dir).entries.insert(name.clone(), id);
                s.pending.push(MetaOp::Link { dir, name, id });
                id
            }
        };
        Ok(Box::new(SimFile {
            sim: self.sim.clone(),
            id,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock_sim();
        s.tick()?;
        let (fdir, fname, id) = s.entry(from)?;
        let (tdir, tname) = s.parent(to)?;
        if let Some(&old) = s.dir(tdir).entries.get(&tname) {
            if matches!(s.nodes[&old], Node::Dir(_)) {
                return Err(io::ErrorKind::DirectoryNotEmpty.into());
            }
            if old != id {
                s.unlink(old);
            }
        }
        s.dir_mut(fdir).entries.remove(&fname);
        s.dir_mut(tdir).entries.insert(tname.clone(), id);
        s.pending.push(MetaOp::Rename {
            from: (fdir, fname),
            to: (tdir, tname),
        });
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.remove(path, false)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock_sim();
        s.tick()?;
        let (dir, name) = s.parent(path)?;
        if s.dir(dir).entries.contains_key(&name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let id = s.add(Node::Dir(DirNode::default()));
        s.dir_mut(dir).entries.insert(name.clone(), id);
        s.pending.push(MetaOp::Link { dir, name, id });
        Ok(())
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.remove(path, true)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.lock_sim();
        s.alive()?;
        let id = s.lookup(dir)?;
        let Some(Node::Dir(d)) = s.nodes.get(&id) else {
            return Err(io::ErrorKind::NotADirectory.into());
        };
        Ok(d.entries
            .iter()
            .map(|(name, c)| DirEntry {
                name: name.clone(),
                is_dir: matches!(s.nodes[c], Node::Dir(_)),
            })
            .collect())
    }
    fn is_dir(&self, path: &Path) -> bool {
        let s = self.lock_sim();
        s.lookup(path)
            .is_ok_and(|id| matches!(s.nodes[&id], Node::Dir(_)))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock_sim();
        s.tick()?;
        if s.faults.syncs_fail {
            return Err(io::Error::other("injected fsync failure"));
        }
        let id = s.lookup(dir)?;
        if !matches!(s.nodes.get(&id), Some(Node::Dir(_))) {
            return Err(io::ErrorKind::NotADirectory.into());
        }
        s.commit_through(id);
        Ok(())
    }
    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        // One process uses a simulated disk: the lock file is made, as on
        // a real disk, but holding it is not simulated.
        drop(self.open(path, Open::Truncate)?);
        Ok(Box::new(NoLock))
    }
}
