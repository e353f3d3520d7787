//! Query latency over a real store: the investigation API's typical queries, run warm
//! through `auditwatch::query::QueryEngine` (one engine, one warm-up run, then N timed
//! runs; p50 and min). Driven by `scripts/bench_query.sh`, which builds the store and runs
//! DuckDB on the same files; without `AUDITWATCH_BENCH_STORE` this prints SKIPPED.
//!
//! `AUDITWATCH_BENCH_QUERIES` names a file of `name<TAB>sql` lines; the result is one JSON
//! line per query on stdout: `{"name":…,"p50_ms":…,"min_ms":…,"rows":…}`.

use std::time::Instant;

// the allocator of the `auditwatch` binary (`serve`, `run`, `query`), so the figures are
// those of what users run: with the system allocator a fifth of the time went to malloc
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[test]
fn query_latency() {
    let Some(store) = std::env::var_os("AUDITWATCH_BENCH_STORE") else {
        println!("SKIPPED query_latency: set AUDITWATCH_BENCH_STORE (scripts/bench_query.sh does)");
        return;
    };
    let queries = std::env::var("AUDITWATCH_BENCH_QUERIES").expect("AUDITWATCH_BENCH_QUERIES");
    let runs: usize = std::env::var("AUDITWATCH_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let text = std::fs::read_to_string(&queries).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = auditwatch::query::QueryEngine::open(std::path::Path::new(&store)).unwrap();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // `SET key = value` lines tune the session (to compare DataFusion settings)
        if line.to_ascii_uppercase().starts_with("SET ") {
            rt.block_on(async { engine.context().sql(line).await?.collect().await })
                .unwrap();
            continue;
        }
        let (name, sql) = line.split_once('\t').expect("name<TAB>sql");
        let rows = |b: &[datafusion::arrow::array::RecordBatch]| -> usize {
            b.iter().map(|x| x.num_rows()).sum()
        };
        let n = rows(&rt.block_on(engine.sql(sql)).unwrap()); // warm-up
        let mut ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let b = rt.block_on(engine.sql(sql)).unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(rows(&b), n);
        }
        ms.sort_by(f64::total_cmp);
        // where the time goes: planning (listing files, reading footers, statistics)
        let mut plan_ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            rt.block_on(async {
                engine
                    .context()
                    .sql(sql)
                    .await?
                    .create_physical_plan()
                    .await
            })
            .unwrap();
            plan_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        plan_ms.sort_by(f64::total_cmp);
        println!(
            "{}",
            serde_json::json!({
                "name": name,
                "p50_ms": ms[ms.len() / 2],
                "min_ms": ms[0],
                "plan_p50_ms": plan_ms[plan_ms.len() / 2],
                "rows": n
            })
        );
        if std::env::var_os("AUDITWATCH_BENCH_EXPLAIN").is_some() {
            let plan = rt
                .block_on(engine.sql(&format!("EXPLAIN ANALYZE {sql}")))
                .unwrap();
            let t = datafusion::arrow::util::pretty::pretty_format_batches(&plan).unwrap();
            eprintln!("{name}:\n{t}");
        }
    }
}
