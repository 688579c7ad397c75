//! One rule for every command, checked before any work: no output replaces an input. An output
//! file may be neither an input file nor inside an input folder (where it would replace or join
//! the images), and an output folder may not be an input folder, nor lie inside one.

use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

/// What a command reads: each path with the flag that named it.
#[derive(Debug, Default)]
pub struct Inputs {
    files: Vec<(PathBuf, String)>,
    folders: Vec<(PathBuf, String)>,
}

impl Inputs {
    /// No inputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An input file or folder (which, is looked up), named by `flag`; a path that does not
    /// exist reads nothing and is left out (the command will say so).
    pub fn add(mut self, path: &Path, flag: &str) -> Self {
        let Ok(real) = std::fs::canonicalize(path) else {
            return self;
        };
        if real.is_dir() {
            self.folders.push((real, flag.to_string()));
        } else {
            self.files.push((real, flag.to_string()));
        }
        self
    }

    /// Each of `paths`, named by `flag`.
    pub fn add_all<'a>(mut self, paths: impl IntoIterator<Item = &'a PathBuf>, flag: &str) -> Self {
        for p in paths {
            self = self.add(p, flag);
        }
        self
    }

    /// Refuses `output` (a file named by `flag`) if it would replace an input file or land
    /// inside an input folder.
    pub fn refuse_file(&self, output: &Path, flag: &str) -> Result<()> {
        let real = resolve(output);
        if let Some((input, by)) = self.files.iter().find(|(f, _)| *f == real) {
            bail!(
                "invalid {flag} {}: it is the input {by} {}, which it would replace; write the \
                 output elsewhere",
                output.display(),
                input.display()
            );
        }
        self.refuse_inside(output, &real, flag)
    }

    /// Refuses `output` (a folder named by `flag`, whose contents the command writes) if it is
    /// an input folder or lies inside one.
    pub fn refuse_folder(&self, output: &Path, flag: &str) -> Result<()> {
        self.refuse_inside(output, &resolve(output), flag)
    }

    fn refuse_inside(&self, output: &Path, real: &Path, flag: &str) -> Result<()> {
        if let Some((folder, by)) = self.folders.iter().find(|(d, _)| real.starts_with(d)) {
            bail!(
                "invalid {flag} {}: it lies inside the input folder {by} {}, where it could \
                 replace or join the inputs; write the output outside it",
                output.display(),
                folder.display()
            );
        }
        Ok(())
    }
}

/// The absolute path `path` names, with every link and `..` of its existing part resolved
/// (the rest, which does not exist yet, is taken as written).
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return normalize(&out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return normalize(&absolute),
        }
    }
}

/// `path` without `.` and with each `..` taken lexically (for the part that does not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fmv-guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("train/cat")).unwrap();
        std::fs::write(dir.join("train/cat/a.jpg"), b"x").unwrap();
        std::fs::write(dir.join("w.safetensors"), b"x").unwrap();
        dir
    }

    /// An input file, a file inside an input folder (by any spelling) and an input folder as an
    /// output are refused; a new file beside the inputs is not.
    #[test]
    fn outputs_that_would_replace_inputs_are_refused() {
        let dir = scratch("refuse");
        let inputs = Inputs::new()
            .add(&dir.join("train"), "--train-dir")
            .add(&dir.join("w.safetensors"), "--weights")
            .add(&dir.join("missing.json"), "--top-maps");
        let err = inputs
            .refuse_file(&dir.join("w.safetensors"), "-o")
            .unwrap_err()
            .to_string();
        assert!(err.contains("it is the input --weights"), "{err}");
        for inside in [
            "train/cat/a.jpg",
            "train/cat/new.json",
            "train/x/../cat/a.jpg",
        ] {
            let err = inputs
                .refuse_file(&dir.join(inside), "-o")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("inside the input folder --train-dir"),
                "{inside}: {err}"
            );
        }
        assert!(inputs.refuse_folder(&dir.join("train"), "-o").is_err());
        assert!(
            inputs
                .refuse_folder(&dir.join("train/cat/out"), "-o")
                .is_err()
        );
        assert!(inputs.refuse_file(&dir.join("rank.json"), "-o").is_ok());
        assert!(inputs.refuse_folder(&dir.join("report"), "-o").is_ok());
        // A link to an input is that input.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("w.safetensors"), dir.join("link")).unwrap();
            assert!(inputs.refuse_file(&dir.join("link"), "-o").is_err());
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
