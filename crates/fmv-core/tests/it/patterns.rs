//! Activation maximisation against the original's `visualize_patterns` goldens, and OpenCV's
//! bicubic resize against OpenCV (`testdata/opencv/make_resize.py`).

use fmv_core::pixels::resize_cubic_opencv;
use fmv_core::{
    CompatConfig, Error, Event, Field, Observer, Pattern, PatternConfig, Plateau, Preprocess,
    Problem, RobustConfig, Visualizer,
};
use fmv_models::{LayerRef, Model};

use crate::golden::{Golden, f32s, load_options, root};

#[test]
fn cubic_resize_matches_opencv() {
    let path = root().join("../opencv/resize.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut n = 0;
    for case in v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["interp"] == "cubic")
    {
        let (h, w) = (
            case["in_hw"][0].as_u64().unwrap() as usize,
            case["in_hw"][1].as_u64().unwrap() as usize,
        );
        let (oh, ow) = (
            case["out_hw"][0].as_u64().unwrap() as usize,
            case["out_hw"][1].as_u64().unwrap() as usize,
        );
        let src = f32s(&case["src_hwc"]);
        let dst = f32s(&case["dst_hwc"]);
        let scale = dst.iter().fold(0f32, |m, v| m.max(v.abs()));
        for c in 0..3 {
            let plane: Vec<f32> = (0..h * w).map(|i| src[i * 3 + c]).collect();
            let out = resize_cubic_opencv(&plane, h, w, oh, ow);
            for i in 0..oh * ow {
                let err = (out[i] - dst[i * 3 + c]).abs();
                assert!(
                    err <= 2e-6 * scale,
                    "{h}x{w} -> {oh}x{ow} channel {c} pixel {i}: {} vs {}",
                    out[i],
                    dst[i * 3 + c]
                );
            }
        }
        n += 1;
    }
    assert_eq!(n, 3);
}

#[track_caller]
fn check_patterns(name: &str) {
    let golden = Golden::load(name);
    let vp = &golden.json["visualize_patterns"];
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::original());
    let cfg = golden.pattern_config();
    let p = viz.maximize(&cfg, &mut ()).unwrap().remove(0);
    let want: Vec<f64> = vp["per_step_activation_f64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(p.activation_trace.len(), want.len());
    let mut worst = 0f64;
    for (i, (a, g)) in p.activation_trace.iter().zip(&want).enumerate() {
        let rel = (a - g).abs() / g.abs();
        worst = worst.max(rel);
        assert!(
            rel <= 1e-3,
            "{name} step {i}: {a} vs the original's {g} (relative {rel:e})"
        );
    }
    let shape: Vec<usize> = vp["final_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!((p.height, p.width, 3), (shape[0], shape[1], shape[2]));
    let want_img = f32s(&vp["final_image_hwc"]);
    let max_abs = p
        .image
        .iter()
        .zip(&want_img)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        max_abs <= 1e-4,
        "{name}: final image differs by up to {max_abs}"
    );
    eprintln!("{name}: worst relative activation error {worst:e}, final image max abs {max_abs:e}");
}

#[test]
fn compat_patterns_follow_the_original_on_the_resnet() {
    check_patterns("resnet50_small_seed1");
}

#[test]
fn compat_patterns_follow_the_original_on_the_vgg() {
    check_patterns("vgg16_small_seed1");
}

/// Robust mode: deterministic for a seed, raises the objective well above where it started,
/// and on the CPU a batched run gives each filter the pattern it gets alone. That last part
/// holds only where a batch computes each image with the same arithmetic as one image alone,
/// as fmv's CPU convolution does (one GEMM column or Winograd tile per pixel, whatever the
/// batch); cuBLAS chooses its kernels by the batch's size, and this optimisation amplifies
/// rounding (the CPU's f32 and f64 networks end 10–33 % apart), so on a GPU filters run
/// together end elsewhere than alone (9 % on an H200).
#[test]
fn robust_patterns_are_reproducible_batched_and_raise_the_objective() {
    let golden = Golden::load("vgg16_small_seed1");
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::imagenet().with_size(64, 64));
    let cfg = |filters: Vec<usize>| {
        PatternConfig::new(
            LayerRef::Compat(12),
            filters,
            RobustConfig::new().with_steps(40),
        )
        .with_seed(5)
    };
    let run = |c: &PatternConfig| viz.maximize(c, &mut ()).unwrap();
    let both = run(&cfg(vec![59, 3]));
    assert_eq!(both, run(&cfg(vec![59, 3])), "same seed, same result");
    assert_eq!(both.len(), 2);
    let batch_invariant = viz.backbone().device().is_cpu();
    for (p, alone) in both.iter().zip([run(&cfg(vec![59])), run(&cfg(vec![3]))]) {
        let alone = &alone[0];
        assert_eq!((p.width, p.height, p.mode.as_str()), (64, 64, "robust"));
        assert_eq!(p.activation_trace.len(), 40);
        let pairs = p.activation_trace.iter().zip(&alone.activation_trace);
        for (a, b) in pairs.filter(|_| batch_invariant) {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                "filter {}: batched {a} vs alone {b}",
                p.filter
            );
        }
        let start = p.activation_trace[0];
        assert!(
            p.final_activation > 1.5 * start.max(1e-3),
            "filter {}: {start} -> {}",
            p.filter,
            p.final_activation
        );
        assert!(p.image.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    let other = run(&cfg(vec![59]).with_seed(6));
    assert_ne!(other[0].image, both[0].image, "another seed, another image");
}

/// The step at which `p` stops a map whose objectives are `trace`, if it does.
fn stop_of(trace: &[f64], p: Plateau) -> Option<usize> {
    (1..=trace.len()).find(|&n| p.reached(&trace[..n]))
}

/// The first plateau rule of `window`-step windows from `min_steps` on (after the first quarter,
/// as the run checks) under which the maps of `full` (run without a rule for `steps` steps)
/// would stop at different steps, one at least before the end: the rule is the subject of the
/// tests that use it, not its default values.
fn separating_plateau(full: &[Pattern], window: usize, min_steps: usize, steps: usize) -> Plateau {
    [0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
        .map(|min_rise| Plateau {
            window,
            min_steps,
            min_rise,
        })
        .into_iter()
        .find(|&p| {
            let stops: Vec<_> = full
                .iter()
                .map(|m| stop_of(&m.activation_trace, p))
                .collect();
            stops.iter().any(|s| s.is_some_and(|n| n < steps))
                && stops.windows(2).any(|w| w[0] != w[1])
        })
        .expect("some rise stops the maps at different steps")
}

/// On the CPU with several threads, robust maps run in lanes, an even share of the maps on each
/// thread: the patterns are those of the one batch on one thread, and so are the progress
/// events. Four maps, with a plateau rule under which they stop at different steps (the lanes'
/// shares change, and with an odd number left a step takes the one batch).
#[test]
fn robust_maps_in_lanes_equal_the_one_batch() {
    let golden = Golden::load("vgg16_small_seed1");
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::imagenet().with_size(64, 64));
    let steps = 24;
    let cfg = |plateau: Option<Plateau>| {
        PatternConfig::new(
            LayerRef::Compat(12),
            vec![59, 3, 12, 40],
            RobustConfig::new().with_steps(steps).with_plateau(plateau),
        )
        .with_seed(5)
    };
    let run = |threads: usize, c: &PatternConfig| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut events = Vec::new();
        let patterns = pool.install(|| {
            viz.maximize(c, &mut |e: &Event| {
                if let Event::Step {
                    done, activation, ..
                } = e
                {
                    events.push((*done, activation.to_bits()));
                }
            })
            .unwrap()
        });
        (patterns, events)
    };
    let (full, _) = run(1, &cfg(None));
    let plateau = separating_plateau(&full, 2, 6, steps);
    let (lanes, lane_events) = run(2, &cfg(Some(plateau)));
    let (batch, batch_events) = run(1, &cfg(Some(plateau)));
    assert_eq!(lanes, batch);
    assert_eq!(lane_events, batch_events);
}

/// A map whose objective stops rising leaves the batch at the end of a window, its image as it
/// was; the others go on; each map's trace is the one it has without the rule, cut where the
/// rule says, and its final image the one a run of that many steps gives it alone.
#[test]
fn robust_maps_leave_the_batch_on_a_plateau() {
    let golden = Golden::load("vgg16_small_seed1");
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::imagenet().with_size(64, 64));
    let cfg = |filters: Vec<usize>, robust: RobustConfig| {
        PatternConfig::new(LayerRef::Compat(12), filters, robust).with_seed(5)
    };
    let run = |c: &PatternConfig| viz.maximize(c, &mut ()).unwrap();
    let steps = 40;
    let full = run(&cfg(
        vec![59, 3],
        RobustConfig::new().with_steps(steps).with_plateau(None),
    ));
    // A rise that stops one map before the other (the rule is the subject here, not its
    // default values).
    let plateau = separating_plateau(&full, 4, 12, steps);
    let stopped = run(&cfg(
        vec![59, 3],
        RobustConfig::new()
            .with_steps(steps)
            .with_plateau(Some(plateau)),
    ));
    assert_ne!(stopped[0].steps(), stopped[1].steps(), "{plateau:?}");
    for (p, f) in stopped.iter().zip(&full) {
        let n = p.steps();
        assert_eq!(stop_of(&p.activation_trace, plateau).unwrap_or(steps), n);
        for (a, b) in p.activation_trace.iter().zip(&f.activation_trace[..n]) {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                "{}: {a} vs {b}",
                p.filter
            );
        }
        let alone = run(&cfg(
            vec![p.filter],
            RobustConfig::new().with_steps(n).with_plateau(None),
        ));
        let (a, b) = (p.final_activation, alone[0].final_activation);
        assert!(
            (a - b).abs() <= 1e-3 * b.abs().max(1.0),
            "{}: {a} vs {b}",
            p.filter
        );
    }
}

/// Counts the steps of a run and asks it to stop once `stop_at` are done.
struct StopAt {
    steps: usize,
    stop_at: usize,
}

impl StopAt {
    fn new(stop_at: usize) -> Self {
        StopAt { steps: 0, stop_at }
    }
}

impl Observer for StopAt {
    fn on_event(&mut self, event: &Event<'_>) {
        if let Event::Step { .. } = event {
            self.steps += 1;
        }
    }

    fn should_stop(&mut self) -> bool {
        self.steps >= self.stop_at
    }
}

/// A compat run of a few small scales.
fn short_compat(filters: Vec<usize>, scales: usize, steps: usize) -> PatternConfig {
    PatternConfig::new(
        LayerRef::Compat(12),
        filters,
        CompatConfig::new()
            .with_upscaling_steps(scales)
            .with_opt_steps(steps),
    )
}

/// A stop request ends the run early and keeps the best image seen.
#[test]
fn a_stopped_run_returns_the_best_image_so_far() {
    let golden = Golden::load("vgg16_small_seed1");
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::original());
    let cfg = short_compat(vec![59], 3, 5);
    let p = viz.maximize(&cfg, &mut StopAt::new(7)).unwrap().remove(0);
    assert!(p.interrupted);
    assert_eq!(p.activation_trace.len(), 7);
    let best = p.activation_trace.iter().cloned().fold(f64::MIN, f64::max);
    assert!(
        (p.final_activation - best).abs() <= 1e-4 * best.abs(),
        "{} vs best {best}",
        p.final_activation
    );
}

#[test]
fn bad_settings_name_the_setting() {
    let golden = Golden::load("resnet50_small_seed1");
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::original());
    let err = |cfg: PatternConfig| match viz.maximize(&cfg, &mut ()) {
        Ok(_) => panic!("maximize accepted {cfg:?}"),
        Err(e) => e,
    };
    let field =
        |cfg: CompatConfig| match err(PatternConfig::new(LayerRef::Compat(-2), vec![1], cfg)) {
            Error::InvalidConfig { field, .. } => field,
            other => panic!("{other}"),
        };
    let compat = |f: Vec<usize>| PatternConfig::new(LayerRef::Compat(-2), f, CompatConfig::new());
    let msg = err(compat(vec![256])).to_string();
    assert!(
        msg.contains("channel 256 does not exist in layer `layer4.1`"),
        "{msg}"
    );
    let msg = err(compat(vec![3, 1, 3])).to_string();
    assert_eq!(
        msg,
        "invalid `filters`: channel 3 is listed twice; its pattern (and file) would be made twice"
    );
    let c = CompatConfig::new;
    assert_eq!(
        field(c().with_upscaling_factor(1.0)),
        Field::UpscalingFactor
    );
    let stalls = err(PatternConfig::new(
        LayerRef::Compat(-2),
        vec![1],
        c().with_upscaling_factor(1.01),
    ));
    assert!(
        matches!(
            &stalls,
            Error::InvalidConfig {
                field: Field::UpscalingFactor,
                problem: Problem::ScheduleStalls { first: 33, .. }
            }
        ),
        "{stalls}"
    );
    assert!(
        stalls
            .to_string()
            .ends_with("use a larger factor or `init_size`"),
        "{stalls}"
    );
    assert_eq!(field(c().with_opt_steps(0)), Field::OptSteps);
    assert_eq!(field(c().with_upscaling_steps(0)), Field::UpscalingSteps);
    let msg = err(PatternConfig::new(
        LayerRef::Compat(-2),
        vec![1],
        c().with_upscaling_steps(1_000_000_000_000),
    ))
    .to_string();
    assert!(
        msg.contains("invalid `upscaling_steps`: 1000000000000 scales from 33 px by 1.2 would end inf px wide"),
        "{msg}"
    );
    let msg = err(PatternConfig::new(
        LayerRef::Compat(-2),
        vec![1],
        c().with_upscaling_steps(400),
    ))
    .to_string();
    assert!(msg.contains("would end 1.3e33 px wide"), "{msg}");
    assert_eq!(field(c().with_lr(-1.0)), Field::Lr);
    let robust = err(PatternConfig::new(
        LayerRef::Compat(-2),
        vec![1],
        RobustConfig::new().with_steps(0),
    ));
    assert!(
        matches!(
            robust,
            Error::InvalidConfig {
                field: Field::Steps,
                problem: Problem::Zero
            }
        ),
        "{robust}"
    );
    // VGG's unpadded pools need at least 16×16 to reach `features.28`.
    let vgg = Golden::load("vgg16_small_seed1");
    let small = |size: usize| {
        Visualizer::new(Model::load(vgg.weights(), &load_options()).unwrap())
            .with_preprocess(Preprocess::imagenet().with_size(size, size))
    };
    let too_small = |viz: Visualizer, cfg: PatternConfig| match viz.maximize(&cfg, &mut ()) {
        Ok(_) => panic!("a too small input was accepted"),
        Err(Error::InvalidConfig {
            field,
            problem: Problem::TooSmall { min, .. },
        }) => (field, min),
        Err(other) => panic!("{other}"),
    };
    let from_8 = PatternConfig::new(LayerRef::Compat(12), vec![1], c().with_init_size(8));
    assert_eq!(too_small(small(224), from_8), (Field::InitSize, 16));
    let robust = PatternConfig::new(LayerRef::Compat(12), vec![1], RobustConfig::new());
    assert_eq!(too_small(small(8), robust), (Field::Size, 16));
}

/// Compat mode with several filters runs them side by side on the CPU, one per thread (three
/// filters on two threads: the lane that finishes first takes the third). Each filter must end
/// where it ends alone, and the progress events must count every filter's steps.
#[test]
fn compat_filters_side_by_side_end_where_each_ends_alone() {
    let golden = Golden::load("vgg16_small_seed1");
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::original());
    let cfg = |filters: Vec<usize>| short_compat(filters, 3, 4);
    let two_threads = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut events = Vec::new();
    let together = two_threads.install(|| {
        viz.maximize(&cfg(vec![59, 3, 12]), &mut |e: &Event| {
            if let Event::Step { done, total, .. } = e {
                events.push((*done, *total));
            }
        })
        .unwrap()
    });
    assert_eq!(together.len(), 3);
    for (p, f) in together.iter().zip([59, 3, 12]) {
        let alone = two_threads
            .install(|| viz.maximize(&cfg(vec![f]), &mut ()))
            .unwrap()
            .remove(0);
        assert_eq!(p.filter, f);
        assert_eq!(p.activation_trace.len(), 12);
        for (a, b) in p.activation_trace.iter().zip(&alone.activation_trace) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs(),
                "filter {f}: side by side {a} vs alone {b}"
            );
        }
        assert!(
            (p.final_activation - alone.final_activation).abs()
                <= 1e-5 * alone.final_activation.abs()
        );
    }
    let done: Vec<usize> = events
        .iter()
        .map(|&(done, total)| {
            assert_eq!(total, 36);
            done
        })
        .collect();
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
    assert_eq!(done.last(), Some(&36));
}

/// A stop request while filters run side by side ends the running ones with their best image
/// and starts no other.
#[test]
fn a_stopped_run_of_filters_side_by_side_keeps_the_first_ones() {
    let golden = Golden::load("vgg16_small_seed1");
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::original());
    let cfg = short_compat(vec![59, 3, 12, 7], 3, 10);
    let two_threads = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let got = two_threads
        .install(|| viz.maximize(&cfg, &mut StopAt::new(7)))
        .unwrap();
    assert!((1..4).contains(&got.len()), "{} patterns", got.len());
    for (p, f) in got.iter().zip([59, 3, 12]) {
        assert_eq!(p.filter, f);
        assert!(p.activation_trace.len() < 30, "filter {f} was not stopped");
    }
    assert!(got.iter().any(|p| p.interrupted));
}

/// An input side mistyped by a digit or two fails before the run, naming what it needs and
/// the arguments to lower, instead of aborting in an allocation. (Linux says how much memory
/// is available; other systems are not checked.)
#[cfg(target_os = "linux")]
#[test]
fn inputs_too_large_for_the_memory_are_refused_before_the_run() {
    let golden = Golden::load("resnet50_small_seed1");
    // The CPU, whatever FMV_TEST_DEVICE says: other devices are not checked.
    let model = || Model::load(golden.weights(), &fmv_models::LoadOptions::new()).unwrap();
    let side = 1_000_000;
    let err = |viz: Visualizer, cfg: PatternConfig| match viz.maximize(&cfg, &mut ()) {
        Ok(_) => panic!("maximize accepted {cfg:?}"),
        Err(e) => e.to_string(),
    };
    let compat = PatternConfig::new(
        LayerRef::Compat(-2),
        vec![1],
        CompatConfig::new()
            .with_init_size(side)
            .with_upscaling_steps(1),
    );
    let msg = err(Visualizer::new(model()), compat);
    assert!(
        msg.starts_with("a compat step at the last scale, 1000000x1000000 px, needs at least ")
            && msg.contains("TiB of memory for its maps (up to `layer4.1`)")
            && msg.contains("lower `init_size`, `upscaling_steps` or `upscaling_factor`"),
        "{msg}"
    );
    let robust = PatternConfig::new(LayerRef::Compat(-2), vec![1, 2], RobustConfig::new());
    let viz =
        Visualizer::new(model()).with_preprocess(Preprocess::imagenet().with_size(side, side));
    let msg = err(viz, robust);
    assert!(
        msg.starts_with("a robust step on 2 filter(s) at 1000000x1000000 px needs at least ")
            && msg.contains("lower `size`, or give fewer filters at a time"),
        "{msg}"
    );
}
