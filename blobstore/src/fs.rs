//! `FsBackend`: blobs as files under one root folder, written to `tmp/`, fsynced, then linked
//! or renamed into place so a reader never sees a partial file.
//!
//! Layout under the root (all on one filesystem, so promotion is an atomic link or rename):
//! `blobs/<b0>/<b1>/<cid>` (shards are the first two digest bytes in hex: the CID text itself
//! always starts with `bafkrei`), `renditions/<cid>/<name>`, `tmp/<unique>`.

use std::io::{self, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::backend::{
    BlobBackend, BlobRead, ListScope, ListedObject, ObjectMeta, Promotion, TempUpload, temp_name,
};
use crate::cid::BlobCid;
use crate::error::StoreError;
use crate::key::BlobKey;
use crate::range::ByteRange;

/// Bytes gathered before one blocking write: large enough that the thread hand-off is noise,
/// small enough to keep memory flat.
const WRITE_BUFFER: usize = 1 << 20;
/// Chunk size of reads.
const READ_CHUNK: usize = 64 * 1024;

/// Default root folder of the local backend.
pub const DEFAULT_BLOB_DIR: &str = "./data/blobs";

/// A backend storing objects as files under a root folder.
#[derive(Debug, Clone)]
pub struct FsBackend {
    layout: Arc<Layout>,
}

#[derive(Debug)]
struct Layout {
    blobs: PathBuf,
    renditions: PathBuf,
    tmp: PathBuf,
}

impl Layout {
    fn path(&self, key: &BlobKey) -> PathBuf {
        match key {
            BlobKey::Blob(cid) => {
                let (a, b) = cid.shards();
                self.blobs.join(a).join(b).join(cid.to_string())
            }
            BlobKey::Rendition { source, name } => {
                self.renditions.join(source.to_string()).join(name.as_str())
            }
        }
    }
}

impl FsBackend {
    /// Opens (creating if needed) a store rooted at `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let layout = Layout {
            blobs: root.join("blobs"),
            renditions: root.join("renditions"),
            tmp: root.join("tmp"),
        };
        for dir in [&layout.blobs, &layout.renditions, &layout.tmp] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StoreError::io("create directory", dir, e))?;
        }
        Ok(Self {
            layout: Arc::new(layout),
        })
    }

    /// The file that holds `key` (whether or not it exists).
    pub fn path_of(&self, key: &BlobKey) -> PathBuf {
        self.layout.path(key)
    }

    /// The folder of temp files.
    pub fn tmp_dir(&self) -> &Path {
        &self.layout.tmp
    }
}

impl BlobBackend for FsBackend {
    fn begin(&self) -> BoxFuture<'_, Result<Box<dyn TempUpload>, StoreError>> {
        Box::pin(async move {
            let path = self.layout.tmp.join(temp_name());
            let open_path = path.clone();
            let file = blocking(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&open_path)
            })
            .await
            .and_then(|opened| opened)
            .map_err(|e| StoreError::io("create", &path, e))?;
            let upload: Box<dyn TempUpload> = Box::new(FsTemp {
                layout: Arc::clone(&self.layout),
                path,
                file: FileState::Idle(file),
                buf: BytesMut::with_capacity(WRITE_BUFFER),
                finished: false,
            });
            Ok(upload)
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a BlobKey,
        range: Option<ByteRange>,
    ) -> BoxFuture<'a, Result<Option<BlobRead>, StoreError>> {
        Box::pin(async move {
            let path = self.layout.path(key);
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::io("open", path, e)),
            };
            let size = file
                .metadata()
                .await
                .map_err(|e| StoreError::io("stat", &path, e))?
                .len();
            let range = match range {
                None => 0..size,
                Some(range) => {
                    range
                        .resolve(size)
                        .ok_or_else(|| StoreError::RangeNotSatisfiable {
                            key: key.clone(),
                            size,
                        })?
                }
            };
            if range.start > 0 {
                file.seek(SeekFrom::Start(range.start))
                    .await
                    .map_err(|e| StoreError::io("seek", &path, e))?;
            }
            let body = file.take(range.end - range.start);
            Ok(Some(BlobRead {
                total_size: size,
                range,
                chunks: ReaderStream::with_capacity(body, READ_CHUNK).boxed(),
            }))
        })
    }

    fn head<'a>(
        &'a self,
        key: &'a BlobKey,
    ) -> BoxFuture<'a, Result<Option<ObjectMeta>, StoreError>> {
        Box::pin(async move {
            let path = self.layout.path(key);
            match tokio::fs::metadata(&path).await {
                Ok(meta) => Ok(Some(object_meta(&meta))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::io("stat", path, e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let path = self.layout.path(key);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::io("remove", path, e)),
            }
        })
    }

    fn list(&self, scope: ListScope) -> BoxStream<'_, Result<ListedObject, StoreError>> {
        let (root, depth) = match scope {
            ListScope::Blobs => (self.layout.blobs.clone(), 3),
            ListScope::Renditions => (self.layout.renditions.clone(), 2),
        };
        walk(root, depth)
            .filter_map(move |found| async move {
                match found {
                    Err(e) => Some(Err(e)),
                    Ok((names, path, meta)) => match key_from_names(scope, &names) {
                        Some(key) => Some(Ok(ListedObject { key, meta })),
                        None => {
                            tracing::warn!(path = %path.display(), "skipping unrecognised file in blob store");
                            None
                        }
                    },
                }
            })
            .boxed()
    }

    fn sweep_temp(&self, older_than: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let dir = &self.layout.tmp;
            let mut entries = tokio::fs::read_dir(dir)
                .await
                .map_err(|e| StoreError::io("read directory", dir, e))?;
            let mut removed = 0;
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| StoreError::io("read directory", dir, e))?
            {
                let path = entry.path();
                let modified = match entry.metadata().await.and_then(|m| m.modified()) {
                    Ok(modified) => modified,
                    // Removed by its own upload between listing and stat.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io("stat", path, e)),
                };
                if modified >= older_than {
                    continue;
                }
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("remove", path, e)),
                }
            }
            Ok(removed)
        })
    }
}

/// A temp file being written. Removed on drop unless it was promoted.
struct FsTemp {
    layout: Arc<Layout>,
    path: PathBuf,
    file: FileState,
    buf: BytesMut,
    /// Promoted or aborted: nothing left for `Drop` to clean.
    finished: bool,
}

/// Writes are pipelined: one buffer is written on the blocking pool while the next fills, so
/// hashing and receiving overlap the disk. Memory: two `WRITE_BUFFER`s.
enum FileState {
    Idle(std::fs::File),
    Writing(tokio::task::JoinHandle<(std::fs::File, io::Result<()>)>),
    /// A write task panicked and took the file with it.
    Lost,
}

impl FsTemp {
    /// Waits for the write in flight, if any, and takes the file back.
    async fn reclaim(&mut self) -> Result<std::fs::File, StoreError> {
        match std::mem::replace(&mut self.file, FileState::Lost) {
            FileState::Idle(file) => Ok(file),
            FileState::Writing(task) => {
                let (file, written) = task
                    .await
                    .map_err(|e| StoreError::io("write", &self.path, io::Error::other(e)))?;
                written.map_err(|e| StoreError::io("write", &self.path, e))?;
                Ok(file)
            }
            FileState::Lost => Err(StoreError::io("write", &self.path, lost_file())),
        }
    }

    /// Starts writing `data` once the previous write has finished.
    async fn write_out(&mut self, data: Bytes) -> Result<(), StoreError> {
        let mut file = self.reclaim().await?;
        self.file = FileState::Writing(tokio::task::spawn_blocking(move || {
            let written = file.write_all(&data);
            (file, written)
        }));
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        if !self.buf.is_empty() {
            let data = std::mem::replace(&mut self.buf, BytesMut::with_capacity(WRITE_BUFFER));
            self.write_out(data.freeze()).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>, key: BlobKey) -> Result<Promotion, StoreError> {
        self.flush().await?;
        let file = self.reclaim().await?;
        let tmp = self.path.clone();
        let dest = self.layout.path(&key);
        let keep_existing = key.is_content_addressed();
        let promotion = blocking(move || place(file, &tmp, &dest, keep_existing))
            .await
            .map_err(|e| StoreError::io("promote", &self.path, e))?
            .map_err(|PlaceError(op, path, e)| StoreError::io(op, path, e))?;
        self.finished = true;
        Ok(promotion)
    }
}

impl TempUpload for FsTemp {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.buf.is_empty() && chunk.len() >= WRITE_BUFFER {
                // A chunk this large is written as it is rather than copied.
                return self.write_out(chunk).await;
            }
            self.buf.extend_from_slice(&chunk);
            if self.buf.len() >= WRITE_BUFFER {
                self.flush().await?;
            }
            Ok(())
        })
    }

    fn promote(self: Box<Self>, key: BlobKey) -> BoxFuture<'static, Result<Promotion, StoreError>> {
        Box::pin(self.finish(key))
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            // Let a write in flight finish so the file is closed before it is unlinked; its
            // error no longer matters.
            let _ = self.reclaim().await;
            let result = match tokio::fs::remove_file(&self.path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::io("remove", &self.path, e)),
            };
            self.finished = true;
            result
        })
    }
}

impl Drop for FsTemp {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A cancelled or failed upload: unlinking is one quick syscall, so it is done here
        // rather than left for the sweep. A write still in flight ends on the unlinked file.
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove temp blob");
            }
        }
    }
}

/// A failed step of [`place`]: the operation, its path and the OS error.
struct PlaceError(&'static str, PathBuf, io::Error);

/// Makes the synced temp file `tmp` visible at `dest`. For content-addressed keys a hard link
/// refuses to replace an existing object, so exactly one concurrent upload reports `Created`.
fn place(
    file: std::fs::File,
    tmp: &Path,
    dest: &Path,
    keep_existing: bool,
) -> Result<Promotion, PlaceError> {
    let fail = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e: io::Error| PlaceError(op, path, e)
    };
    file.sync_all().map_err(fail("sync", tmp))?;
    drop(file);
    let dir = dest.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(fail("create directory", dir))?;
        // New shard folders must survive a crash too: sync the folders that gained entries.
        for created in dir.ancestors().skip(1).take(2) {
            sync_dir(created).map_err(fail("sync directory", created))?;
        }
    }
    let promotion = if keep_existing {
        match std::fs::hard_link(tmp, dest) {
            Ok(()) => Promotion::Created,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Promotion::AlreadyPresent,
            Err(e) => {
                // Some filesystems (FUSE, SMB) lack hard links: check, then rename. Two racing
                // uploads may then both report `Created`; their bytes are identical.
                tracing::debug!(error = %e, "hard link failed, falling back to rename");
                if dest.exists() {
                    Promotion::AlreadyPresent
                } else {
                    std::fs::rename(tmp, dest).map_err(fail("rename", tmp))?;
                    Promotion::Created
                }
            }
        }
    } else {
        std::fs::rename(tmp, dest).map_err(fail("rename", tmp))?;
        Promotion::Created
    };
    match std::fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(PlaceError("remove", tmp.to_path_buf(), e)),
    }
    // The new directory entry is durable only once its directory is synced.
    sync_dir(dir).map_err(fail("sync directory", dir))?;
    Ok(promotion)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Runs blocking filesystem work off the async threads. Fails only if the task panicked.
async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> io::Result<R> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)
}

fn lost_file() -> io::Error {
    io::Error::other("temp file lost by an earlier failed write task")
}

fn object_meta(meta: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        size: meta.len(),
        // Every filesystem Linux runs this on records mtime; the epoch only if one does not.
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

/// The key for a file found `names` below the scope's folder, if it is where that key lives.
fn key_from_names(scope: ListScope, names: &[String]) -> Option<BlobKey> {
    match (scope, names) {
        (ListScope::Blobs, [a, b, file]) => {
            let cid: BlobCid = file.parse().ok()?;
            (cid.shards() == (a.clone(), b.clone()) && cid.to_string() == *file)
                .then_some(BlobKey::Blob(cid))
        }
        (ListScope::Renditions, [source, name]) => {
            let key = BlobKey::rendition(source.parse().ok()?, name.parse().ok()?);
            (key.cid().to_string() == *source).then_some(key)
        }
        _ => None,
    }
}

type Found = (Vec<String>, PathBuf, ObjectMeta);

/// Files exactly `depth` levels below `root`, with the names of the folders on the way.
/// Walks with one open directory per level, so memory does not grow with the file count.
fn walk(root: PathBuf, depth: usize) -> BoxStream<'static, Result<Found, StoreError>> {
    struct Walk {
        root: Option<PathBuf>,
        stack: Vec<(Vec<String>, PathBuf, tokio::fs::ReadDir)>,
        depth: usize,
    }
    let start = Walk {
        root: Some(root),
        stack: Vec::new(),
        depth,
    };
    stream::unfold(start, |mut walk| async move {
        if let Some(root) = walk.root.take() {
            match tokio::fs::read_dir(&root).await {
                Ok(entries) => walk.stack.push((Vec::new(), root, entries)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
                Err(e) => return Some((Err(StoreError::io("read directory", root, e)), walk)),
            }
        }
        loop {
            let (names, dir, entries) = walk.stack.last_mut()?;
            let entry = match entries.next_entry().await {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    walk.stack.pop();
                    continue;
                }
                Err(e) => {
                    let err = StoreError::io("read directory", dir.clone(), e);
                    walk.stack.pop();
                    return Some((Err(err), walk));
                }
            };
            let path = entry.path();
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(path = %path.display(), "skipping non-UTF-8 name in blob store");
                continue;
            };
            let mut names = names.clone();
            names.push(name);
            let meta = match entry.metadata().await {
                Ok(meta) => meta,
                // Deleted between listing and stat.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Some((Err(StoreError::io("stat", path, e)), walk)),
            };
            if meta.is_dir() && names.len() < walk.depth {
                match tokio::fs::read_dir(&path).await {
                    Ok(entries) => walk.stack.push((names, path, entries)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Some((Err(StoreError::io("read directory", path, e)), walk)),
                }
            } else if meta.is_file() && names.len() == walk.depth {
                let meta = object_meta(&meta);
                return Some((Ok((names, path, meta)), walk));
            } else {
                tracing::warn!(path = %path.display(), "skipping unexpected entry in blob store");
            }
        }
    })
    .boxed()
}
