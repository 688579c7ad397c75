//! `cargo xtask fetch NAME... [--pin]`: downloads pretrained ImageNet weights from the Hugging
//! Face Hub with the `hf-hub` crate (0.4, its blocking `ureq` API) into the shared Hugging Face
//! cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`: a cache Python filled is reused),
//! checks them, and places them at `models/NAME.safetensors`.
//!
//! Two checks: the file's sha256 must equal the Hub's own LFS hash (the cache names each blob
//! by it), and, once pinned, the sha256 in `models/manifest.json`. `--pin` records the hash of
//! a verified download in the manifest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::sha256_file;

const MANIFEST: &str = "models/manifest.json";

/// The Hub's LFS hash of a cached file: the name of the blob its snapshot entry points to.
fn hub_hash(snapshot_path: &Path) -> Option<String> {
    let blob = std::fs::canonicalize(snapshot_path).ok()?;
    let name = blob.file_name()?.to_str()?.to_string();
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

/// Downloads (or finds in the cache) one model and places it under `models/`.
fn fetch_one(entry: &Value, pin: bool) -> Result<Option<String>> {
    let name = entry["name"]
        .as_str()
        .context("manifest entry without a name")?;
    let repo = entry["repo"]
        .as_str()
        .context("manifest entry without a repo")?;
    let file = entry["file"].as_str().unwrap_or("model.safetensors");
    let target = PathBuf::from(format!("models/{name}.safetensors"));
    let url = format!("https://huggingface.co/{repo}/resolve/main/{file}");
    println!("{name}: {repo} / {file}");
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .context("cannot set up the Hugging Face client")?;
    let cached = match api.model(repo.to_string()).get(file) {
        Ok(p) => p,
        Err(e) if target.is_file() => {
            // Offline with a file placed by hand: check it against the pin, if any.
            let sha = sha256_file(&target)?;
            return match entry["sha256"].as_str() {
                Some(pinned) if pinned != sha => bail!(
                    "{} has sha256 {sha}, not the pinned {pinned}; replace it with {url}",
                    target.display()
                ),
                Some(_) => {
                    println!(
                        "  {} matches the pinned sha256 (Hub not reached: {e})",
                        target.display()
                    );
                    Ok(None)
                }
                None => {
                    println!(
                        "  {} is present, sha256 {sha}; not verified (the Hub was not reached and no sha256 is pinned)",
                        target.display()
                    );
                    Ok(None)
                }
            };
        }
        Err(e) => bail!(
            "offline? cannot download {repo} ({e}); download {url} by hand and place it at {}",
            target.display()
        ),
    };
    let sha = sha256_file(&cached)?;
    match hub_hash(&cached) {
        Some(h) if h != sha => bail!(
            "{}: sha256 {sha} differs from the Hub's {h}; the download is damaged: delete it and fetch again",
            cached.display()
        ),
        Some(_) => println!("  sha256 {sha} (matches the Hub's LFS hash)"),
        None => println!("  sha256 {sha} (the cache does not name the Hub's hash)"),
    }
    match entry["sha256"].as_str() {
        Some(pinned) if pinned != sha => bail!(
            "{name}: sha256 {sha} differs from the {pinned} pinned in {MANIFEST}; the Hub's file changed or the download is wrong"
        ),
        Some(_) => println!("  matches the pinned sha256"),
        None if pin => println!("  pinning it in {MANIFEST}"),
        None => println!("  not pinned in {MANIFEST}: run with --pin to record it"),
    }
    std::fs::create_dir_all("models")?;
    let tmp = target.with_extension("safetensors.part");
    std::fs::copy(&cached, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &target)?;
    println!("  placed at {}", target.display());
    Ok((pin && entry["sha256"].is_null()).then_some(sha))
}

/// Runs `cargo xtask fetch`.
pub fn run(names: &[String], pin: bool) -> Result<()> {
    let mut manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(MANIFEST).with_context(|| format!("cannot read {MANIFEST}"))?,
    )?;
    let known: Vec<String> = manifest["models"]
        .as_array()
        .context("the manifest has no models")?
        .iter()
        .filter_map(|m| m["name"].as_str().map(String::from))
        .collect();
    if names.is_empty() {
        bail!(
            "usage: cargo xtask fetch NAME... [--pin]; names: {}",
            known.join(", ")
        );
    }
    let mut failed = Vec::new();
    for name in names {
        let Some(i) = known.iter().position(|k| k == name) else {
            bail!(
                "unknown model `{name}`; {MANIFEST} lists: {}",
                known.join(", ")
            );
        };
        match fetch_one(&manifest["models"][i], pin) {
            Ok(Some(sha)) => {
                manifest["models"][i]["sha256"] = Value::String(sha);
                let mut text = serde_json::to_string_pretty(&manifest)?;
                text.push('\n');
                std::fs::write(MANIFEST, text)?;
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e:#}");
                failed.push(name.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!("could not fetch: {}", failed.join(", "));
    }
    Ok(())
}
