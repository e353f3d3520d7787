//! Reading the `access_events` columns the detectors use, without copying: a [`Cols`]
//! holds the arrays of one batch, an [`Ev`] borrows one row of it.
//!
//! Missing optional columns read as NULL, and string columns of another string type
//! (views, dictionaries, as a store read may give) are cast to `Utf8` once per batch.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType, UInt64Type};

/// The source of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    Kubernetes,
    Vault,
    OpenBao,
    Other,
}

impl Src {
    fn parse(s: &str) -> Src {
        match s {
            "kubernetes" => Src::Kubernetes,
            "vault" => Src::Vault,
            "openbao" => Src::OpenBao,
            _ => Src::Other,
        }
    }
    pub fn is_vault(self) -> bool {
        matches!(self, Src::Vault | Src::OpenBao)
    }
}

/// The string columns read, in this order.
pub const STR_COLS: [&str; 16] = [
    "source",
    "actor",
    "actor_type",
    "actor_id",
    "action",
    "verb",
    "resource_type",
    "resource_path",
    "resource_namespace",
    "resource_name",
    "subresource",
    "outcome",
    "src_ip",
    "user_agent",
    "auth_method",
    "event_id",
];

/// The arrays of one batch.
#[derive(Clone)]
pub struct Cols {
    pub len: usize,
    /// Memory of the arrays held (the batch's other columns are not kept).
    pub bytes: usize,
    time: Option<TimestampMicrosecondArray>,
    strs: Vec<Option<StringArray>>,
    groups: Option<ListArray>,
    secret: Option<BooleanArray>,
    row_key: Option<UInt64Array>,
}

impl Cols {
    pub fn new(batch: &RecordBatch) -> Cols {
        let time = batch.column_by_name("time").and_then(|c| {
            if let Some(t) = c.as_primitive_opt::<TimestampMicrosecondType>() {
                return Some(t.clone());
            }
            let c = to_type(c, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            c.as_primitive_opt::<TimestampMicrosecondType>().cloned()
        });
        let strs: Vec<Option<StringArray>> = STR_COLS
            .iter()
            .map(|name| {
                let c = batch.column_by_name(name)?;
                match c.data_type() {
                    DataType::Utf8 => c.as_string_opt::<i32>().cloned(),
                    _ => to_type(c, &DataType::Utf8)?.as_string_opt::<i32>().cloned(),
                }
            })
            .collect();
        let groups = batch
            .column_by_name("actor_groups")
            .and_then(|c| c.as_list_opt::<i32>().cloned())
            .filter(|l| matches!(l.value_type(), DataType::Utf8));
        let secret = batch
            .column_by_name("secret_access")
            .and_then(|c| c.as_boolean_opt().cloned());
        let row_key = batch
            .column_by_name("row_key")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>().cloned());
        let mut bytes = time.as_ref().map_or(0, |a| a.get_array_memory_size());
        bytes += strs
            .iter()
            .flatten()
            .map(|a: &StringArray| a.get_array_memory_size())
            .sum::<usize>();
        bytes += groups.as_ref().map_or(0, |a| a.get_array_memory_size());
        bytes += secret.as_ref().map_or(0, |a| a.get_array_memory_size());
        bytes += row_key.as_ref().map_or(0, |a| a.get_array_memory_size());
        Cols {
            len: batch.num_rows(),
            bytes,
            time,
            strs,
            groups,
            secret,
            row_key,
        }
    }

    pub fn time(&self, r: usize) -> i64 {
        match &self.time {
            Some(t) if t.is_valid(r) => t.value(r),
            _ => 0,
        }
    }

    pub fn row_key(&self, r: usize) -> u64 {
        match &self.row_key {
            Some(k) if k.is_valid(r) => k.value(r),
            // without a row key, the event id orders ties
            _ => self
                .str(15, r)
                .map_or(0, |s| xxhash_rust::xxh3::xxh3_64(s.as_bytes())),
        }
    }

    #[inline]
    fn str(&self, i: usize, r: usize) -> Option<&str> {
        let a = self.strs[i].as_ref()?;
        a.is_valid(r).then(|| a.value(r))
    }

    /// Row `r` as an [`Ev`].
    pub fn ev(&self, r: usize) -> Ev<'_> {
        let s = |i| self.str(i, r);
        Ev {
            time: self.time(r),
            source: Src::parse(s(0).unwrap_or("")),
            source_str: s(0).unwrap_or(""),
            actor: s(1).unwrap_or(""),
            actor_type: s(2).unwrap_or(""),
            actor_id: s(3).filter(|x| !x.is_empty()),
            action: s(4).unwrap_or(""),
            verb: s(5).unwrap_or(""),
            resource_type: s(6),
            resource_path: s(7),
            resource_namespace: s(8),
            resource_name: s(9),
            subresource: s(10),
            outcome: s(11).unwrap_or(""),
            src_ip: s(12).filter(|x| !x.is_empty()),
            user_agent: s(13).filter(|x| !x.is_empty()),
            auth_method: s(14).filter(|x| !x.is_empty()),
            event_id: s(15).unwrap_or(""),
            secret_access: match &self.secret {
                Some(b) if b.is_valid(r) => b.value(r),
                _ => false,
            },
            cols: self,
            row: r,
        }
    }

    /// The groups of row `r`.
    pub fn groups(&self, r: usize) -> Vec<&str> {
        let Some(l) = &self.groups else {
            return vec![];
        };
        if !l.is_valid(r) {
            return vec![];
        }
        let offs = l.value_offsets();
        let (a, z) = (offs[r] as usize, offs[r + 1] as usize);
        let vals = l.values().as_string::<i32>();
        (a..z)
            .filter(|&i| vals.is_valid(i))
            .map(|i| vals.value(i))
            .collect()
    }
}

fn to_type(c: &ArrayRef, t: &DataType) -> Option<ArrayRef> {
    if c.data_type() == t {
        return Some(c.clone());
    }
    cast(c, t).ok()
}

/// One row, borrowed.
#[derive(Clone, Copy)]
pub struct Ev<'a> {
    pub time: i64,
    pub source: Src,
    pub source_str: &'a str,
    pub actor: &'a str,
    pub actor_type: &'a str,
    pub actor_id: Option<&'a str>,
    pub action: &'a str,
    pub verb: &'a str,
    pub resource_type: Option<&'a str>,
    pub resource_path: Option<&'a str>,
    pub resource_namespace: Option<&'a str>,
    pub resource_name: Option<&'a str>,
    pub subresource: Option<&'a str>,
    pub outcome: &'a str,
    pub src_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub auth_method: Option<&'a str>,
    pub event_id: &'a str,
    pub secret_access: bool,
    cols: &'a Cols,
    row: usize,
}

impl<'a> Ev<'a> {
    pub fn groups(&self) -> Vec<&'a str> {
        self.cols.groups(self.row)
    }
}

/// Builds a batch of the columns [`Cols`] reads from owned rows (pending rows restored
/// from a snapshot).
pub fn batch_from_rows(rows: &[OwnedRow]) -> RecordBatch {
    use datafusion::arrow::array::{ListBuilder, StringBuilder};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let mut fields = vec![Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false,
    )];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(TimestampMicrosecondArray::from(
        rows.iter().map(|r| r.time).collect::<Vec<_>>(),
    ))];
    for (i, name) in STR_COLS.iter().enumerate() {
        fields.push(Field::new(*name, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(
            rows.iter()
                .map(|r| r.strs[i].as_deref())
                .collect::<Vec<_>>(),
        )));
    }
    let mut gb = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for g in &r.groups {
            gb.values().append_value(g);
        }
        gb.append(true);
    }
    let groups = gb.finish();
    fields.push(Field::new("actor_groups", groups.data_type().clone(), true));
    arrays.push(Arc::new(groups));
    fields.push(Field::new("secret_access", DataType::Boolean, false));
    arrays.push(Arc::new(BooleanArray::from(
        rows.iter().map(|r| r.secret_access).collect::<Vec<_>>(),
    )));
    fields.push(Field::new("row_key", DataType::UInt64, false));
    arrays.push(Arc::new(UInt64Array::from(
        rows.iter().map(|r| r.row_key).collect::<Vec<_>>(),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .expect("columns built to the schema")
}

/// A row held across a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedRow {
    pub time: i64,
    pub row_key: u64,
    pub strs: Vec<Option<String>>,
    pub groups: Vec<String>,
    pub secret_access: bool,
}

impl OwnedRow {
    pub fn from_cols(c: &Cols, r: usize) -> OwnedRow {
        OwnedRow {
            time: c.time(r),
            row_key: c.row_key(r),
            strs: (0..STR_COLS.len())
                .map(|i| c.str(i, r).map(str::to_string))
                .collect(),
            groups: c.groups(r).into_iter().map(str::to_string).collect(),
            secret_access: c.ev(r).secret_access,
        }
    }
}
