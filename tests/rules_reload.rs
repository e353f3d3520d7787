//! Rules are reloaded without a restart when a rule file changes; a broken file is
//! reported and the previous rules stay active.

use std::sync::Arc;
use std::time::Duration;

use auditwatch::source::kafka::Shared;
use tokio_util::sync::CancellationToken;

const RULE: &str = r#"title: Secret listed
id: 11111111-1111-4111-8111-111111111111
logsource: {product: kubernetes, service: audit}
detection:
    sel: {verb: list, objectRef.resource: secrets}
    condition: sel
level: high
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_rule_file_is_picked_up_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.yml");
    std::fs::write(&file, RULE).unwrap();
    let paths = vec![dir.path().to_path_buf()];
    let shared = Arc::new(Shared::default());
    shared
        .rules
        .set(Arc::new(auditwatch::app::load_rules(&paths, None).unwrap()));
    let mut seen = 0;
    let first = shared.rules.changed(&mut seen).unwrap();
    assert_eq!(first.rules[0].meta.level.unwrap().as_str(), "high");
    let token = CancellationToken::new();
    let w = tokio::spawn(auditwatch::app::watch_rules(
        shared.clone(),
        paths,
        None,
        Duration::from_millis(50),
        token.clone(),
    ));
    let wait_change = |seen: &mut u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(rs) = shared.rules.changed(seen) {
                return Some(rs);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // an edit (new level) is picked up
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(&file, RULE.replace("level: high", "level: critical")).unwrap();
    let rs = tokio::task::block_in_place(|| wait_change(&mut seen)).expect("reloaded");
    assert_eq!(rs.rules[0].meta.level.unwrap().as_str(), "critical");
    // a broken file: reported, counted, the previous set stays
    let failed_before = auditwatch::metrics::metrics()
        .rules_reloads
        .with_label_values(&["failed"])
        .get();
    std::fs::write(
        &file,
        RULE.replace("condition: sel", "condition: sel and nothing"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        shared.rules.changed(&mut seen).is_none(),
        "a broken set is not activated"
    );
    assert!(
        auditwatch::metrics::metrics()
            .rules_reloads
            .with_label_values(&["failed"])
            .get()
            > failed_before
    );
    assert_eq!(
        shared.rules.current().unwrap().rules[0]
            .meta
            .level
            .unwrap()
            .as_str(),
        "critical"
    );
    token.cancel();
    w.await.unwrap();
}
