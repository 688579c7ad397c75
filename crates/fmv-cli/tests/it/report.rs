//! `fmv report`: the demo report end to end, its files and JSON, and the page in a real
//! browser (headless Chromium).

use std::path::{Path, PathBuf};
use std::process::Command;

use fmv::render::{Tolerance, image_difference};
use serde_json::Value;

use super::{fmv, scratch, stderr_of_failure, weights};

/// The section ids the page promises.
const SECTIONS: [&str; 8] = [
    "rank",
    "patterns",
    "top-maps",
    "one-map",
    "summed-maps",
    "class-sums",
    "exemplars",
    "ablation",
];

/// Runs the demo report once for every test of this file (it takes a few seconds).
fn demo_report() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("report-demo");
        let out = fmv(&[
            "report",
            "-o",
            dir.to_str().unwrap(),
            "--pattern-steps",
            "48",
        ]);
        assert!(
            out.status.success(),
            "fmv report failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every `src="..."` and `href="..."` of the page.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn demo_report_has_every_section_and_only_relative_links_that_exist() {
    let dir = demo_report();
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for id in SECTIONS {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "no section {id}"
        );
    }
    assert!(!html.contains("<script"), "the page needs no script");
    let links = links(&html);
    assert!(links.iter().filter(|l| l.ends_with(".png")).count() >= 10);
    for l in &links {
        if l.starts_with('#') {
            continue;
        }
        assert!(
            !l.contains("://") && !l.starts_with('/'),
            "non-relative link {l}"
        );
        assert!(
            dir.join(l).is_file(),
            "the page links {l}, which does not exist"
        );
    }
    let imgs = html.matches("<img ").count();
    let with_alt = html.matches("<img src=").count();
    assert_eq!(imgs, with_alt);
    for piece in html.split("<img ").skip(1) {
        let tag = &piece[..piece.find('>').unwrap()];
        let alt = tag
            .split("alt=\"")
            .nth(1)
            .expect("every image has alt text");
        assert!(alt.len() > 20, "alt text too short: {tag}");
    }
}

#[test]
fn demo_results_and_manifest_have_the_documented_shapes() {
    let dir = demo_report();
    let results = read_json(&dir.join("results.json"));
    let manifest = read_json(&dir.join("manifest.json"));
    // The same shapes as `fmv rank --json` and `fmv class-sums --json`.
    let classes = results["rank"]["classes"].as_object().unwrap();
    assert_eq!(
        classes.keys().collect::<Vec<_>>(),
        ["blobs", "checkerboard", "rings", "stripes"]
    );
    assert_eq!(results["rank"]["layer"], "layer4");
    assert!(results["class_sums"]["separability"].is_object());
    for key in ["patterns", "top_maps", "one_map", "summed_maps"] {
        assert!(!results[key].is_null(), "results.json lacks {key}");
    }
    for p in results["patterns"]["maps"].as_array().unwrap() {
        assert!(dir.join(p["file"].as_str().unwrap()).is_file());
    }
    // The demo network's predictions, named with its classes.
    for t in results["top_maps"].as_array().unwrap() {
        let label = t["predicted"]["label"].as_str().unwrap();
        assert!(classes.contains_key(label), "{label}");
    }
    assert_eq!(manifest["demo"], true);
    assert_eq!(manifest["weights"]["arch"], "resnet-custom");
    assert_eq!(manifest["weights"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["preprocess"], "original,size=96x96");
    let stages = manifest["timings_s"].as_array().unwrap();
    assert_eq!(stages.len(), 8);
    // Exemplars and ablation in the shapes of `fmv exemplars --json` and `fmv ablate --json`.
    let ex = &results["exemplars"];
    assert_eq!(
        (ex["k"].as_u64(), ex["by"].as_str()),
        (Some(9), Some("mean"))
    );
    assert_eq!(ex["images"], 120);
    for g in results["exemplar_grids"].as_array().unwrap() {
        assert!(dir.join(g["grid"].as_str().unwrap()).is_file());
    }
    let ablation = results["ablation"]["classes"].as_object().unwrap();
    assert_eq!(
        ablation.keys().collect::<Vec<_>>(),
        classes.keys().collect::<Vec<_>>()
    );
    for (class, a) in ablation {
        assert_eq!(a["maps"], results["rank"]["classes"][class]);
        assert_eq!(
            a["each"].as_array().unwrap().len(),
            a["maps"].as_array().unwrap().len()
        );
        assert_eq!(a["random"]["sets"], 20);
    }
}

/// Chromium, if this machine has it: `FMV_CHROMIUM`, else the usual names on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FMV_CHROMIUM") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Listens for script errors, failed loads and `console.error` from the start, and on load
/// writes what it found into a `<pre id="fmv-check">` that `--dump-dom` prints.
const PROBE: &str = r#"<script>
window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push(e.message||('failed to load '+(e.target&&(e.target.src||e.target.href))))},true);
var __ce=console.error;console.error=function(){window.__errors.push(Array.from(arguments).join(' '));__ce.apply(console,arguments)};
window.addEventListener('load',function(){
var imgs=Array.from(document.images);
var r={ids:Array.from(document.querySelectorAll('section[id]')).map(function(s){return s.id}),
images:imgs.length,
broken:imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).map(function(i){return i.getAttribute('src')}),
errors:window.__errors};
var p=document.createElement('pre');p.id='fmv-check';p.textContent=JSON.stringify(r);document.body.appendChild(p)});
</script>"#;

/// Opens `page` in headless Chromium; returns the probe's findings and Chromium's console
/// lines.
fn open_in_chromium(browser: &Path, page: &Path) -> (Value, Vec<String>) {
    let html = std::fs::read_to_string(page).unwrap();
    let probed = page.with_file_name("__fmv_probe.html");
    std::fs::write(
        &probed,
        html.replacen("<head>", &format!("<head>{PROBE}"), 1),
    )
    .unwrap();
    // One profile per browser: two Chromiums on one profile refuse to start.
    static BROWSERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BROWSERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = scratch(&format!("chromium-profile-{n}"));
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-file-access-from-files",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!(
            "file://{}",
            probed.canonicalize().unwrap().display()
        ))
        .output()
        .expect("chromium starts");
    std::fs::remove_file(&probed).ok();
    std::fs::remove_dir_all(&profile).ok();
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"fmv-check\">").unwrap_or_else(|| {
        panic!(
            "the probe did not run; chromium said: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    }) + "<pre id=\"fmv-check\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let found: Value = serde_json::from_str(&dom[start..end].replace("&quot;", "\"")).unwrap();
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    (found, console)
}

#[test]
fn demo_report_opens_in_headless_chromium_with_every_image_loaded_and_no_console_error() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("FMV_REQUIRE_BROWSER").is_none(),
            "FMV_REQUIRE_BROWSER is set but no Chromium was found (apt-get install chromium, or set FMV_CHROMIUM)"
        );
        eprintln!(
            "SKIPPED: no Chromium on this machine; .ci/run installs it and sets FMV_REQUIRE_BROWSER"
        );
        return;
    };
    let dir = demo_report();
    let (found, console) = open_in_chromium(&browser, &dir.join("index.html"));
    assert_eq!(
        found["ids"],
        serde_json::json!(SECTIONS),
        "sections: {found}"
    );
    assert!(found["images"].as_u64().unwrap() >= 10, "{found}");
    assert_eq!(
        found["broken"],
        serde_json::json!([]),
        "images that did not load"
    );
    assert_eq!(found["errors"], serde_json::json!([]), "errors on the page");
    assert!(console.is_empty(), "console output: {console:?}");
}

#[test]
fn the_browser_probe_sees_a_broken_image_and_a_console_error() {
    // The check above must be able to fail: a page with a missing image and a script error.
    let Some(browser) = chromium() else {
        return; // reported by the test above
    };
    let dir = scratch("report-broken");
    let page = dir.join("index.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><title>t</title></head><body><section id=\"rank\"><img src=\"missing.png\" alt=\"a missing picture\"></section><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let (found, console) = open_in_chromium(&browser, &page);
    assert_eq!(found["broken"], serde_json::json!(["missing.png"]));
    let errors = found["errors"].to_string();
    assert!(
        errors.contains("boom") && errors.contains("missing.png"),
        "{errors}"
    );
    assert!(!console.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn report_needs_weights_and_both_folders_together() {
    let dir = scratch("report-partial");
    let e = stderr_of_failure(&fmv(&[
        "report",
        "--weights",
        &weights("resnet50_small_seed1"),
        "-o",
        dir.to_str().unwrap(),
    ]));
    assert!(
        e.contains("give --weights (or --model), --train-dir and --test-dir together"),
        "{e}"
    );
    let e = stderr_of_failure(&fmv(&[
        "report",
        "-o",
        dir.to_str().unwrap(),
        "--demo",
        "alexnet",
    ]));
    assert!(
        e.contains("invalid value 'alexnet' for '--demo <NET>'")
            && e.contains("[possible values: resnet, vgg]"),
        "{e}"
    );
    let e = stderr_of_failure(&fmv(&[
        "report",
        "-o",
        dir.to_str().unwrap(),
        "--style",
        "neon",
    ]));
    assert!(
        e.contains("invalid value 'neon' for '--style <STYLE>'")
            && e.contains("[possible values: heatmap, original]"),
        "{e}"
    );
    // A test folder without one of the training folder's classes.
    let data = super::testdata().join("reference/data/dsA");
    let test = dir.join("test");
    super::copy_tree(&data.join("test/cat"), &test.join("cat"));
    let e = stderr_of_failure(&fmv(&[
        "report",
        "--weights",
        &weights("resnet50_small_seed1"),
        "--train-dir",
        data.join("train").to_str().unwrap(),
        "--test-dir",
        test.to_str().unwrap(),
        "-o",
        dir.join("out").to_str().unwrap(),
    ]));
    assert!(
        e.contains("has the classes cat, the training folder")
            && e.contains("has cat, coffee")
            && e.contains("--classes"),
        "{e}"
    );
    assert!(!dir.join("out/index.html").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn model_names_the_embedded_demo_and_explains_unfetched_weights() {
    let v = super::json_of(&fmv(&["layers", "--model", "demo-vgg", "--json"]));
    assert_eq!(v["arch"], "vgg-custom_bn");
    let e = stderr_of_failure(&fmv(&["layers", "--model", "alexnet"]));
    assert!(
        e.contains("unknown --model `alexnet`: use demo-resnet, demo-vgg or one of resnet18"),
        "{e}"
    );
    let dir = scratch("no-models");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fmv"))
        .args(["layers", "--model", "resnet50"])
        .env("FMV_MODELS", &dir)
        .current_dir(&dir)
        .output()
        .unwrap();
    // (In a checkout that has fetched resnet50 into its own models/, fmv would find it there.)
    let e = stderr_of_failure(&out);
    assert!(
        e.contains("model `resnet50` is not fetched: run `cargo xtask fetch resnet50`"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The committed gallery (`cargo xtask gallery`) shows what the demo report draws: every
/// picture but the patterns (which this test makes with fewer steps) must match a fresh run
/// within the golden-image tolerance.
#[test]
fn demo_report_reproduces_the_committed_gallery() {
    let dir = demo_report();
    let gallery = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gallery");
    let first = |sub: &str| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with("_means.png"))
            .collect();
        files.sort();
        files.remove(0)
    };
    for (name, fresh) in [
        ("rank", dir.join("rank.png")),
        ("class-sums", dir.join("class-sums.png")),
        ("top-maps", first("top-maps")),
        ("one-map", first("one-map")),
        ("summed-maps", first("summed-maps")),
    ] {
        let a = image::open(&fresh).unwrap().to_rgb8();
        let g = image::open(gallery.join(format!("{name}.png")))
            .unwrap()
            .to_rgb8();
        if let Some(why) = image_difference(&a, &g, Tolerance::default()) {
            panic!("{name} differs from docs/gallery: {why}; run `cargo xtask gallery`");
        }
    }
}

#[test]
fn report_on_given_weights_and_folders_records_them_in_the_manifest() {
    let data = super::testdata().join("reference/data/dsA");
    let dir = scratch("report-user");
    let w = weights("resnet50_small_seed1");
    let labels = scratch("report-user-labels").join("labels.txt");
    std::fs::write(&labels, "feline\nespresso\n").unwrap();
    let out = fmv(&[
        "report",
        "--weights",
        &w,
        "--labels",
        labels.to_str().unwrap(),
        "--train-dir",
        data.join("train").to_str().unwrap(),
        "--test-dir",
        data.join("test").to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
        "--preprocess",
        "original",
        "--n-each-img",
        "5",
        "--n-each-class",
        "5",
        "--maps-per-class",
        "1",
        "--pattern-steps",
        "2",
        "--style",
        "original",
        "--svg",
        "--classes",
        "coffee,cat",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = read_json(&dir.join("manifest.json"));
    assert_eq!(manifest["demo"], false);
    assert_eq!(manifest["weights"]["arch"], "resnet50");
    assert_eq!(manifest["layer"], "layer4.1"); // the original's default, -2
    assert_eq!(manifest["parameters"]["style"], "original");
    // `sha256sum testdata/reference/weights/resnet50_small_seed1.safetensors`
    assert_eq!(
        manifest["weights"]["sha256"],
        "67547a6eaf8c8f2b480e81e97f87f640eab36307e74890ab0a99d24d4d08795e"
    );
    // The kernels that ran, which move rounding.
    assert_eq!(manifest["algorithms"]["conv"], "winograd");
    assert_eq!(manifest["algorithms"]["input_grad"], "flipped");
    // No GPU's kernels claimed for a CPU run.
    assert!(manifest["algorithms"].get("gpu_conv").is_none());
    // The same ranking as `fmv rank --json` with the same settings.
    let rank = super::json_of(&fmv(&[
        "rank",
        "--weights",
        &w,
        "--layer",
        "-2",
        "--train-dir",
        data.join("train").to_str().unwrap(),
        "--preprocess",
        "original",
        "--n-each-img",
        "5",
        "--n-each-class",
        "5",
        "--classes",
        "coffee,cat",
        "--json",
    ]));
    let results = read_json(&dir.join("results.json"));
    assert_eq!(results["rank"], rank);
    let order: Vec<&String> = results["rank"]["classes"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        order,
        ["coffee", "cat"],
        "--classes sets the classes and their order"
    );
    assert!(dir.join("rank.svg").is_file() && dir.join("class-sums.svg").is_file());
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("href=\"rank.svg\""));
    // Each sample's prediction: the logits `fmv activations` gives, named by --labels.
    for t in results["top_maps"].as_array().unwrap() {
        let class = t["class"].as_str().unwrap();
        let image = data
            .join("test")
            .join(class)
            .join(t["image"].as_str().unwrap());
        let acts = super::json_of(&fmv(&[
            "activations",
            "--weights",
            &w,
            "--layer",
            "logits",
            "--preprocess",
            "original",
            "--json",
            image.to_str().unwrap(),
        ]));
        // The same f32 values (results.json writes them as f64).
        let f32s = |v: &Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        assert_eq!(
            f32s(&t["predicted"]["logits"]),
            f32s(&acts["images"][0]["mean"]),
            "{image:?}"
        );
        let index = t["predicted"]["index"].as_u64().unwrap() as usize;
        assert_eq!(acts["images"][0]["top"][0].as_u64(), Some(index as u64));
        let label = ["feline", "espresso"][index];
        assert_eq!(t["predicted"]["label"], label);
        assert!(html.contains(&format!("classifies it as <b>{label}</b>")));
    }
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(labels.parent().unwrap()).ok();
}
