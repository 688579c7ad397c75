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

/// The library crates: everything but the CLI, the examples and xtask.
const LIBRARIES: [&str; 6] = [
    "fmv-kernels",
    "fmv-models",
    "fmv-core",
    "fmv-render",
    "fmv-report",
    "fmv",
];

/// The direct (normal) dependencies of `package`, by crate name, as its manifest lists them.
fn direct_deps(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .unwrap();
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pkg = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("no package {package}"));
    pkg["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"].is_null())
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dependency_layering_holds() {
    // The kernels are candle ops and nothing else: no arrow runs back up to the models.
    let kernels: Vec<String> = direct_deps("fmv-kernels").into_iter().collect();
    assert_eq!(
        kernels,
        ["candle-core", "gemm", "rayon", "rustfft"],
        "fmv-kernels' dependencies"
    );
    let kernels = resolved_deps("fmv-kernels");
    assert!(
        !kernels.iter().any(|d| d.starts_with("fmv")),
        "fmv-kernels depends on {kernels:?}"
    );
    let models = resolved_deps("fmv-models");
    for banned in ["fmv-core", "fmv-render", "fmv-report"] {
        assert!(!models.contains(banned), "fmv-models depends on {banned}");
    }
    let render = resolved_deps("fmv-render");
    for d in &render {
        assert!(
            !d.starts_with("candle") && !d.starts_with("fmv-"),
            "fmv-render depends on {d}"
        );
    }
    let core = resolved_deps("fmv-core");
    for banned in ["plotters", "fmv-render", "fmv-report"] {
        assert!(!core.contains(banned), "fmv-core depends on {banned}");
    }
    for lib in LIBRARIES {
        let deps = resolved_deps(lib);
        for banned in ["anyhow", "hf-hub", "clap", "indicatif", "ctrlc"] {
            assert!(!deps.contains(banned), "{lib} depends on {banned}");
        }
    }
}

/// The Rust files of a library's `src/`, with each file's text up to its unit tests (a file's
/// `#[cfg(test)]` module comes last, by this project's habit).
fn library_sources() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for lib in LIBRARIES {
        let dir = root().join("crates").join(lib).join("src");
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.push((f, code));
        }
    }
    assert!(out.len() > 40, "{} library files", out.len());
    out
}

/// Libraries take their settings as arguments: only binaries read the environment. The one
/// exception sets a variable for the binaries that ask it to (`process`).
#[test]
fn libraries_read_no_environment_variables() {
    let allowed = [root().join("crates/fmv-core/src/process.rs")];
    for (file, code) in library_sources() {
        if allowed.contains(&file) {
            continue;
        }
        for (n, line) in code.lines().enumerate() {
            let used = ["env::var", "env::set_var", "env::remove_var", "env::vars"]
                .iter()
                .any(|call| line.contains(call));
            assert!(
                !used || line.trim_start().starts_with("//"),
                "{}:{}: a library reads the environment: {line}",
                file.display(),
                n + 1
            );
        }
    }
}

/// Libraries speak in types: their messages name settings, never the CLI's `--flags` (only
/// build instructions, which name cargo's). One page says how to run the CLI: the demo
/// report's, which tells its reader how to make the same report of their own network.
#[test]
fn libraries_speak_no_command_line_flags() {
    let flag = |line: &str| {
        line.match_indices("--")
            .any(|(i, _)| line[i + 2..].starts_with(|c: char| c.is_ascii_lowercase()))
    };
    let allowed = [root().join("crates/fmv-report/src/html.rs")];
    for (file, code) in library_sources() {
        if allowed.contains(&file) {
            continue;
        }
        for (n, line) in code.lines().enumerate() {
            let comment = line.trim_start().starts_with("//");
            let cargo = line.contains("cargo ");
            assert!(
                comment || cargo || !flag(line),
                "{}:{}: a library names a command-line flag: {line}",
                file.display(),
                n + 1
            );
        }
    }
}

/// The history of performance work lives in docs/PERFORMANCE.md, not in the code's comments.
#[test]
fn no_performance_history_in_the_sources() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask/src", "examples"] {
        rust_files(&root().join(dir), &mut files);
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap().to_lowercase();
        let history = text
            .match_indices("attempt ")
            .any(|(i, m)| text[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
        assert!(!history, "{} cites a performance attempt", f.display());
    }
}

/// ARCHITECTURE.md's code map names every source file of every crate under the crate's
/// heading (by its path in `src/`), and names no file that does not exist (in `src/` or the
/// crate's folder): the map stays true.
#[test]
fn the_code_map_names_every_source_file() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut crates: Vec<String> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    for name in crates
        .iter()
        .map(|c| format!("crates/{c}"))
        .chain(["xtask".into()])
    {
        let heading = format!("### `{name}`");
        let start = map
            .find(&heading)
            .unwrap_or_else(|| panic!("ARCHITECTURE.md has no heading {heading}"));
        let section = &map[start + heading.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        let src = root().join(&name).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in &files {
            let rel = f
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            assert!(
                section.contains(&format!("`{rel}`")),
                "ARCHITECTURE.md's section {heading} does not name `{rel}`"
            );
        }
        // Every file it names exists.
        for named in section.split('`').skip(1).step_by(2) {
            if named.ends_with(".rs") && !named.contains(' ') {
                let krate = root().join(&name);
                assert!(
                    src.join(named).is_file() || krate.join(named).is_file(),
                    "ARCHITECTURE.md's section {heading} names `{named}`, which is neither in {} \
                     nor in {}",
                    src.display(),
                    krate.display()
                );
            }
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
