//! Nothing lost, nothing silently wrong: no output replaces an input, files are read within
//! stated bounds, links that lead nowhere are named, and a user error is one message.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::{copy_tree, fmv, json_of, scratch, stderr_of_failure, testdata, weights};

fn dsa(split: &str) -> std::path::PathBuf {
    testdata().join("reference/data/dsA").join(split)
}

/// `fmv rank` of the small ResNet at its last block with small cut-offs, then `extra`.
fn rank<'a>(weights: &'a str, train: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "rank",
        "--weights",
        weights,
        "--layer",
        "-1",
        "--train-dir",
        train.to_str().unwrap(),
        "--n-each-img",
        "5",
        "--n-each-class",
        "5",
    ];
    args.extend_from_slice(extra);
    args
}

/// Runs `fmv` and returns its output with its peak resident memory in bytes (from `wait4`, the
/// child's own, whatever else the test process runs).
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its peak memory"
)]
fn fmv_with_peak(args: &[&str]) -> (Output, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_fmv"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // Read the pipes first (a full pipe would block the child), then reap it with wait4.
    let stdout = std::thread::spawn({
        let mut s = child.stdout.unwrap();
        move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut s, &mut v).unwrap();
            v
        }
    });
    let mut err = child.stderr.unwrap();
    let mut stderr = Vec::new();
    std::io::Read::read_to_end(&mut err, &mut stderr).unwrap();
    let stdout = stdout.join().unwrap();
    let mut status = 0;
    // SAFETY: `rusage` is plain data; `wait4` writes it and the status for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    // Linux reports ru_maxrss in KiB.
    let peak = usage.ru_maxrss as u64 * 1024;
    (
        Output {
            status,
            stdout,
            stderr,
        },
        peak,
    )
}

/// A sparse file of `size` bytes starting with `head` (it takes no disk space).
fn sparse(path: &Path, head: &[u8], size: u64) {
    std::fs::write(path, head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(size)
        .unwrap();
}

/// Every command refuses, before any work, an output that is one of its inputs or lies in an
/// input folder, and the input is left as it was.
#[test]
fn no_output_replaces_an_input() {
    let dir = scratch("no-replace");
    let train = dir.join("train");
    copy_tree(&dsa("train"), &train);
    let w = weights("resnet50_small_seed1");
    let image = train.join("cat/cat_0.jpg");
    let image_s = image.to_str().unwrap();
    let train_s = train.to_str().unwrap();
    let p0 = dir.join("p0.json");
    let p1 = dir.join("p1.json");
    std::fs::write(&p0, "{\"a part\": 0}").unwrap();
    std::fs::write(&p1, "{\"a part\": 1}").unwrap();
    let refs = dir.join("refs");
    std::fs::create_dir_all(&refs).unwrap();
    std::fs::copy(&image, refs.join("r.jpg")).unwrap();
    let init = dir.join("init.png");
    image::RgbImage::from_pixel(16, 16, image::Rgb([9, 9, 9]))
        .save(&init)
        .unwrap();
    let (p0_s, p1_s, init_s) = (
        p0.to_str().unwrap(),
        p1.to_str().unwrap(),
        init.to_str().unwrap(),
    );
    let ref_out = refs.join("r.jpg");
    let cases: Vec<(Vec<&str>, &Path, &str)> = vec![
        (
            vec![
                "rank",
                "--weights",
                &w,
                "--layer",
                "-1",
                "--train-dir",
                train_s,
                "-o",
                image_s,
            ],
            &image,
            "inside the input folder --train-dir",
        ),
        (
            vec!["rank", "--merge", p0_s, p1_s, "-o", p0_s],
            &p0,
            "it is the input --merge",
        ),
        (
            vec![
                "patterns",
                "--weights",
                &w,
                "--layer",
                "-1",
                "--filter",
                "0",
                "--init-image",
                init_s,
                "-o",
                init_s,
            ],
            &init,
            "it is the input --init-image",
        ),
        (
            vec![
                "patterns",
                "--weights",
                &w,
                "--layer",
                "-1",
                "--filter",
                "0",
                "--reference-images",
                refs.to_str().unwrap(),
                "-o",
                ref_out.to_str().unwrap(),
            ],
            &ref_out,
            "inside the input folder --reference-images",
        ),
        (
            vec![
                "rank",
                "--weights",
                &w,
                "--layer",
                "-1",
                "--train-dir",
                train_s,
                "-o",
                &w,
            ],
            Path::new(&w),
            "it is the input --weights",
        ),
        (
            vec![
                "report",
                "--weights",
                &w,
                "--train-dir",
                train_s,
                "--test-dir",
                train_s,
                "-o",
                train_s,
            ],
            &image,
            "inside the input folder --train-dir",
        ),
    ];
    for (args, kept, says) in cases {
        let before = std::fs::read(kept).unwrap();
        let msg = stderr_of_failure(&fmv(&args));
        assert!(msg.contains(says), "{args:?}: {msg}");
        assert_eq!(
            std::fs::read(kept).unwrap(),
            before,
            "{args:?} changed {kept:?}"
        );
    }
    // The same input by another spelling (`..`, a link) is the same input.
    let other_spelling = refs.join("../p0.json");
    let msg = stderr_of_failure(&fmv(&[
        "rank",
        "--merge",
        p0_s,
        p1_s,
        "-o",
        other_spelling.to_str().unwrap(),
    ]));
    assert!(msg.contains("it is the input --merge"), "{msg}");
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&p1, &link).unwrap();
    let msg = stderr_of_failure(&fmv(&[
        "rank",
        "--merge",
        p0_s,
        p1_s,
        "-o",
        link.to_str().unwrap(),
    ]));
    assert!(msg.contains("it is the input --merge"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `rank -o` into folders that do not exist yet creates them.
#[test]
fn rank_creates_the_folders_of_its_output() {
    let dir = scratch("rank-deep");
    let out = dir.join("out/deep/r.json");
    let w = weights("resnet50_small_seed1");
    let train = dsa("train");
    let run = fmv(&rank(&w, &train, &["-o", out.to_str().unwrap()]));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["layer"], "layer4.2");
    std::fs::remove_dir_all(&dir).ok();
}

/// Files past the stated bounds are refused from their size, before they are read: a 3 GiB
/// image (with a JPEG's first bytes) past 512 MiB, a 3 GiB JSON past 256 MiB, as `--top-maps`
/// and as a `--merge` part; a device is not a file. Each run stays far below the sizes
/// (unbounded, the image alone took 3.15 GB).
#[test]
fn large_files_and_devices_are_refused_before_they_are_read() {
    let dir = scratch("bounded");
    let w = weights("resnet50_small_seed1");
    let big_jpg = dir.join("big.jpg");
    sparse(
        &big_jpg,
        &[0xff, 0xd8, 0xff, 0xe0, 0, 16, b'J', b'F', b'I', b'F', 0],
        3 << 30,
    );
    let big_json = dir.join("big.json");
    sparse(&big_json, b"{\"cat\": [", 3 << 30);
    let test = dsa("test");
    let test_s = test.to_str().unwrap();
    let merged = dir.join("merged.json");
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec![
                "activations",
                "--weights",
                &w,
                "--layer",
                "-1",
                big_jpg.to_str().unwrap(),
            ],
            "more than the 512.0 MiB",
        ),
        (
            vec![
                "class-sums",
                "--weights",
                &w,
                "--layer",
                "-1",
                "--test-dir",
                test_s,
                "--top-maps",
                big_json.to_str().unwrap(),
            ],
            "more than the 256.0 MiB",
        ),
        (
            vec![
                "rank",
                "--merge",
                big_json.to_str().unwrap(),
                "-o",
                merged.to_str().unwrap(),
            ],
            "more than the 256.0 MiB",
        ),
        (
            vec![
                "class-sums",
                "--weights",
                &w,
                "--layer",
                "-1",
                "--test-dir",
                test_s,
                "--top-maps",
                "/dev/zero",
            ],
            "not a regular file",
        ),
    ];
    for (args, says) in cases {
        let (out, peak) = fmv_with_peak(&args);
        let msg = stderr_of_failure(&out);
        assert!(msg.contains(says), "{args:?}: {msg}");
        assert!(peak < 256 << 20, "{args:?} peaked at {} MiB", peak >> 20);
    }
    // Inside a class folder, the same file is skipped with the reason, and the run goes on.
    let train = dir.join("train");
    copy_tree(&dsa("train"), &train);
    std::fs::rename(&big_jpg, train.join("cat/zz_big.jpg")).unwrap();
    let (out, peak) = fmv_with_peak(&rank(&w, &train, &["--json"]));
    let v = json_of(&out);
    let skipped = v["skipped"].to_string();
    assert!(
        skipped.contains("zz_big.jpg") && skipped.contains("3.0 GiB, more than the 512.0 MiB"),
        "{skipped}"
    );
    assert!(peak < 256 << 20, "rank peaked at {} MiB", peak >> 20);
    std::fs::remove_dir_all(&dir).ok();
}

/// A dangling link, a link loop and a named pipe in a class folder are listed as skipped, with
/// the reason, and `--strict` refuses them.
#[test]
fn links_that_lead_nowhere_are_skipped_and_named() {
    let dir = scratch("links");
    let train = dir.join("train");
    copy_tree(&dsa("train"), &train);
    std::os::unix::fs::symlink(dir.join("gone.jpg"), train.join("cat/dangling.jpg")).unwrap();
    std::os::unix::fs::symlink(train.join("coffee/b.jpg"), train.join("coffee/a.jpg")).unwrap();
    std::os::unix::fs::symlink(train.join("coffee/a.jpg"), train.join("coffee/b.jpg")).unwrap();
    // A named pipe: opening it to look at its first bytes would wait forever.
    let fifo = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(
        train.join("cat/pipe.jpg").as_os_str(),
    ))
    .unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let w = weights("resnet50_small_seed1");
    let v = json_of(&fmv(&rank(&w, &train, &["--json"])));
    let skipped = v["skipped"].as_array().unwrap();
    let reason = |name: &str| {
        skipped
            .iter()
            .find(|s| s["path"].as_str().unwrap().ends_with(name))
            .map(|s| s["reason"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{name} not in {skipped:?}"))
    };
    assert!(reason("cat/dangling.jpg").contains("dangling symbolic link"));
    assert!(reason("coffee/a.jpg").contains("symbolic link loop"));
    assert!(reason("coffee/b.jpg").contains("symbolic link loop"));
    assert!(reason("cat/pipe.jpg").contains("not a regular file"));
    let msg = stderr_of_failure(&fmv(&rank(&w, &train, &["--strict"])));
    assert!(
        msg.contains("--strict") && msg.contains("symbolic link"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// With `RUST_BACKTRACE=1`, as many Rust users have it, a user error is still one message (its
/// line and the causes under it): no backtrace of candle's or fmv's.
#[test]
fn a_user_error_is_one_message_even_with_rust_backtrace() {
    let dir = scratch("one-line");
    let truncated = dir.join("truncated.safetensors");
    let w = weights("resnet50_small_seed1");
    std::fs::write(&truncated, &std::fs::read(&w).unwrap()[..4096]).unwrap();
    let negative = testdata().join("hostile/negative_shape.pth");
    for args in [
        vec!["layers", "--weights", truncated.to_str().unwrap()],
        vec!["layers", "--weights", negative.to_str().unwrap()],
        vec!["layers", "--weights", &w, "--arch", "vgg16"],
        vec![
            "activations",
            "--weights",
            &w,
            "--layer",
            "-1",
            "/nonexistent.png",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_fmv"))
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let msg = stderr_of_failure(&out);
        assert!(msg.starts_with("error: "), "{msg}");
        assert!(
            msg.lines()
                .skip(1)
                .all(|l| l.starts_with("  caused by: ") || l.is_empty()),
            "{args:?}:\n{msg}"
        );
    }
    // The negative shape names the tensor and the number.
    let out = fmv(&["layers", "--weights", negative.to_str().unwrap()]);
    let msg = stderr_of_failure(&out);
    assert!(
        msg.contains("tensor `conv1.weight` cannot be read") && msg.contains("-64"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
