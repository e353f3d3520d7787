//! Embeds the rule pack (`rules/**/*.yml`) in the binary so `auditwatch demo` runs with
//! no checkout; `run`/`ingest` read rules from the paths they are given.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml")
            && p.file_name().is_some_and(|n| n != "fields.yml")
        {
            out.push(p);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=rules");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    walk(&root.join("rules"), &mut files);
    files.sort();
    let mut src = String::from(
        "/// The rule pack in `rules/` at build time: (relative path, text).\npub static EMBEDDED_RULES: &[(&str, &str)] = &[\n",
    );
    for f in files {
        let rel = f.strip_prefix(&root).expect("under the manifest dir");
        // the text itself, not `include_str!` of an absolute path: a build reused from
        // another checkout (a shared target directory) must not point into that checkout
        let text = std::fs::read_to_string(&f).expect("rule file is UTF-8");
        src.push_str(&format!(
            "    ({:?}, {:?}),\n",
            rel.display().to_string(),
            text
        ));
    }
    src.push_str("];\n");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("embedded_rules.rs");
    std::fs::write(out, src).expect("write embedded_rules.rs");
}
