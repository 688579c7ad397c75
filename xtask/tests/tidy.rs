//! Checks of the architecture invariants that a machine can check (see ARCHITECTURE.md).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The normal (non-dev, non-build) dependencies of `package`, transitively, by crate name.
fn resolved_deps(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = names
        .iter()
        .find(|(_, n)| **n == package)
        .map(|(id, _)| *id)
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[dep_id].to_string()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn dependency_layering_holds() {
    let render = resolved_deps("fmv-render");
    for d in &render {
        assert!(
            !d.starts_with("candle") && d != "fmv-core" && d != "fmv-models",
            "fmv-render depends on {d}"
        );
    }
    let core = resolved_deps("fmv-core");
    for banned in [
        "plotters",
        "fmv-render",
        "clap",
        "indicatif",
        "anyhow",
        "hf-hub",
    ] {
        assert!(!core.contains(banned), "fmv-core depends on {banned}");
    }
    for lib in ["fmv-models", "fmv", "fmv-render"] {
        let deps = resolved_deps(lib);
        for banned in ["anyhow", "hf-hub", "clap", "indicatif"] {
            assert!(!deps.contains(banned), "{lib} depends on {banned}");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_has_docs_and_no_test_is_hidden() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "examples"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20);
    let (ignore, should_panic) = (["#[", "ignore]"].concat(), ["#[", "should_panic"].concat());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} does not start with a `//!` module doc",
            f.display()
        );
        assert!(
            !text.contains(&ignore) && !text.contains(&should_panic),
            "{} hides a test",
            f.display()
        );
    }
}

#[test]
fn no_large_files_are_committed() {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .unwrap();
    if !out.status.success() {
        return; // not a git checkout (e.g. a source tarball)
    }
    for name in String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|n| !n.is_empty())
    {
        let len = std::fs::metadata(root().join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            len <= 2 * 1024 * 1024,
            "{name} is {len} bytes; weights over 2 MiB are fetched, not committed"
        );
    }
}

#[test]
fn demo_weights_match_their_sha256_and_stay_small() {
    use sha2::Digest;
    let dir = root().join("models/demo");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut total = 0;
    let mut listed = 0;
    for line in sums.lines() {
        let (hash, file) = line.split_once("  ").expect("`HASH  FILE` lines");
        let bytes = std::fs::read(dir.join(file)).unwrap();
        total += bytes.len();
        listed += 1;
        let actual = format!("{:x}", sha2::Sha256::digest(&bytes));
        assert_eq!(actual, hash, "models/demo/{file} does not match SHA256SUMS");
    }
    assert_eq!(listed, 2, "both demo networks are listed");
    assert!(
        total <= 2_000_000,
        "the demo weights take {total} bytes, over 2 MB"
    );
}
