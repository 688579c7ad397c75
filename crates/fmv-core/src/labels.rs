//! Class names for a classifier's outputs: a labels file (one name per line, or a JSON list of
//! strings), in output order.

use std::path::Path;

use crate::error::{Error, Result};
use crate::inputs::{MAX_JSON_BYTES, read_limited};

/// Reads the names of a classifier's outputs from `path`: a JSON list of strings (if the file
/// starts with `[`), or one name per line (surrounding spaces and a final newline ignored; a
/// blank line inside the list is an error, since it would shift every name after it).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fmv-labels-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("labels.txt"), "glioma\nmeningioma\nnotumor\npituitary\n")?;
/// let names = fmv_core::read_labels(&dir.join("labels.txt"))?;
/// assert_eq!(names, ["glioma", "meningioma", "notumor", "pituitary"]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let bytes = read_limited(path, MAX_JSON_BYTES)?;
    let bad = |reason: String| Error::BadFile {
        path: path.to_path_buf(),
        what: "labels file",
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))?;
    let names: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "it starts with `[` but is not a JSON list of strings ({e})"
            ))
        })?
    } else {
        let lines: Vec<&str> = text.trim_end().lines().map(str::trim).collect();
        if let Some(n) = lines.iter().position(|l| l.is_empty()) {
            return Err(bad(format!(
                "line {} is empty; every line names one output, in order",
                n + 1
            )));
        }
        lines.into_iter().map(String::from).collect()
    };
    if names.is_empty() {
        return Err(bad("it names no classes".into()));
    }
    Ok(names)
}

/// Checks that `labels` name exactly the `n` outputs of a classifier.
pub fn check_labels(labels: &[String], n: usize, source: &Path) -> Result<()> {
    if labels.len() == n {
        return Ok(());
    }
    Err(Error::BadFile {
        path: source.to_path_buf(),
        what: "labels file",
        reason: format!(
            "it names {} classes, and the network's head has {n} outputs",
            labels.len()
        ),
    })
}
