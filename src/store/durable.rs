//! A local directory as an object store whose writes are durable when they return.
//!
//! `object_store`'s `LocalFileSystem` writes a staging file and renames it into place,
//! but never calls `fsync`: a finished `put` is in the page cache, not on the disk. The
//! pipeline stores Kafka offsets once a batch's files are "durable", so a power loss or
//! kernel crash after that commit would lose events whose offsets were already
//! committed (a killed process does not: the page cache survives it). [`SyncedLocal`]
//! delegates to `LocalFileSystem` and, after each successful write, flushes the file and
//! every directory from its parent up to the store root (a new partition directory and
//! the rename that published the file are directory entries, made durable only by
//! syncing the directory). Deletes sync the directory that held the file, so
//! compaction's order — outputs durable, then inputs deleted, then its manifest — holds
//! on disk too. Remote object stores need none of this: their `put` returns once the
//! object is stored.

use std::fs::File;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::metrics::metrics;

/// `LocalFileSystem` with `fsync` after every write and delete (see the module docs).
#[derive(Debug)]
pub struct SyncedLocal {
    inner: Arc<LocalFileSystem>,
    root: PathBuf,
}

impl std::fmt::Display for SyncedLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncedLocal({})", self.root.display())
    }
}

impl SyncedLocal {
    /// Wraps `inner`, a `LocalFileSystem` rooted at `root` (its prefix).
    pub fn new(inner: LocalFileSystem, root: PathBuf) -> Self {
        SyncedLocal {
            inner: Arc::new(inner),
            root,
        }
    }

    /// Flushes the file at `location` and its directories up to the root, on a blocking
    /// thread; the time it took goes to `auditwatch_store_sync_seconds`.
    async fn sync_file(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        let root = self.root.clone();
        blocking(move || {
            let started = Instant::now();
            File::open(&file)?.sync_all()?;
            sync_dirs(file.parent(), &root)?;
            metrics()
                .store_sync_seconds
                .observe(started.elapsed().as_secs_f64());
            Ok(())
        })
        .await
    }
}

/// Makes the entries of directory `dir` durable — a file created or renamed into it
/// (fsync of the file alone does not cover its name).
pub fn sync_dir(dir: &FsPath) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Syncs `dir` and each parent up to and including `root`. A directory that no longer
/// exists (removed when its last file was deleted) is skipped for its parent.
fn sync_dirs(mut dir: Option<&FsPath>, root: &FsPath) -> std::io::Result<()> {
    while let Some(d) = dir {
        match sync_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if d == root || !d.starts_with(root) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Syncs the directories that held `location` up to `root` (after a delete or a rename
/// away from it).
async fn sync_parents(inner: &LocalFileSystem, root: PathBuf, location: &Path) -> Result<()> {
    let file = inner.path_to_filesystem(location)?;
    blocking(move || sync_dirs(file.parent(), &root)).await
}

async fn blocking(f: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> Result<()> {
    let io = |source: std::io::Error| object_store::Error::Generic {
        store: "SyncedLocal",
        source: Box::new(source),
    };
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)
}

#[async_trait::async_trait]
impl ObjectStore for SyncedLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let put = self.inner.put_opts(location, payload, opts).await?;
        self.sync_file(location).await?;
        Ok(put)
    }

    /// Not used by the store (files are written whole with `put`); multipart uploads are
    /// passed through unsynced.
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let (inner, root) = (self.inner.clone(), self.root.clone());
        self.inner
            .delete_stream(locations)
            .then(move |deleted| {
                let (inner, root) = (inner.clone(), root.clone());
                async move {
                    let location = deleted?;
                    sync_parents(&inner, root, &location).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.sync_file(to).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.sync_file(to).await?;
        sync_parents(&self.inner, self.root.clone(), from).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn store(dir: &FsPath) -> SyncedLocal {
        let root = dir.canonicalize().unwrap();
        SyncedLocal::new(
            LocalFileSystem::new_with_prefix(&root)
                .unwrap()
                .with_automatic_cleanup(true),
            root,
        )
    }

    /// Every put is followed by a sync of its file (observed in the sync histogram),
    /// and the object reads back; deletes work, also of the last file of a directory that
    /// automatic cleanup then removes.
    #[tokio::test]
    async fn a_put_is_synced_before_it_returns_and_deletes_sync_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let synced = || metrics().store_sync_seconds.get_sample_count();
        let before = synced();
        let p = Path::from("events/source=k8s/date=2026-11-27/hour=03/part-1.parquet");
        s.put(&p, PutPayload::from(b"PAR1".to_vec())).await.unwrap();
        // other tests in this binary may sync too: at least ours
        assert!(synced() > before, "put returned without a sync");
        let got = s.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"PAR1");

        s.delete(&p).await.unwrap();
        assert!(s.get(&p).await.is_err());
        // the hour directory went with its last file; its parent still syncs
        assert!(
            !dir.path()
                .join("events/source=k8s/date=2026-11-27/hour=03")
                .exists()
        );
    }

    /// The directory walk stops at the root and skips directories already removed.
    #[test]
    fn directories_are_synced_up_to_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        sync_dirs(Some(&root.join("a/b/gone")), &root).unwrap();
        sync_dirs(Some(&root.join("a/b")), &root).unwrap();
        // a path outside the root syncs itself and stops
        sync_dirs(Some(dir.path().parent().unwrap()), &root).unwrap();
    }
}
