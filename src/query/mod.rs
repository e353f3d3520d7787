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

pub mod cache;

use crate::error::{Error, Result};
use crate::normalize::schema;
use crate::store::{ALERTS_DIR, EVENTS_DIR, QUARANTINE_DIR};

pub struct QueryEngine {
    ctx: SessionContext,
}

/// Parquet footers and page indexes kept in memory across queries. DataFusion's default
/// (50 MB) is smaller than the metadata of a month of hourly files, so a scan of all of
/// them evicted every entry and each query re-read and re-decoded every footer
/// (scripts/bench_query.sh, 10M events, 1440 files: ~0.6 s of a 1.2 s identity query).
pub const METADATA_CACHE_BYTES: usize = 512 << 20;

/// Memory for small reads of store files (bloom filters) kept across queries.
pub const SMALL_READ_CACHE_BYTES: usize = 256 << 20;

/// Session settings of both engines. `collect_statistics` is off: with it, planning
/// merged per-file statistics of every file on each query (~1 s for 1440 files), while
/// the pruning it enabled happens anyway when a file is opened, from its cached footer
/// (row-group statistics, bloom filters, page index).
fn session_config() -> SessionConfig {
    SessionConfig::new()
        .with_information_schema(true)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.bloom_filter_on_read", true)
        .set_bool("datafusion.execution.collect_statistics", false)
}

impl QueryEngine {
    /// Opens the tables of a local store directory.
    pub fn open(root: &Path) -> Result<Self> {
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(METADATA_CACHE_BYTES)
            .build_arc()?;
        // bloom filters and other small reads of the (immutable) store files from memory
        // (scripts/bench_query.sh, 100M events in 130 files: the path query read 364
        // bloom filters per run, each opening its file again)
        let url = datafusion::execution::object_store::ObjectStoreUrl::local_filesystem();
        runtime.register_object_store(
            url.as_ref(),
            Arc::new(cache::SmallReadCache::new(
                Arc::new(object_store::local::LocalFileSystem::new()),
                SMALL_READ_CACHE_BYTES,
            )),
        );
        let ctx = SessionContext::new_with_config_rt(session_config(), runtime);
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

// ---- Limits of queries served over HTTP (`api`) -------------------------------------

/// Tables the HTTP SQL surface may scan (plus `information_schema`).
pub const SQL_TABLES: &[&str] = &["events", "alerts", "quarantine"];

/// Resource limits of the queries the HTTP API runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory pool shared by every running query of one engine, in bytes. Sorts and
    /// aggregations spill to disk beyond it; other operators fail ("resources exhausted").
    pub memory_bytes: usize,
    /// Wall-clock limit of one request's query work.
    pub timeout: std::time::Duration,
    /// Most rows one SQL request returns; more are cut and flagged as truncated.
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory_bytes: 512 << 20,
            timeout: std::time::Duration::from_secs(30),
            max_rows: 100_000,
        }
    }
}

impl QueryEngine {
    /// Like [`QueryEngine::open`], for a long-running server: a bounded memory pool, no
    /// cached file listings (files written after start must be seen), and the session's
    /// Parquet options (filter pushdown, bloom filters) applied to the tables.
    pub fn open_limited(root: &Path, limits: &QueryLimits) -> Result<Self> {
        use datafusion::execution::cache::cache_manager::CacheManagerConfig;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let cfg = session_config();
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_list_files_cache_limit(0)
                    .with_metadata_cache_limit(METADATA_CACHE_BYTES),
            )
            .build_arc()?;
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(cfg)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(YieldEverywhere))
            .build();
        let ctx = SessionContext::new_with_state(state);
        for (name, dir, schema) in [
            ("events", EVENTS_DIR, schema::access_events()),
            ("quarantine", QUARANTINE_DIR, schema::quarantine()),
            ("alerts", ALERTS_DIR, schema::alerts()),
        ] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path)?;
            let table = listing_table(&ctx, &[path], schema)?;
            ctx.register_table(name, table)?;
        }
        Ok(QueryEngine { ctx })
    }

    /// Plans one read-only statement: DDL, DML and other statements (COPY, SET, …) are
    /// refused by DataFusion, then every table the plan scans (subqueries included) must
    /// be in `allowed` or `information_schema` — which refuses table functions and any
    /// other table.
    pub async fn plan_read_only(
        &self,
        sql: &str,
        allowed: &[&str],
    ) -> Result<datafusion::dataframe::DataFrame> {
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
        check_scans(df.logical_plan(), allowed)?;
        Ok(df)
    }
}

/// Makes a query cancellable at every operator. DataFusion yields to the runtime only
/// at its sources, so an operator that produces batch after batch without reading its
/// input (a cross join) keeps its thread until it finishes — long after the time limit
/// dropped it. Wrapping every operator's output in a [`CooperativeExec`] spends tokio's
/// task budget on each batch, so a dropped query stops within ~128 batches.
///
/// [`CooperativeExec`]: datafusion::physical_plan::coop::CooperativeExec
#[derive(Debug, Default)]
pub struct YieldEverywhere;

impl datafusion::physical_optimizer::PhysicalOptimizerRule for YieldEverywhere {
    fn optimize(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        _config: &datafusion::config::ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::physical_plan::ExecutionPlan;
        use datafusion::physical_plan::coop::CooperativeExec;
        use datafusion::physical_plan::execution_plan::{
            ChildrenPropertiesMode, ReplaceChildrenOptions,
        };
        fn wrap(p: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
            if p.is::<CooperativeExec>() {
                p
            } else {
                Arc::new(CooperativeExec::new(p))
            }
        }
        let plan = plan
            .transform_up(|node| {
                if node.is::<CooperativeExec>() || node.children().is_empty() {
                    return Ok(Transformed::no(node));
                }
                let children = node.children().into_iter().cloned().map(wrap).collect();
                // a CooperativeExec has its input's properties: keep the node's
                Ok(Transformed::yes(node.replace_children(
                    children,
                    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
                )?))
            })?
            .data;
        Ok(wrap(plan))
    }

    fn name(&self) -> &str {
        "auditwatch_yield_everywhere"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Refuses a plan that scans a table outside `allowed` (and `information_schema`).
pub fn check_scans(plan: &datafusion::logical_expr::LogicalPlan, allowed: &[&str]) -> Result<()> {
    use datafusion::common::TableReference;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut refused: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let ok = match &scan.table_name {
                TableReference::Bare { table } => allowed.contains(&table.as_ref()),
                TableReference::Partial { schema, table } => {
                    schema.as_ref() == "information_schema"
                        || (schema.as_ref() == "public" && allowed.contains(&table.as_ref()))
                }
                TableReference::Full {
                    catalog,
                    schema,
                    table,
                } => {
                    catalog.as_ref() == "datafusion"
                        && (schema.as_ref() == "information_schema"
                            || (schema.as_ref() == "public" && allowed.contains(&table.as_ref())))
                }
            };
            if !ok {
                refused = Some(scan.table_name.to_string());
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match refused {
        Some(t) => Err(Error::QueryRefused(format!(
            "table {t} is not queryable (allowed: {}, information_schema)",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Runs a plan and keeps at most `max_rows` rows; the flag says whether rows were cut.
/// The plan gets a `LIMIT max_rows + 1`, so DataFusion stops early.
pub async fn collect_capped(
    df: datafusion::dataframe::DataFrame,
    max_rows: usize,
) -> Result<(Vec<RecordBatch>, bool)> {
    use datafusion::logical_expr::LogicalPlan;
    // EXPLAIN must stay the root of its plan (and its answer is small)
    let df = match df.logical_plan() {
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::DescribeTable(_) => df,
        _ => df.limit(0, Some(max_rows.saturating_add(1)))?,
    };
    let batches = df.collect().await?;
    let mut out = Vec::with_capacity(batches.len());
    let mut rows = 0usize;
    let mut truncated = false;
    for b in batches {
        if rows + b.num_rows() > max_rows {
            truncated = true;
            let keep = max_rows - rows;
            if keep > 0 {
                out.push(b.slice(0, keep));
            }
            break;
        }
        rows += b.num_rows();
        out.push(b);
    }
    Ok((out, truncated))
}

/// A Parquet table over some directories (or files) of the store, with the session's
/// Parquet options and its statistics cache. The API scans only the partitions a time
/// range and source filter can touch.
pub fn listing_table(
    ctx: &SessionContext,
    paths: &[std::path::PathBuf],
    schema: SchemaRef,
) -> Result<Arc<ListingTable>> {
    let urls = paths
        .iter()
        .map(|p| {
            if p.is_dir() {
                ListingTableUrl::parse(format!("{}/", p.display()))
            } else {
                ListingTableUrl::parse(p.display().to_string())
            }
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let parquet = ctx.state().default_table_options().parquet;
    let opts = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(parquet)))
        .with_file_extension(".parquet");
    let cfg = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(opts)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(cfg)?.with_cache(
        ctx.runtime_env().cache_manager.get_file_statistic_cache(),
    )))
}
