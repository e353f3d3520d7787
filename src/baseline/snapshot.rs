//! Snapshot format of [`Baselines`]: a version header, then every identity, the link and
//! rollout tables, the clocks, and the rows still in the reorder buffer, little-endian.
//!
//! ```text
//! "AWBL" u32:version u64:layout-fingerprint  body…
//! ```
//!
//! The layout fingerprint covers the settings that shape the state (window lengths,
//! network prefixes, prefix depth); thresholds, classes and periods may change between
//! a snapshot and its restore.

use super::identity::{
    Class, ClassReason, Counter, Distinct, EvId, Evidence, Identity, MAX_SUSPECTS, Novelty,
    Suspect, Volume,
};
use super::row::{OwnedRow, STR_COLS, batch_from_rows};
use super::stats::{Ew, Seasonal};
use super::{Baselines, Held, Pending, Stats};

const MAGIC: &[u8; 4] = b"AWBL";
/// 2: first-seen values hashed part by part (one-shot xxh3 chained).
pub const VERSION: u32 = 2;

/// Why a snapshot could not be restored. `Layout` is the operator's (the detectors file
/// changed a window or network setting: rebuild the baselines); the others mean a
/// damaged or foreign file. Retrying does not help.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a baselines snapshot (bad magic)")]
    BadMagic,
    #[error("baselines snapshot version {0} is not supported (this build reads {VERSION})")]
    Version(u32),
    #[error(
        "baselines snapshot was taken with other window/network settings; rebuild it (`auditwatch baseline rebuild`)"
    )]
    Layout,
    #[error("baselines snapshot is truncated or corrupt: {0}")]
    Corrupt(&'static str),
}

type R<T> = std::result::Result<T, SnapshotError>;

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u16(&mut self, x: u16) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn i64(&mut self, x: i64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f32(&mut self, x: f32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.0.len() < n {
            return Err(SnapshotError::Corrupt("unexpected end"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> R<i64> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn f32(&mut self) -> R<f32> {
        Ok(f32::from_le_bytes(self.arr()?))
    }
    fn len(&mut self, max: usize) -> R<usize> {
        let n = self.u32()? as usize;
        if n > max || n > self.0.len() * 8 + 64 {
            return Err(SnapshotError::Corrupt("length out of range"));
        }
        Ok(n)
    }
    fn str(&mut self) -> R<String> {
        let n = self.len(1 << 24)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| SnapshotError::Corrupt("not UTF-8"))
    }
    fn bool(&mut self) -> R<bool> {
        Ok(self.u8()? != 0)
    }
}

/// The settings that shape the state.
fn layout(b: &Baselines) -> u64 {
    let c = &b.cfg;
    let text = format!(
        "{}|{}|{}|{}|{}|{}|{}|{:?}",
        c.volume.window_us,
        c.breadth.window_us,
        c.denied.window_us,
        c.first_seen.alert_window_us,
        c.first_seen.vault_prefix_depth,
        c.networks.ipv4_prefix,
        c.networks.ipv6_prefix,
        c.networks.collapse
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

fn put_ew(w: &mut W, e: &Ew) {
    w.f32(e.mean);
    w.f32(e.var);
    w.u16(e.n);
}

fn get_ew(r: &mut Rd<'_>) -> R<Ew> {
    Ok(Ew {
        mean: r.f32()?,
        var: r.f32()?,
        n: r.u16()?,
    })
}

fn put_counter(w: &mut W, c: Option<&Counter>) {
    let Some(c) = c else {
        w.u8(0);
        return;
    };
    w.u8(1);
    put_ew(w, &c.base);
    w.i64(c.win);
    w.u32(c.count);
    w.u32(c.prev);
    w.u32(c.thr);
    w.u8(c.fired as u8);
    match &c.distinct {
        None => w.u8(0),
        Some(Distinct::Exact(v)) => {
            w.u8(1);
            w.u32(v.len() as u32);
            for x in v {
                w.u32(*x);
            }
        }
        Some(Distinct::Hll(regs)) => {
            w.u8(2);
            w.bytes(&regs[..]);
        }
    }
}

fn get_counter(r: &mut Rd<'_>) -> R<Option<Counter>> {
    if !r.bool()? {
        return Ok(None);
    }
    let base = get_ew(r)?;
    let win = r.i64()?;
    let (count, prev, thr) = (r.u32()?, r.u32()?, r.u32()?);
    let fired = r.bool()?;
    let distinct = match r.u8()? {
        0 => None,
        1 => {
            let n = r.len(32)?;
            Some(Distinct::Exact((0..n).map(|_| r.u32()).collect::<R<_>>()?))
        }
        2 => Some(Distinct::Hll(Box::new(r.arr()?))),
        _ => return Err(SnapshotError::Corrupt("distinct tag")),
    };
    Ok(Some(Counter {
        base,
        win,
        count,
        prev,
        thr,
        fired,
        distinct,
    }))
}

fn put_identity(w: &mut W, id: &Identity) {
    w.str(&id.actor);
    w.u64(id.key);
    w.u64(id.entity);
    w.u64(id.ns_key);
    w.i64(id.first_seen);
    w.i64(id.last_seen);
    w.u16(id.active_days);
    w.u8(id.class as u8);
    w.u8(id.class_reason as u8);
    w.u8(id.probation as u8);
    w.u16(id.cluster_loops);
    w.u16(id.rollouts);
    let n = &id.novelty;
    w.u32(n.items.len() as u32);
    for x in &n.items {
        w.u64(*x);
    }
    for c in n.counts {
        w.u16(c);
    }
    w.u8(n.saturated);
    for x in n.last_raw {
        w.u32(x);
    }
    w.u16(n.last_raw_day);
    for x in n.alerted {
        w.u32(x);
    }
    match &id.volume {
        None => w.u8(0),
        Some(v) => {
            w.u8(1);
            for x in v.seasonal.mean {
                w.u16(x);
            }
            for x in v.seasonal.sd {
                w.u16(x);
            }
            w.bytes(&v.seasonal.n);
            w.i64(v.win);
            w.u32(v.count);
            w.u32(v.all);
            w.u32(v.gate);
            w.u32(v.thr);
            w.u8(v.fired as u8);
            w.u8(v.silent as u8);
        }
    }
    put_counter(w, id.breadth.as_ref());
    put_counter(w, id.denied.as_deref());
    match &id.hours {
        None => w.u8(0),
        Some(h) => {
            w.u8(1);
            for row in h.iter() {
                w.bytes(row);
            }
        }
    }
    for x in id.hours_last {
        w.u32(x);
    }
    w.u32(id.off_alerted);
    match &id.evidence {
        None => w.u8(0),
        Some(e) => {
            w.u8(1);
            for x in &e.ids {
                w.bytes(&x.0);
            }
            w.bytes(&e.flags);
            w.u8(e.len);
            w.u8(e.next);
        }
    }
    let sus = id.suspects.as_deref().map_or(&[][..], |v| &v[..]);
    w.u8(sus.len() as u8);
    for s in sus {
        w.u64(s.h);
        w.u16(s.first_day);
        w.u16(s.last_day);
        w.u8(s.days);
    }
}

fn get_identity(r: &mut Rd<'_>) -> R<Identity> {
    let actor = r.str()?;
    let (key, entity, ns_key) = (r.u64()?, r.u64()?, r.u64()?);
    let (first_seen, last_seen) = (r.i64()?, r.i64()?);
    let active_days = r.u16()?;
    let class = Class::from_u8(r.u8()?).ok_or(SnapshotError::Corrupt("class"))?;
    let class_reason = ClassReason::from_u8(r.u8()?);
    let probation = r.bool()?;
    let (cluster_loops, rollouts) = (r.u16()?, r.u16()?);
    let n_items = r.len(1 << 20)?;
    let items = (0..n_items).map(|_| r.u64()).collect::<R<Vec<_>>>()?;
    let mut novelty = Novelty {
        items,
        ..Default::default()
    };
    for c in &mut novelty.counts {
        *c = r.u16()?;
    }
    novelty.saturated = r.u8()?;
    for x in &mut novelty.last_raw {
        *x = r.u32()?;
    }
    novelty.last_raw_day = r.u16()?;
    for x in &mut novelty.alerted {
        *x = r.u32()?;
    }
    let volume = if r.bool()? {
        let mut s = Seasonal::default();
        for x in &mut s.mean {
            *x = r.u16()?;
        }
        for x in &mut s.sd {
            *x = r.u16()?;
        }
        s.n = r.arr()?;
        Some(Volume {
            seasonal: Box::new(s),
            win: r.i64()?,
            count: r.u32()?,
            all: r.u32()?,
            gate: r.u32()?,
            thr: r.u32()?,
            fired: r.bool()?,
            silent: r.bool()?,
        })
    } else {
        None
    };
    let breadth = get_counter(r)?;
    let denied = get_counter(r)?.map(Box::new);
    let hours = if r.bool()? {
        let mut h = [[0u8; 24]; 3];
        for row in h.iter_mut() {
            *row = r.arr()?;
        }
        Some(h)
    } else {
        None
    };
    let mut hours_last = [0u32; 3];
    for x in &mut hours_last {
        *x = r.u32()?;
    }
    let off_alerted = r.u32()?;
    let evidence = if r.bool()? {
        let mut e = Evidence::default();
        for x in &mut e.ids {
            *x = EvId(r.arr()?);
        }
        e.flags = r.arr()?;
        e.len = r.u8()?.min(Evidence::CAP as u8);
        e.next = r.u8()? % Evidence::CAP as u8;
        Some(Box::new(e))
    } else {
        None
    };
    let n = r.u8()? as usize;
    if n > MAX_SUSPECTS {
        return Err(SnapshotError::Corrupt("suspects"));
    }
    let suspects = if n == 0 {
        None
    } else {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(Suspect {
                h: r.u64()?,
                first_day: r.u16()?,
                last_day: r.u16()?,
                days: r.u8()?,
            });
        }
        Some(Box::new(v))
    };
    Ok(Identity {
        actor: actor.into(),
        key,
        entity,
        ns_key,
        first_seen,
        last_seen,
        active_days,
        class,
        class_reason,
        probation,
        cluster_loops,
        rollouts,
        novelty,
        volume,
        breadth,
        denied,
        hours,
        hours_last,
        off_alerted,
        evidence,
        suspects,
    })
}

impl Baselines {
    /// The whole state (baselines, open windows, rows not yet processed) with a version
    /// header. Store it together with the input position it reflects: every row handed
    /// to [`Baselines::evaluate`] so far.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(64 + self.by_key.len() * 600));
        w.bytes(MAGIC);
        w.u32(VERSION);
        w.u64(layout(self));
        for x in [
            self.watermark,
            self.processed,
            self.start,
            self.clock_win,
            self.clock_day,
        ] {
            w.i64(x);
        }
        for x in [
            self.stats.rows,
            self.stats.late,
            self.stats.alerts,
            self.stats.evicted,
        ] {
            w.u64(x);
        }
        for x in self.deploy_hist {
            w.f32(x);
        }
        let mut roll: Vec<_> = self.rollouts.iter().collect();
        roll.sort_by_key(|(k, _)| **k);
        w.u32(roll.len() as u32);
        for (k, (t, e)) in roll {
            w.u64(*k);
            w.i64(*t);
            w.bytes(&e.0);
        }
        let mut ent: Vec<_> = self.entities.iter().collect();
        ent.sort();
        w.u32(ent.len() as u32);
        for (a, b) in ent {
            w.u64(*a);
            w.u64(*b);
        }
        let mut side: Vec<_> = self.side_ids.iter().collect();
        side.sort_by_key(|(k, _)| **k);
        w.u32(side.len() as u32);
        for (k, s) in side {
            w.u64(*k);
            w.str(s);
        }
        w.u32(self.slots.len() as u32);
        for s in &self.slots {
            match s {
                None => w.u8(0),
                Some(id) => {
                    w.u8(1);
                    put_identity(&mut w, id);
                }
            }
        }
        w.u32(self.free.len() as u32);
        for f in &self.free {
            w.u32(*f);
        }
        w.u32(self.pending.len() as u32);
        for p in &self.pending {
            let h = &self.held[(p.batch - self.first_held) as usize];
            let row = OwnedRow::from_cols(&h.cols, p.row as usize);
            w.i64(row.time);
            w.u64(row.row_key);
            for s in &row.strs {
                match s {
                    None => w.u8(0),
                    Some(s) => {
                        w.u8(1);
                        w.str(s);
                    }
                }
            }
            w.u32(row.groups.len() as u32);
            for g in &row.groups {
                w.str(g);
            }
            w.u8(row.secret_access as u8);
        }
        w.0
    }

    /// Replaces the state with a snapshot taken by [`Baselines::snapshot`]. The
    /// detectors file may differ in thresholds and periods, not in window lengths or
    /// network settings.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let mut r = Rd(bytes);
        if r.take(4).ok() != Some(&MAGIC[..]) {
            return Err(SnapshotError::BadMagic);
        }
        let v = r.u32()?;
        if v != VERSION {
            return Err(SnapshotError::Version(v));
        }
        if r.u64()? != layout(self) {
            return Err(SnapshotError::Layout);
        }
        let mut fresh = Baselines::new((*self.cfg).clone());
        fresh.watermark = r.i64()?;
        fresh.processed = r.i64()?;
        fresh.start = r.i64()?;
        fresh.clock_win = r.i64()?;
        fresh.clock_day = r.i64()?;
        fresh.stats = Stats {
            rows: r.u64()?,
            late: r.u64()?,
            alerts: r.u64()?,
            evicted: r.u64()?,
        };
        for x in &mut fresh.deploy_hist {
            *x = r.f32()?;
        }
        let n = r.len(1 << 28)?;
        for _ in 0..n {
            let k = r.u64()?;
            let t = r.i64()?;
            fresh.rollouts.insert(k, (t, EvId(r.arr()?)));
        }
        let n = r.len(1 << 28)?;
        for _ in 0..n {
            let a = r.u64()?;
            fresh.entities.insert(a, r.u64()?);
        }
        let n = r.len(1 << 28)?;
        let mut side = super::KeyMap::default();
        side.reserve(n);
        for _ in 0..n {
            let k = r.u64()?;
            side.insert(k, r.str()?.into_boxed_str());
        }
        fresh.side_ids = side;
        let n = r.len(1 << 28)?;
        fresh.slots.reserve(n);
        for i in 0..n {
            if r.bool()? {
                let id = get_identity(&mut r)?;
                fresh.by_key.insert(id.key, i as u32);
                fresh.slots.push(Some(id));
            } else {
                fresh.slots.push(None);
            }
        }
        let n = r.len(1 << 28)?;
        for _ in 0..n {
            let f = r.u32()?;
            if f as usize >= fresh.slots.len() {
                return Err(SnapshotError::Corrupt("free slot"));
            }
            fresh.free.push(f);
        }
        let n = r.len(1 << 28)?;
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let time = r.i64()?;
            let row_key = r.u64()?;
            let mut strs = Vec::with_capacity(STR_COLS.len());
            for _ in 0..STR_COLS.len() {
                strs.push(if r.bool()? { Some(r.str()?) } else { None });
            }
            let g = r.len(1 << 16)?;
            let groups = (0..g).map(|_| r.str()).collect::<R<Vec<_>>>()?;
            let secret_access = r.bool()?;
            rows.push(OwnedRow {
                time,
                row_key,
                strs,
                groups,
                secret_access,
            });
        }
        if !r.0.is_empty() {
            return Err(SnapshotError::Corrupt("trailing bytes"));
        }
        if !rows.is_empty() {
            let batch = batch_from_rows(&rows);
            let cols = super::row::Cols::new(&batch);
            fresh.pending = rows
                .iter()
                .enumerate()
                .map(|(i, row)| Pending {
                    time: row.time,
                    key: row.row_key,
                    batch: 0,
                    row: i as u32,
                })
                .collect();
            fresh.held.push_back(Held {
                cols: std::sync::Arc::new(cols),
                remaining: rows.len(),
            });
        }
        *self = fresh;
        Ok(())
    }

    /// A new instance from a snapshot.
    pub fn from_snapshot(
        cfg: super::DetectorConfig,
        bytes: &[u8],
    ) -> Result<Baselines, SnapshotError> {
        let mut b = Baselines::new(cfg);
        b.restore(bytes)?;
        Ok(b)
    }
}
