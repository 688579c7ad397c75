//! `fmv exemplars --all` as a whole process over the generated JPEG folders of the ranking
//! benchmark, at `n` and `4n` images: the peak RSS must stay flat (the run keeps `k` entries
//! per map, not the images), and the time per image.

use std::process::Stdio;

use anyhow::Result;

use super::forward::resnet50;
use super::rank::make_folder;
use super::{Row, Setup, Table, run_measured, weights_file};

pub fn rows(setup: &Setup, images: usize, table: &Table) -> Result<()> {
    let arch = resnet50();
    let weights = weights_file(&arch, 1)?;
    let mut peaks = Vec::new();
    for n in [images, 4 * images] {
        let dir = make_folder(n)?;
        eprintln!("bench: fmv exemplars --all, {} on {n} images", arch.name());
        let mut cmd = setup.fmv("exemplars");
        cmd.args(["--preprocess", "original", "--weights"])
            .arg(&weights)
            .args([
                "--layer", "layer4.1", "--all", "-k", "9", "--json", "--images",
            ])
            .arg(&dir)
            .stdout(Stdio::null());
        let (secs, rss) = run_measured(&mut cmd)?;
        peaks.push(rss);
        table.print(
            &Row::new(
                format!(
                    "`fmv exemplars --all -k 9`, {} → layer4.1 (2048 maps), {n} JPEGs, whole process",
                    arch.name()
                ),
                "ms/image",
                secs * 1e3 / n as f64,
            )
            .with_rss(rss),
        );
    }
    eprintln!(
        "bench: exemplars' peak RSS at 4× the images / at 1×: {:.3}",
        peaks[1] / peaks[0]
    );
    Ok(())
}
