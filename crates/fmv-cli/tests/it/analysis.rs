//! `fmv rank`, `fmv overlay` and `fmv class-sums`: their JSON contracts, sharding, and every bad
//! input named in the message.

use std::path::Path;

use serde_json::Value;

use crate::{copy_tree, fmv, json_of, scratch, stderr_of_failure, testdata, weights};

fn dsa(split: &str) -> String {
    testdata()
        .join("reference/data/dsA")
        .join(split)
        .display()
        .to_string()
}

fn golden(name: &str) -> Value {
    let text =
        std::fs::read_to_string(testdata().join(format!("reference/golden/{name}__dsA.json")))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rank_args<'a>(w: &'a str, train: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "rank",
        "--weights",
        w,
        "--layer",
        "12",
        "--train-dir",
        train,
        "--preprocess",
        "original",
        "--n-each-img",
        "5",
        "--n-each-class",
        "5",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn rank_json_is_the_original_result() {
    let w = weights("vgg16_small_seed1");
    let train = dsa("train");
    let v = json_of(&fmv(&rank_args(&w, &train, &["--json"])));
    let g = golden("vgg16_small_seed1");
    let run = g["find_unique_filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["call"]["layer"] == 12 && r["call"]["n_each_img"] == 5)
        .unwrap();
    assert_eq!(
        v["classes"],
        run["replica_other_tie_orders"]["desc_then_index"]["unique"]
    );
    assert_eq!(v["layer"], "features.28");
    assert_eq!(v["preprocess"], "original");
    assert_eq!(v["images"], serde_json::json!({"cat": 12, "coffee": 12}));
    assert_eq!(v["counts"]["cat"].as_array().unwrap().len(), 64);
    for (ch, n) in run["frequency_counts"]["coffee"].as_object().unwrap() {
        assert_eq!(&v["counts"]["coffee"][ch.parse::<usize>().unwrap()], n);
    }
    assert_eq!(v["skipped"], serde_json::json!([]));
    assert_eq!(v["mean_activation"]["cat"].as_array().unwrap().len(), 64);
}

#[test]
fn shards_merge_into_exactly_one_run() {
    let w = weights("vgg16_small_seed1");
    let dir = scratch("shards");
    // With a file that is no image: the listing leaves it out for every shard, and the merged
    // result lists it once, as one run does.
    let train_dir = dir.join("train");
    copy_tree(Path::new(&dsa("train")), &train_dir);
    std::fs::write(train_dir.join("cat/notes.txt"), "not an image").unwrap();
    let train = train_dir.display().to_string();
    let whole = json_of(&fmv(&rank_args(&w, &train, &["--json"])));
    assert_eq!(
        whole["skipped"].as_array().unwrap().len(),
        1,
        "{}",
        whole["skipped"]
    );
    let mut parts = Vec::new();
    for i in 0..3 {
        let part = dir.join(format!("part-{i}.json")).display().to_string();
        let shard = format!("{i}/3");
        let out = fmv(&rank_args(&w, &train, &["--shard", &shard, "-o", &part]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parts.push(part);
    }
    // In another order, and as one command.
    let mut merge = vec!["rank", "--json", "--merge"];
    merge.extend(parts.iter().rev().map(String::as_str));
    let merged = json_of(&fmv(&merge));
    for key in [
        "layer",
        "preprocess",
        "classes",
        "counts",
        "images",
        "top_before_filter",
        "skipped",
    ] {
        assert_eq!(merged[key], whole[key], "{key}");
    }
    // Parts of different rankings are refused, and so is a shard given twice.
    let other = dir.join("other.json").display().to_string();
    let out = fmv(&[
        "rank",
        "--weights",
        &w,
        "--layer",
        "12",
        "--train-dir",
        &train,
        "--preprocess",
        "original",
        "--shard",
        "0/3",
        "-o",
        &other,
    ]);
    assert!(out.status.success());
    let msg = stderr_of_failure(&fmv(&["rank", "--merge", &other, &parts[1]]));
    assert!(
        msg.contains("(n_each_img, n_each_class)") && msg.contains("only parts of one ranking"),
        "{msg}"
    );
    let msg = stderr_of_failure(&fmv(&["rank", "--merge", &parts[0], &parts[0]]));
    assert!(msg.contains("shard 0/3 is given twice"), "{msg}");
    let msg = stderr_of_failure(&fmv(&rank_args(
        &w,
        &train,
        &["--shard", "3/3", "-o", &other],
    )));
    assert!(msg.contains("need 0 <= I < N"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stray_and_corrupt_files_are_skipped_and_named() {
    let dir = scratch("stray");
    let train = dir.join("train");
    copy_tree(Path::new(&dsa("train")), &train);
    std::fs::write(train.join("cat/notes.txt"), "a note").unwrap();
    std::fs::write(
        train.join("coffee/.DS_Store"),
        [0u8, 0, 0, 1, b'B', b'u', b'd', b'1'],
    )
    .unwrap();
    let w = weights("vgg16_small_seed1");
    let clean = json_of(&fmv(&rank_args(&w, &dsa("train"), &["--json"])));
    let out = fmv(&rank_args(&w, train.to_str().unwrap(), &["--json"]));
    let with_stray = json_of(&out);
    assert_eq!(with_stray["classes"], clean["classes"]);
    assert_eq!(with_stray["counts"], clean["counts"]);
    let skipped: Vec<&str> = with_stray["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert!(
        skipped.iter().any(|p| p.ends_with("cat/notes.txt"))
            && skipped.iter().any(|p| p.ends_with(".DS_Store")),
        "{skipped:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: skipping")
            && stderr.contains("notes.txt")
            && stderr.contains(".DS_Store"),
        "{stderr}"
    );

    // A truncated JPEG looks like an image but cannot be decoded: skipped with the reason...
    let jpg = std::fs::read(train.join("cat/cat_0.jpg")).unwrap();
    std::fs::write(train.join("cat/cat_0.jpg"), &jpg[..jpg.len() / 3]).unwrap();
    let v = json_of(&fmv(&rank_args(&w, train.to_str().unwrap(), &["--json"])));
    assert_eq!(v["images"]["cat"], 11);
    let entry = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"].as_str().unwrap().ends_with("cat_0.jpg"))
        .unwrap();
    assert!(
        entry["reason"].as_str().unwrap().contains("truncated"),
        "{entry}"
    );
    // ...and an error under --strict.
    let msg = stderr_of_failure(&fmv(&rank_args(&w, train.to_str().unwrap(), &["--strict"])));
    assert!(
        msg.contains("--strict") && (msg.contains("notes.txt") || msg.contains("cat_0.jpg")),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn empty_class_and_missing_root_are_errors_naming_the_folder() {
    let dir = scratch("empty");
    let train = dir.join("train");
    copy_tree(Path::new(&dsa("train")), &train);
    std::fs::create_dir_all(train.join("dog")).unwrap();
    std::fs::write(train.join("dog/readme.txt"), "no images here").unwrap();
    let w = weights("vgg16_small_seed1");
    let msg = stderr_of_failure(&fmv(&rank_args(&w, train.to_str().unwrap(), &[])));
    assert!(
        msg.contains("class folder") && msg.contains("dog") && msg.contains("no image files"),
        "{msg}"
    );
    let missing = dir.join("nowhere");
    let msg = stderr_of_failure(&fmv(&rank_args(&w, missing.to_str().unwrap(), &[])));
    assert!(
        msg.contains("nowhere") && msg.contains("not a folder"),
        "{msg}"
    );
    let bare = dir.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let msg = stderr_of_failure(&fmv(&rank_args(&w, bare.to_str().unwrap(), &[])));
    assert!(
        msg.contains("bare") && msg.contains("no class sub-folders"),
        "{msg}"
    );
    let msg = stderr_of_failure(&fmv(&rank_args(&w, &dsa("train"), &["--classes", "cat"])));
    assert!(msg.contains("found 1 class(es): cat"), "{msg}");
    let msg = stderr_of_failure(&fmv(&rank_args(
        &w,
        &dsa("train"),
        &["--classes", "cat,dog"],
    )));
    assert!(
        msg.contains("no class `dog`") && msg.contains("cat, coffee"),
        "{msg}"
    );
    let msg = stderr_of_failure(&fmv(&rank_args(
        &w,
        &dsa("train"),
        &["--classes", "cat,coffee,cat"],
    )));
    assert!(msg.contains("class `cat` is listed twice"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn overlay_writes_one_png_per_image_with_its_mean() {
    let dir = scratch("overlay");
    let out = dir.join("out");
    let w = weights("resnet50_small_seed1");
    let cat = dsa("test/cat");
    let v = json_of(&fmv(&[
        "overlay",
        "--weights",
        &w,
        "--layer",
        "-2",
        "--filters",
        "113",
        "--images",
        &cat,
        "-o",
        out.to_str().unwrap(),
        "--preprocess",
        "original",
        "--batch-size",
        "1",
        "--json",
    ]));
    assert_eq!(v["layer"], "layer4.1");
    assert_eq!(v["filters"], serde_json::json!([113]));
    let g = golden("resnet50_small_seed1");
    let want = g["one_feature_map_N_images"][1]["output"]
        .as_array()
        .unwrap();
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 4);
    for (img, w) in images.iter().zip(want) {
        let (a, b) = (img["mean"].as_f64().unwrap(), w.as_f64().unwrap());
        assert!((a - b).abs() <= 1e-4 * 2.5, "{a} vs {b}");
        let png = image::open(img["overlay"].as_str().unwrap()).unwrap();
        assert_eq!((png.width(), png.height()), (224, 224));
    }
    // Several filters: the sum of their means.
    let v = json_of(&fmv(&[
        "overlay",
        "--weights",
        &w,
        "--layer",
        "-2",
        "--filters",
        "113,87",
        "--images",
        &cat,
        "-o",
        out.to_str().unwrap(),
        "--preprocess",
        "original",
        "--json",
    ]));
    let m = g["images"]["data/dsA/test/cat/cat_0.jpg"]["mean_activations"]["-2"]
        .as_array()
        .unwrap();
    let want = m[113].as_f64().unwrap() + m[87].as_f64().unwrap();
    assert!((v["images"][0]["mean"].as_f64().unwrap() - want).abs() < 1e-3);
    // A channel the layer lacks, and an output folder that cannot exist.
    // `fmv overlay ... --filters F --images IN -o OUT`, which must fail; its stderr.
    let fail = |filters: &str, images: &str, out: &str| {
        stderr_of_failure(&fmv(&[
            "overlay",
            "--weights",
            &w,
            "--layer",
            "-2",
            "--filters",
            filters,
            "--images",
            images,
            "-o",
            out,
        ]))
    };
    let msg = fail("256", &cat, out.to_str().unwrap());
    assert!(
        msg.contains("channel 256 does not exist in layer `layer4.1`, which has 256 channels"),
        "{msg}"
    );
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let msg = fail("1", &cat, file.join("sub").to_str().unwrap());
    assert!(
        msg.contains("cannot create output folder") && msg.contains("a-file/sub"),
        "{msg}"
    );
    let msg = fail("1", &cat, "/proc/fmv-overlays");
    assert!(msg.contains("/proc/fmv-overlays"), "{msg}");
    // Overlays written over the input images themselves: refused, and the inputs kept.
    let own = dir.join("own");
    std::fs::create_dir_all(&own).unwrap();
    let input = own.join("x.png");
    image::RgbImage::from_pixel(32, 24, image::Rgb([200, 30, 30]))
        .save(&input)
        .unwrap();
    let before = std::fs::read(&input).unwrap();
    let own_dir = own.to_str().unwrap();
    let msg = fail("1", own_dir, own_dir);
    assert!(
        msg.contains("inside the input folder") && msg.contains("own"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&input).unwrap(), before);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn class_sums_take_rank_json_or_a_plain_dict() {
    let dir = scratch("sums");
    let w = weights("resnet50_small_seed1");
    let g = golden("resnet50_small_seed1");
    let run = &g["sum_top_feature_maps_by_class"][0];
    let plain = dir.join("plain.json");
    std::fs::write(&plain, run["call"]["top_feature_maps_dict"].to_string()).unwrap();
    let test = dsa("test");
    let base = [
        "class-sums",
        "--weights",
        &w,
        "--layer",
        "-2",
        "--test-dir",
        &test,
        "--preprocess",
        "original",
        "--json",
    ];
    let mut args = base.to_vec();
    args.extend(["--top-maps", plain.to_str().unwrap()]);
    let v = json_of(&fmv(&args));
    assert_eq!(v["layer"], "layer4.1");
    for tc in ["cat", "coffee"] {
        for k in ["cat", "coffee"] {
            let got = v["sums"][tc][k].as_array().unwrap();
            let want = run["output"][tc][k].as_array().unwrap();
            for (a, b) in got.iter().zip(want) {
                assert!(
                    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-4 * 6.0 * 2.5,
                    "{tc} {k}"
                );
            }
        }
    }
    assert_eq!(v["images"]["cat"].as_array().unwrap().len(), 4);
    assert_eq!(v["separability"]["cat"], 1.0);

    // The JSON of `fmv rank` works too, and --train-dir ranks on the fly with the same result.
    let rank = dir.join("rank.json");
    let out = fmv(&[
        "rank",
        "--weights",
        &w,
        "--layer",
        "-2",
        "--train-dir",
        &dsa("train"),
        "--preprocess",
        "original",
        "-o",
        rank.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let mut args = base.to_vec();
    args.extend(["--top-maps", rank.to_str().unwrap()]);
    let from_file = json_of(&fmv(&args));
    let mut args = base.to_vec();
    let train = dsa("train");
    args.extend(["--train-dir", train.as_str()]);
    let on_the_fly = json_of(&fmv(&args));
    assert_eq!(from_file["sums"], on_the_fly["sums"]);

    // A ranking is tied to what made it: another layer or other weights are refused, naming
    // both; another preprocessing, or a ranking that does not record its weights, is used
    // with a warning naming both.
    let ranked: Value = serde_json::from_slice(&std::fs::read(&rank).unwrap()).unwrap();
    assert_eq!(ranked["layer"], "layer4.1");
    let with_top_maps = |extra: &[&str], file: &Path| {
        let mut args = base.to_vec();
        args.extend(extra);
        args.extend(["--top-maps", file.to_str().unwrap()]);
        fmv(&args)
    };
    let msg = {
        let mut args: Vec<&str> = base
            .iter()
            .map(|a| if *a == "-2" { "-1" } else { a })
            .collect();
        args.extend(["--top-maps", rank.to_str().unwrap()]);
        stderr_of_failure(&fmv(&args))
    };
    assert!(
        msg.contains("ranks the maps of `layer4.1`") && msg.contains("reads `layer4.2`"),
        "{msg}"
    );
    let edited = dir.join("edited.json");
    let mut other_weights = ranked.clone();
    other_weights["weights"] = "0".repeat(64).into();
    std::fs::write(&edited, other_weights.to_string()).unwrap();
    let msg = stderr_of_failure(&with_top_maps(&[], &edited));
    assert!(msg.contains("ranked with other weights"), "{msg}");
    let mut other_preprocess = ranked.clone();
    other_preprocess["preprocess"] = "imagenet".into();
    std::fs::write(&edited, other_preprocess.to_string()).unwrap();
    let out = with_top_maps(&[], &edited);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("with the preprocessing `imagenet`") && stderr.contains("uses `original`"),
        "{stderr}"
    );
    let mut unknown = ranked.clone();
    unknown.as_object_mut().unwrap().remove("weights");
    std::fs::write(&edited, unknown.to_string()).unwrap();
    let out = with_top_maps(&[], &edited);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("does not record the weights"),
        "{stderr}"
    );

    // An empty list sums to 0; a channel the layer lacks is an error.
    std::fs::write(&plain, r#"{"cat": [], "coffee": [47]}"#).unwrap();
    let mut args = base.to_vec();
    args.extend(["--top-maps", plain.to_str().unwrap()]);
    let v = json_of(&fmv(&args));
    assert!(
        v["sums"]["coffee"]["cat"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.as_f64() == Some(0.0))
    );
    // A class the test folder lacks is summed, with a warning and no ROC AUC.
    std::fs::write(&plain, r#"{"cat": [1], "dog": [47]}"#).unwrap();
    let out = fmv(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: class `dog` of the maps is no class of")
            && stderr.contains("classes there: cat, coffee"),
        "{stderr}"
    );
    assert!(!stderr.contains("class `cat`"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["separability"]["dog"].is_null(), "{}", v["separability"]);
    std::fs::write(&plain, r#"{"cat": [300]}"#).unwrap();
    let msg = stderr_of_failure(&fmv(&args));
    assert!(msg.contains("channel 300 does not exist"), "{msg}");
    std::fs::write(&plain, r#"{"cat": "oops"}"#).unwrap();
    let msg = stderr_of_failure(&fmv(&args));
    assert!(
        msg.contains("`cat` must be a list of channel indices"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn n_each_img_must_leave_maps_out_of_each_images_top() {
    // resnet50_small's `layer4.1` has 256 channels: with all of them in every image's top, no
    // map could be unique, and the original silently finds none.
    let e = stderr_of_failure(&fmv(&[
        "rank",
        "--weights",
        &weights("resnet50_small_seed1"),
        "--layer",
        "-2",
        "--train-dir",
        &dsa("train"),
        "--n-each-img",
        "256",
    ]));
    assert!(
        e.contains("invalid --n-each-img: 256 is not below the 256 channels of `layer4.1`"),
        "{e}"
    );
}

/// Ctrl-C stops a ranking at the next batch with its counts saved (exit code 130), and the
/// same command then resumes from them to the result of an uninterrupted run.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_ranking_which_then_resumes_to_the_same_result() {
    let dir = scratch("rank-ctrl-c");
    // Many small batches, so that the signal arrives while the run is under way.
    let train = dir.join("train");
    for copy in 0..6 {
        for class in ["cat", "coffee"] {
            let from = Path::new(&dsa("train")).join(class);
            for f in std::fs::read_dir(&from).unwrap() {
                let f = f.unwrap().path();
                let name = format!("{copy}_{}", f.file_name().unwrap().to_string_lossy());
                std::fs::create_dir_all(train.join(class)).unwrap();
                std::fs::copy(&f, train.join(class).join(name)).unwrap();
            }
        }
    }
    let (w, train) = (weights("vgg16_small_seed1"), train.display().to_string());
    let out = dir.join("rank.json");
    let partial = dir.join("rank.json.partial.json");
    let args = rank_args(
        &w,
        &train,
        &["--batch-size", "1", "--json", "-o", out.to_str().unwrap()],
    );
    let whole = json_of(&fmv(&rank_args(&w, &train, &["--json"])));
    let stopped = crate::interrupt_once_saved(&args, &partial);
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: the counts so far are in"),
        "{stderr}"
    );
    assert!(!out.exists(), "no result is written for a stopped run");
    let saved: Value = serde_json::from_slice(&std::fs::read(&partial).unwrap()).unwrap();
    let done: u64 = saved["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["n_done"].as_u64().unwrap())
        .sum();
    assert!(done > 0 && done < 144, "{done} of 144 images were counted");
    // The same command resumes and ends as an uninterrupted run.
    let resumed = fmv(&args);
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("resuming from"));
    assert_eq!(json_of(&resumed), whole);
    assert!(!partial.exists());
    std::fs::remove_dir_all(&dir).ok();
}
