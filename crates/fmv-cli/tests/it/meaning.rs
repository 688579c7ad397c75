//! `fmv exemplars` and `fmv ablate`: their JSON contracts (the numbers torch computed, in
//! `testdata/torch/`), pictures, sharding, resuming after Ctrl-C, and bad inputs.

use std::path::Path;

use serde_json::Value;

use crate::{fmv, json_of, scratch, stderr_of_failure, testdata, weights};

fn dsa(split: &str) -> String {
    testdata()
        .join("reference/data/dsA")
        .join(split)
        .display()
        .to_string()
}

fn torch_golden(name: &str) -> Value {
    let text = std::fs::read_to_string(testdata().join("torch").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    k.sort_unstable();
    k
}

#[test]
fn exemplars_json_has_the_contracts_shape_and_torchs_images() {
    let w = weights("vgg16_small_seed1");
    let (train, test) = (dsa("train"), dsa("test"));
    let v = json_of(&fmv(&[
        "exemplars",
        "--weights",
        &w,
        "--layer",
        "features.28",
        "--filters",
        "3,17",
        "--images",
        &train,
        &test,
        "-k",
        "4",
        "--json",
    ]));
    assert_eq!(
        keys(&v),
        [
            "by",
            "images",
            "k",
            "layer",
            "map_size",
            "maps",
            "preprocess",
            "skipped",
            "weights"
        ]
    );
    assert_eq!(
        (v["layer"].as_str(), v["by"].as_str()),
        (Some("features.28"), Some("mean"))
    );
    assert_eq!((v["k"].as_u64(), v["images"].as_u64()), (Some(4), Some(32)));
    assert_eq!(v["preprocess"], "imagenet");
    let golden = &torch_golden("exemplars.json")[0]["expected"]["maps"];
    for (m, filter) in v["maps"].as_array().unwrap().iter().zip([3, 17]) {
        assert_eq!(m["filter"], filter);
        let top = m["top"].as_array().unwrap();
        assert_eq!(top.len(), 4);
        assert_eq!(keys(&top[0]), ["argmax", "max", "mean", "path"]);
        let want = &golden[filter]["top"];
        // The three first images are torch's (their means are well apart on these maps).
        for (e, t) in top.iter().zip(want.as_array().unwrap()).take(3) {
            let path = e["path"].as_str().unwrap();
            assert!(
                path.ends_with(t["path"].as_str().unwrap()),
                "{path} vs {}",
                t["path"]
            );
            let (a, b) = (e["mean"].as_f64().unwrap(), t["mean"].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn exemplars_write_a_picture_per_map_and_shards_merge_to_one_run() {
    let dir = scratch("exemplars-shards");
    let w = weights("resnet50_small_seed1");
    let (train, test) = (dsa("train"), dsa("test"));
    let all = json_of(&fmv(&[
        "exemplars",
        "--weights",
        &w,
        "--layer",
        "layer4.1",
        "--all",
        "--images",
        &train,
        &test,
        "-k",
        "3",
        "--json",
    ]));
    assert_eq!(all["maps"].as_array().unwrap().len(), 256);
    let base = [
        "exemplars",
        "--weights",
        &w,
        "--layer",
        "layer4.1",
        "--filters",
        "0,7,113,255",
        "--images",
        &train,
        &test,
        "-k",
        "3",
    ];
    let out = dir.join("whole");
    let mut args = base.to_vec();
    args.extend(["--json", "--crops", "-o", out.to_str().unwrap()]);
    let whole = json_of(&fmv(&args));
    // The same lists as with every map.
    for (m, f) in whole["maps"]
        .as_array()
        .unwrap()
        .iter()
        .zip([0, 7, 113, 255])
    {
        assert_eq!(m, &all["maps"][f]);
    }
    let written: Value =
        serde_json::from_slice(&std::fs::read(out.join("exemplars.json")).unwrap()).unwrap();
    assert_eq!(written, whole);
    for f in [0, 113, 255] {
        let png = image::open(out.join(format!("filter-{f}.png"))).unwrap();
        assert!(png.width() > 300 && png.height() > 150, "filter {f}");
        // A row of 3 crops.
        let crops = image::open(out.join(format!("filter-{f}-crops.png"))).unwrap();
        assert!(
            crops.width() > 3 * 128 && crops.height() < 200,
            "filter {f}"
        );
    }
    assert!(!out.join("exemplars.partial.json").exists());
    // Two shards, then merged (with the network, the pictures too).
    let mut parts = Vec::new();
    for i in 0..2 {
        let part = dir.join(format!("part-{i}.json"));
        let mut args = base.to_vec();
        let shard = format!("{i}/2");
        args.extend(["--shard", &shard, "-o", part.to_str().unwrap()]);
        let o = fmv(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        parts.push(part.display().to_string());
    }
    let merged_dir = dir.join("merged");
    let merged = json_of(&fmv(&[
        "exemplars",
        "--weights",
        &w,
        "--merge",
        &parts[0],
        &parts[1],
        "--json",
        "-o",
        merged_dir.to_str().unwrap(),
    ]));
    assert_eq!(merged, whole);
    assert!(merged_dir.join("filter-7.png").exists());
    // Without the network, the JSON only, and a note.
    let o = fmv(&["exemplars", "--merge", &parts[1], &parts[0], "--json"]);
    assert_eq!(json_of(&o), whole);
    let e = stderr_of_failure(&fmv(&[
        "exemplars",
        "--merge",
        &parts[0],
        &parts[0],
        "--json",
    ]));
    assert!(e.contains("shard 0/2 is given twice"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Ctrl-C keeps the images scanned (exit code 130), and the same command resumes from them
/// to the result of an uninterrupted run.
#[cfg(unix)]
#[test]
fn ctrl_c_keeps_the_images_scanned_and_the_run_resumes() {
    let dir = scratch("exemplars-ctrl-c");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for copy in 0..5 {
        for split in ["train", "test"] {
            for class in ["cat", "coffee"] {
                let from = Path::new(&dsa(split)).join(class);
                for f in std::fs::read_dir(&from).unwrap() {
                    let f = f.unwrap().path();
                    let name = format!(
                        "{copy}_{split}_{}",
                        f.file_name().unwrap().to_string_lossy()
                    );
                    std::fs::copy(&f, images.join(name)).unwrap();
                }
            }
        }
    }
    let w = weights("vgg16_small_seed1");
    let out = dir.join("out");
    let partial = out.join("exemplars.partial.json");
    let images = images.display().to_string();
    let args = [
        "exemplars",
        "--weights",
        &w,
        "--layer",
        "features.28",
        "--filters",
        "1,2,3",
        "--images",
        &images,
        "--batch-size",
        "1",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ];
    let whole = json_of(&fmv(&[
        "exemplars",
        "--weights",
        &w,
        "--layer",
        "features.28",
        "--filters",
        "1,2,3",
        "--images",
        &images,
        "--json",
    ]));
    let stopped = crate::interrupt_once_saved(&args, &partial);
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: the images scanned so far are in"),
        "{stderr}"
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&partial).unwrap()).unwrap();
    let done = saved["done"].as_u64().unwrap();
    assert!(done > 0 && done < 160, "{done} of 160 images were scanned");
    assert_eq!(
        saved["maps"][0]["top"].as_array().unwrap().len(),
        9.min(done as usize)
    );
    let resumed = fmv(&args);
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("resuming from"));
    assert_eq!(json_of(&resumed), whole);
    assert!(!partial.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn exemplars_refuse_bad_requests_naming_the_flag() {
    let w = weights("vgg16_small_seed1");
    let train = dsa("train");
    let run = |extra: &[&str]| {
        let mut args = vec!["exemplars", "--weights", &w, "--images", &train];
        args.extend(extra);
        stderr_of_failure(&fmv(&args))
    };
    let e = run(&["--layer", "features.28"]);
    assert!(
        e.contains("give the maps with --filters K,… or every map with --all"),
        "{e}"
    );
    let e = run(&["--layer", "features.28", "--filters", "64"]);
    assert!(e.contains("64") && e.contains("features.28"), "{e}");
    let e = run(&["--layer", "features.28", "--filters", "3,3"]);
    assert!(
        e.contains("invalid --filters: channel 3 is listed twice"),
        "{e}"
    );
    let e = run(&["--layer", "features.28", "--all", "-k", "0"]);
    assert!(e.contains("invalid -k: must be at least 1"), "{e}");
    let e = run(&["--layer", "logits", "--all"]);
    assert!(
        e.contains("invalid --layer: `logits` holds the network's outputs"),
        "{e}"
    );
    let e = run(&["--layer", "features.28", "--all", "--shard", "0/2"]);
    assert!(e.contains("--shard needs -o FILE"), "{e}");
    let out = Path::new(&train).join("cat").display().to_string();
    let e = run(&["--layer", "features.28", "--all", "-o", &out]);
    assert!(e.contains("lies inside the input folder --images"), "{e}");
}

#[test]
fn ablate_json_equals_torchs_forward_hook() {
    let test = dsa("test");
    for case in torch_golden("ablation.json")["ablate"].as_array().unwrap() {
        let w = weights(case["net"].as_str().unwrap());
        let dir = scratch(&format!("ablate-{}", case["net"].as_str().unwrap()));
        let maps = dir.join("maps.json");
        std::fs::write(&maps, case["maps"].to_string()).unwrap();
        let (sets, seed) = (case["random_sets"].to_string(), case["seed"].to_string());
        let mut args = vec![
            "ablate",
            "--weights",
            &w,
            "--layer",
            case["layer"].as_str().unwrap(),
            "--test-dir",
            &test,
            "--top-maps",
            maps.to_str().unwrap(),
            "--random-sets",
            &sets,
            "--seed",
            &seed,
            "--json",
        ];
        if case["each"].as_bool().unwrap() {
            args.push("--each");
        }
        let v = json_of(&fmv(&args));
        let want = &case["expected"];
        assert_eq!(
            keys(&v),
            [
                "accuracy",
                "classes",
                "layer",
                "preprocess",
                "seed",
                "skipped",
                "weights"
            ]
        );
        assert_eq!(v["accuracy"], want["accuracy"]);
        for (class, c) in v["classes"].as_object().unwrap() {
            let w = &want["classes"][class];
            let mut expected_keys = vec![
                "accuracy_after",
                "drop",
                "images",
                "logit_after",
                "logit_before",
                "maps",
                "random",
                "z",
            ];
            if case["each"].as_bool().unwrap() {
                expected_keys.insert(2, "each");
            }
            assert_eq!(keys(c), expected_keys);
            assert_eq!(keys(&c["random"]), ["mean_drop", "sd_drop", "sets"]);
            assert_eq!((&c["maps"], &c["images"]), (&w["maps"], &w["images"]));
            assert_eq!(c["accuracy_after"], w["accuracy_after"]);
            let scale = w["logit_before"].as_f64().unwrap().abs().max(1.0);
            for k in ["logit_before", "logit_after", "drop"] {
                let (a, b) = (c[k].as_f64().unwrap(), w[k].as_f64().unwrap());
                assert!((a - b).abs() <= 1e-4 * scale, "{class} {k}: {a} vs {b}");
            }
            for k in ["mean_drop", "sd_drop"] {
                let (a, b) = (
                    c["random"][k].as_f64().unwrap(),
                    w["random"][k].as_f64().unwrap(),
                );
                assert!((a - b).abs() <= 1e-4 * scale, "{class} {k}: {a} vs {b}");
            }
            assert_eq!(c["random"]["sets"], w["random"]["sets"]);
            let (z, zw) = (c["z"].as_f64().unwrap(), w["z"].as_f64().unwrap());
            assert!(
                (z - zw).abs() <= 1e-3 * zw.abs().max(1.0),
                "{class} z: {z} vs {zw}"
            );
            if case["each"].as_bool().unwrap() {
                for (e, t) in c["each"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(w["each"].as_array().unwrap())
                {
                    assert_eq!(e["filter"], t["filter"]);
                    let (a, b) = (e["drop"].as_f64().unwrap(), t["drop"].as_f64().unwrap());
                    assert!((a - b).abs() <= 1e-4 * scale, "{class} each: {a} vs {b}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn ablate_reads_a_ranking_and_names_what_it_cannot_use() {
    let dir = scratch("ablate-rank");
    let w = weights("resnet50_small_seed1");
    let (train, test) = (dsa("train"), dsa("test"));
    let rank = dir.join("rank.json");
    let o = fmv(&[
        "rank",
        "--weights",
        &w,
        "--layer",
        "layer4.1",
        "--train-dir",
        &train,
        "-o",
        rank.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ranking: Value = serde_json::from_slice(&std::fs::read(&rank).unwrap()).unwrap();
    let v = json_of(&fmv(&[
        "ablate",
        "--weights",
        &w,
        "--layer",
        "layer4.1",
        "--test-dir",
        &test,
        "--top-maps",
        rank.to_str().unwrap(),
        "--random-sets",
        "3",
        "--json",
    ]));
    for class in ["cat", "coffee"] {
        assert_eq!(
            v["classes"][class]["maps"], ranking["classes"][class],
            "{class}"
        );
        assert!(v["classes"][class].get("each").is_none());
    }
    // A ranking of another layer is refused; labels must name the test classes.
    let e = stderr_of_failure(&fmv(&[
        "ablate",
        "--weights",
        &w,
        "--layer",
        "layer4.0",
        "--test-dir",
        &test,
        "--top-maps",
        rank.to_str().unwrap(),
    ]));
    assert!(e.contains("ranks the maps of `layer4.1`"), "{e}");
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "dog\ncat\n").unwrap();
    let e = stderr_of_failure(&fmv(&[
        "ablate",
        "--weights",
        &w,
        "--layer",
        "layer4.1",
        "--test-dir",
        &test,
        "--filters",
        "3",
        "--labels",
        labels.to_str().unwrap(),
    ]));
    assert!(
        e.contains("class `coffee` of the test folder is none of the labels (dog, cat)"),
        "{e}"
    );
    assert!(e.contains("--labels"), "{e}");
    let e = stderr_of_failure(&fmv(&[
        "ablate",
        "--weights",
        &w,
        "--layer",
        "logits",
        "--test-dir",
        &test,
        "--filters",
        "0",
    ]));
    assert!(
        e.contains("invalid --layer: `logits` is the network's last layer"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
