//! Small reads of Parquet files kept in memory across queries.
//!
//! Every query opens each file it cannot rule out from the listing and reads, per row
//! group its statistics do not exclude, the bloom filter of the filtered column: with a
//! month of daily files that is hundreds of small reads, and the local object store opens
//! the file for each one. Store files are immutable (written once under a unique name,
//! replaced by new names on compaction), so a read of (path, range) can be cached without
//! invalidation; the cache is bounded in bytes and forgets the oldest entries first.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result,
};

/// Reads at most this long are cached (bloom filters, page headers; not column data).
pub const MAX_CACHED_READ: u64 = 8 << 20;

type Key = (Path, Range<u64>);

#[derive(Default)]
struct Entries {
    map: HashMap<Key, (Bytes, ObjectMeta)>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// An object store that answers repeated small ranged reads from memory.
pub struct SmallReadCache {
    inner: Arc<dyn ObjectStore>,
    limit: usize,
    entries: Mutex<Entries>,
}

impl SmallReadCache {
    pub fn new(inner: Arc<dyn ObjectStore>, limit_bytes: usize) -> Self {
        SmallReadCache {
            inner,
            limit: limit_bytes,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn lookup(&self, key: &Key) -> Option<(Bytes, ObjectMeta)> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .get(key)
            .cloned()
    }

    fn insert(&self, key: Key, bytes: Bytes, meta: ObjectMeta) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if e.map.contains_key(&key) || bytes.len() > self.limit {
            return;
        }
        e.bytes += bytes.len();
        e.order.push_back(key.clone());
        e.map.insert(key, (bytes, meta));
        while e.bytes > self.limit {
            let Some(old) = e.order.pop_front() else {
                break;
            };
            if let Some((b, _)) = e.map.remove(&old) {
                e.bytes -= b.len();
            }
        }
    }

    /// Cached bytes (for tests and metrics).
    pub fn cached_bytes(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

impl fmt::Display for SmallReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmallReadCache({})", self.inner)
    }
}

impl fmt::Debug for SmallReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmallReadCache({:?})", self.inner)
    }
}

/// A plain bounded range read with no conditions: the only kind that is cached.
fn cacheable(o: &GetOptions) -> Option<Range<u64>> {
    match &o.range {
        Some(GetRange::Bounded(r))
            if r.end > r.start
                && r.end - r.start <= MAX_CACHED_READ
                && o.if_match.is_none()
                && o.if_none_match.is_none()
                && o.if_modified_since.is_none()
                && o.if_unmodified_since.is_none()
                && o.version.is_none()
                && !o.head =>
        {
            Some(r.clone())
        }
        _ => None,
    }
}

fn result(bytes: Bytes, meta: ObjectMeta, range: Range<u64>) -> GetResult {
    GetResult {
        payload: GetResultPayload::Stream(Box::pin(futures::stream::once(
            async move { Ok(bytes) },
        ))),
        meta,
        range,
        attributes: Default::default(),
    }
}

#[async_trait::async_trait]
impl ObjectStore for SmallReadCache {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let Some(range) = cacheable(&options) else {
            return self.inner.get_opts(location, options).await;
        };
        let key = (location.clone(), range.clone());
        if let Some((bytes, meta)) = self.lookup(&key) {
            return Ok(result(bytes, meta, range));
        }
        let got = self.inner.get_opts(location, options).await?;
        let (meta, got_range) = (got.meta.clone(), got.range.clone());
        let bytes = got.bytes().await?;
        if got_range == range {
            self.insert(key, bytes.clone(), meta.clone());
        }
        Ok(result(bytes, meta, got_range))
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
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
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::local::LocalFileSystem;

    /// Small ranged reads come back identical from the cache, larger ones and whole-object
    /// reads go to the store, and the cache stays within its byte bound.
    #[tokio::test]
    async fn small_reads_are_cached_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let c = SmallReadCache::new(fs, 1000);
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let p = Path::from("f.parquet");
        c.put(&p, PutPayload::from(data.clone())).await.unwrap();
        let r = c.get_range(&p, 10..110).await.unwrap();
        assert_eq!(&r[..], &data[10..110]);
        assert_eq!(c.cached_bytes(), 100);
        // served from memory: the file is gone
        std::fs::remove_file(dir.path().join("f.parquet")).unwrap();
        assert_eq!(&c.get_range(&p, 10..110).await.unwrap()[..], &data[10..110]);
        assert!(c.get_range(&p, 0..50).await.is_err());
        c.put(&p, PutPayload::from(data.clone())).await.unwrap();
        for i in 0..20u64 {
            let r = c.get_range(&p, i * 100..i * 100 + 100).await.unwrap();
            assert_eq!(&r[..], &data[(i * 100) as usize..(i * 100 + 100) as usize]);
        }
        assert!(c.cached_bytes() <= 1000);
        assert_eq!(c.get(&p).await.unwrap().bytes().await.unwrap().len(), 4096);
    }
}
