//! Query: read-only SQL over the store with DataFusion. Tables: `events`
//! (`access_events`), `quarantine` and `alerts`. DDL, DML and other statements (COPY, SET,
//! CREATE EXTERNAL TABLE) are refused before planning.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};

use crate::error::{Error, Result};
use crate::normalize::schema;
use crate::store::{ALERTS_DIR, EVENTS_DIR, QUARANTINE_DIR};

pub struct QueryEngine {
    ctx: SessionContext,
}

impl QueryEngine {
    /// Opens the tables of a local store directory.
    pub fn open(root: &Path) -> Result<Self> {
        let cfg = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.bloom_filter_on_read", true);
        let ctx = SessionContext::new_with_config(cfg);
        for (name, dir, schema) in [
            ("events", EVENTS_DIR, schema::access_events()),
            ("quarantine", QUARANTINE_DIR, schema::quarantine()),
            ("alerts", ALERTS_DIR, schema::alerts()),
        ] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path)?;
            register(&ctx, name, &path, schema)?;
        }
        Ok(QueryEngine { ctx })
    }

    /// Runs one read-only SQL statement.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let opts = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(sql, opts)
            .await
            .map_err(|e| match e {
                datafusion::error::DataFusionError::Plan(m)
                    if m.contains("not supported") || m.contains("not allowed") =>
                {
                    Error::QueryRefused(m)
                }
                e => Error::Query(e),
            })?;
        Ok(df.collect().await?)
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

fn register(ctx: &SessionContext, name: &str, dir: &Path, schema: SchemaRef) -> Result<()> {
    let url = ListingTableUrl::parse(format!("{}/", dir.display()))?;
    let opts =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let cfg = ListingTableConfig::new(url)
        .with_listing_options(opts)
        .with_schema(schema);
    ctx.register_table(name, Arc::new(ListingTable::try_new(cfg)?))?;
    Ok(())
}

/// Output format of `auditwatch query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per row.
    Json,
    Csv,
    Table,
}

/// Writes batches in the chosen format.
pub fn write_batches(
    batches: &[RecordBatch],
    fmt: OutputFormat,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    use datafusion::arrow::{csv, json};
    match fmt {
        OutputFormat::Json => {
            let mut w = json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::new(out);
            for b in batches {
                w.write(&flatten_nested(b)?)?;
            }
        }
        OutputFormat::Table => {
            let t = datafusion::arrow::util::pretty::pretty_format_batches(batches)?;
            writeln!(out, "{t}")?;
        }
    }
    Ok(())
}

/// CSV has no nested types: render list/struct columns as text (`[a, b]`).
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, StringBuilder};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.data_type().is_nested() {
            let fmt = ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default())?;
            let mut b = StringBuilder::with_capacity(c.len(), c.len() * 16);
            for i in 0..c.len() {
                if c.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value(fmt.value(i).to_string());
                }
            }
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(b.finish()));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}
