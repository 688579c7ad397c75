//! The report's stages, in order: rank, patterns, top maps, one map, summed maps, class sums;
//! each stage's results drawn into the page and its figures as they come.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Instant;

use fmv_core::{
    AblationConfig, ActivationsConfig, ClassSumsConfig, CompatConfig, Event, ExemplarStat,
    Exemplars, ExemplarsConfig, ImageFolder, ImageList, Mode, Observer, PatternAlgorithm,
    PatternConfig, RankConfig, RobustConfig, Visualizer,
};
use fmv_models::{LayerRef, gpu_convolution};

use crate::documents::{
    AblationDocument, ClassSumsDocument, ExemplarsDocument, RankDocument, show,
};
use crate::draw::to_image;
use crate::figures::{self, Ctx};
use crate::html::Page;
use crate::results::{
    AlgorithmsDocument, ExemplarGridDocument, Manifest, Parameters, PatternsDocument, Prediction,
    Results, Timing, WeightsDocument,
};
use crate::{Error, Folders, Report, ReportConfig, ReportEvent, ReportObserver, Result};

/// The report's observer as an analysis's.
struct Forward<'a>(&'a mut dyn ReportObserver);

impl Observer for Forward<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        self.0.on_event(&ReportEvent::Analysis(event));
    }

    fn should_stop(&mut self) -> bool {
        self.0.should_stop()
    }
}

/// An observer of any type, sized, so that it can be passed on as `&mut dyn ReportObserver`.
pub(crate) struct Wrapped<'a, O: ?Sized>(pub &'a mut O);

impl<O: ReportObserver + ?Sized> ReportObserver for Wrapped<'_, O> {
    fn on_event(&mut self, event: &ReportEvent<'_>) {
        self.0.on_event(event)
    }

    fn should_stop(&mut self) -> bool {
        self.0.should_stop()
    }
}

/// The stages, in order.
const STAGES: [&str; 8] = [
    "rank: the maps unique to each class",
    "patterns: what each class's top maps respond to",
    "top maps of sample test images",
    "each class's top map over test images",
    "each class's unique maps summed",
    "class sums over the test images",
    "exemplars: the real images that drive each map",
    "ablation: do the maps matter for their class?",
];

/// Images kept per map in the exemplars section.
const EXEMPLARS_PER_MAP: usize = 9;

/// Runs every stage; see [`crate::report`].
pub(crate) fn run(
    viz: &Visualizer,
    Folders { train, test }: Folders<'_>,
    config: &ReportConfig,
    observer: &mut dyn ReportObserver,
) -> Result<Report> {
    let started = Instant::now();
    config.validate()?;
    let (train_classes, test_classes) = (train.class_names(), test.class_names());
    if train_classes != test_classes {
        return Err(Error::ClassesDiffer {
            train_root: show(&train.root),
            train: train_classes,
            test_root: show(&test.root),
            test: test_classes,
        });
    }
    let net = viz.backbone();
    let layer_id = viz.resolve(config.layer())?;
    // Names for the classifier's outputs must fit it, before any work.
    if let (Some(labels), Some(outputs)) = (&config.labels, logit_outputs(viz))
        && labels.len() != outputs
    {
        return Err(Error::LabelsDiffer {
            labels: labels.len(),
            outputs,
        });
    }
    let layer_name = net.layer(layer_id).name.clone();
    let ctx = Ctx {
        files: RefCell::new(Vec::new()),
        layer: config.layer().clone(),
        layer_name: layer_name.clone(),
        family: net.family(),
        style: config.style,
        svg: config.svg,
    };
    let mut page = Page::new(&layer_name, config.demo);
    let mut timings = Vec::new();
    let stage = |k: usize, observer: &mut dyn ReportObserver| -> Result<Instant> {
        if k > 0 && observer.should_stop() {
            return Err(fmv_core::Error::Stopped.into());
        }
        observer.on_event(&ReportEvent::Stage {
            index: k + 1,
            count: STAGES.len(),
            name: STAGES[k],
        });
        Ok(Instant::now())
    };
    let mut done = |k: usize, start: Instant| {
        timings.push(Timing {
            stage: STAGES[k].to_string(),
            seconds: start.elapsed().as_secs_f64(),
        })
    };

    // 1. Rank.
    let start = stage(0, observer)?;
    let rank_config = RankConfig::new(config.layer().clone())
        .with_n_each_img(config.n_each_img)
        .with_n_each_class(config.n_each_class);
    let ranking = viz.rank(train, &rank_config, &mut Forward(observer))?;
    let chosen: Vec<(String, Vec<usize>)> = ranking
        .classes
        .iter()
        .map(|c| {
            let maps = c
                .unique
                .iter()
                .take(config.maps_per_class)
                .copied()
                .collect();
            (c.name.clone(), maps)
        })
        .collect();
    page.rank(&figures::rank(&ctx, &ranking)?, &ranking);
    done(0, start);

    // 2. Patterns.
    let start = stage(1, observer)?;
    let algorithm: PatternAlgorithm = match config.pattern_mode {
        Mode::Compat => CompatConfig::new().into(),
        Mode::Robust => RobustConfig::new().with_steps(config.pattern_steps).into(),
    };
    let (mut patterns, mut pattern_images) = (Vec::new(), Vec::new());
    for (k, (class, maps)) in chosen.iter().enumerate() {
        if maps.is_empty() {
            continue;
        }
        if observer.should_stop() {
            return Err(fmv_core::Error::Stopped.into());
        }
        observer.on_event(&ReportEvent::Patterns {
            index: k + 1,
            count: chosen.len(),
            class,
            maps,
        });
        let cfg = PatternConfig::new(config.layer().clone(), maps.clone(), algorithm.clone())
            .with_seed(config.seed);
        for p in viz.maximize(&cfg, &mut Forward(observer))? {
            patterns.push(figures::pattern(&ctx, class, &p)?);
            pattern_images.push((p.filter, to_image(&p.to_rgb8())));
        }
    }
    page.patterns(&patterns);
    done(1, start);

    // 3. Top-N maps of sample test images.
    let start = stage(2, observer)?;
    let samples: Vec<(String, PathBuf)> = test
        .classes
        .iter()
        .flat_map(|c| {
            c.files
                .iter()
                .take(config.samples_per_class)
                .map(|f| (c.name.clone(), f.clone()))
        })
        .collect();
    let files: Vec<PathBuf> = samples.iter().map(|(_, f)| f.clone()).collect();
    let acts_config = ActivationsConfig::new(config.layer().clone())
        .with_top(config.top)
        .with_maps(true);
    let acts = viz.activations(&files, &acts_config, &mut Forward(observer))?;
    let predictions = predict(viz, &files, config.labels.as_deref(), observer)?;
    let top_maps = acts
        .images
        .iter()
        .zip(&samples)
        .zip(predictions)
        .map(|((img, (class, _)), predicted)| {
            figures::top_maps(&ctx, class, img).map(|t| figures::TopMaps { predicted, ..t })
        })
        .collect::<Result<Vec<_>>>()?;
    page.top_maps(&top_maps);
    done(2, start);

    // 4. One map over the class's own test images and the others'; 5. the maps summed.
    let picks = figures::pick_images(test, config.images_per_class);
    // Each class's maps over the picked images, a grid per class that has maps.
    let rows = |section: &str,
                maps_of: &dyn Fn(&fmv_core::ClassRanking) -> Vec<usize>,
                observer: &mut dyn ReportObserver|
     -> Result<Vec<figures::MapsRow>> {
        let mut rows = Vec::new();
        for c in &ranking.classes {
            let maps = maps_of(c);
            if !maps.is_empty() {
                let what = (section, c.name.as_str(), &maps[..]);
                rows.push(figures::maps_row(
                    viz,
                    &ctx,
                    what,
                    &picks,
                    &mut Forward(observer),
                )?);
            }
        }
        Ok(rows)
    };
    let start = stage(3, observer)?;
    let first = |c: &fmv_core::ClassRanking| c.unique.first().copied().into_iter().collect();
    let one_map = rows("one-map", &first, observer)?;
    page.one_map(&one_map);
    done(3, start);
    let start = stage(4, observer)?;
    let summed = rows("summed-maps", &|c| c.unique.clone(), observer)?;
    page.summed_maps(&summed);
    done(4, start);

    // 6. Class sums.
    let start = stage(5, observer)?;
    let top: Vec<(String, Vec<usize>)> = ranking
        .classes
        .iter()
        .map(|c| (c.name.clone(), c.unique.clone()))
        .collect();
    let sums = viz.class_sums(
        test,
        &ClassSumsConfig::new(config.layer().clone(), top.clone()),
        &mut Forward(observer),
    )?;
    page.class_sums(&figures::class_sums(&ctx, &sums)?, &sums);
    done(5, start);

    // 7. Exemplars of the maps whose patterns are drawn, over every image of both folders.
    let start = stage(6, observer)?;
    let all = ImageList {
        files: train
            .classes
            .iter()
            .chain(&test.classes)
            .flat_map(|c| c.files.iter().cloned())
            .collect(),
        skipped: Vec::new(),
    };
    let mut shown_maps: Vec<usize> = Vec::new();
    for m in chosen.iter().flat_map(|(_, m)| m) {
        if !shown_maps.contains(m) {
            shown_maps.push(*m);
        }
    }
    let found = if shown_maps.is_empty() {
        None
    } else {
        let cfg = ExemplarsConfig::new(config.layer().clone())
            .with_filters(Some(shown_maps))
            .with_k(EXEMPLARS_PER_MAP);
        Some(viz.exemplars(&all, &cfg, &mut Forward(observer))?)
    };
    let exemplar_grids = match &found {
        Some(found) => figures::exemplars(
            viz,
            &ctx,
            found,
            &chosen,
            &pattern_images,
            &mut Forward(observer),
        )?,
        None => Vec::new(),
    };
    let found = match found {
        Some(found) => found,
        None => empty_exemplars(viz, &layer_name, all.files.len())?,
    };
    page.exemplars(&exemplar_grids, &found);
    done(6, start);

    // 8. Ablation of each class's unique maps, where the network has a classifier.
    let start = stage(7, observer)?;
    let ablation = match logit_outputs(viz) {
        Some(_) => {
            let cfg = AblationConfig::new(config.layer().clone(), top.clone())
                .with_each(true)
                .with_seed(config.seed)
                .with_labels(Some(output_names(test, config.labels.as_deref())?));
            Some(viz.ablate(test, &cfg, &mut Forward(observer))?)
        }
        None => None,
    };
    let chart = ablation
        .as_ref()
        .map(|a| figures::ablation(&ctx, a))
        .transpose()?;
    page.ablation(chart.as_ref().zip(ablation.as_ref()));
    done(7, start);

    let provenance = net.provenance()?;
    let algorithms = net.algorithms();
    let manifest = Manifest {
        fmv_version: env!("CARGO_PKG_VERSION").to_string(),
        weights: WeightsDocument {
            file: provenance.file,
            sha256: provenance.id.as_str().to_string(),
            arch: net.arch_name(),
        },
        layer: layer_name,
        preprocess: viz.preprocess().name(),
        input_size: viz.preprocess().size(),
        device: format!("{:?}", net.device()),
        algorithms: AlgorithmsDocument {
            conv: algorithms.conv.to_string(),
            input_grad: algorithms.input_grad.to_string(),
            gpu_conv: gpu_convolution(net.device().location()).map(str::to_string),
        },
        train_dir: show(&train.root),
        test_dir: show(&test.root),
        demo: config.demo,
        parameters: Parameters {
            n_each_img: config.n_each_img,
            n_each_class: config.n_each_class,
            maps_per_class: config.maps_per_class,
            samples_per_class: config.samples_per_class,
            top: config.top,
            images_per_class: config.images_per_class,
            pattern_mode: config.pattern_mode.as_str().to_string(),
            pattern_steps: config.pattern_steps,
            seed: config.seed,
            style: config.style.as_str().to_string(),
            batch_size: viz.batch_size(),
        },
        timings_s: timings,
        total_s: started.elapsed().as_secs_f64(),
    };
    let results = Results {
        rank: RankDocument::from(&ranking),
        patterns: PatternsDocument {
            mode: config.pattern_mode.as_str().to_string(),
            seed: config.seed,
            steps: config.pattern_steps,
            maps: patterns,
        },
        top_maps: top_maps.iter().map(|m| m.document()).collect(),
        one_map: one_map.iter().map(|r| r.document()).collect(),
        summed_maps: summed.iter().map(|r| r.document()).collect(),
        class_sums: ClassSumsDocument::from(&sums),
        exemplars: ExemplarsDocument::from(&found),
        exemplar_grids: exemplar_grids
            .iter()
            .map(|e| ExemplarGridDocument {
                class: e.class.clone(),
                filter: e.filter,
                grid: e.grid.png.clone(),
            })
            .collect(),
        ablation: ablation.as_ref().map(|a| AblationDocument::new(a, true)),
    };
    Ok(Report {
        html: page.finish(&manifest),
        results,
        manifest,
        images: ctx.files.into_inner(),
    })
}

/// The name of each output as the test folder's classes are matched to them: the labels, when
/// they name every class; else torchvision's `ImageFolder` rule, every class sub-folder of the
/// test root in sorted order (also those `--classes` leaves out), outputs 0, 1, ….
fn output_names(test: &ImageFolder, labels: Option<&[String]>) -> Result<Vec<String>> {
    if let Some(labels) = labels
        && test.classes.iter().all(|c| labels.contains(&c.name))
    {
        return Ok(labels.to_vec());
    }
    Ok(ImageFolder::open(&test.root, None)?.class_names())
}

/// The exemplars of no map (no class has a unique map).
fn empty_exemplars(viz: &Visualizer, layer: &str, files: usize) -> Result<Exemplars> {
    Ok(Exemplars {
        format_version: Exemplars::VERSION,
        weights: viz.backbone().provenance()?.id,
        layer: layer.to_string(),
        preprocess: viz.preprocess().name(),
        k: EXEMPLARS_PER_MAP,
        by: ExemplarStat::Mean,
        map_size: (0, 0),
        files,
        shards: vec![0],
        shard_count: 1,
        done: 0,
        images: 0,
        maps: Vec::new(),
        skipped: Vec::new(),
    })
}

/// What the network's classifier says of each of `files` (`None` each where it has no usable
/// one), with `labels` naming the outputs.
fn predict(
    viz: &Visualizer,
    files: &[PathBuf],
    labels: Option<&[String]>,
    observer: &mut dyn ReportObserver,
) -> Result<Vec<Option<Prediction>>> {
    if logit_outputs(viz).is_none() {
        return Ok(vec![None; files.len()]);
    }
    let logits = LayerRef::Name("logits".into());
    let acts = viz.activations(
        files,
        &ActivationsConfig::new(logits),
        &mut Forward(observer),
    )?;
    Ok(acts
        .images
        .iter()
        .map(|img| {
            let index = img
                .mean
                .iter()
                .enumerate()
                .fold(0, |best, (i, v)| if *v > img.mean[best] { i } else { best });
            Some(Prediction {
                index,
                label: labels
                    .and_then(|l| l.get(index).cloned())
                    .unwrap_or_else(|| format!("class {index}")),
                logits: img.mean.iter().map(|&v| v as f64).collect(),
            })
        })
        .collect())
}

/// The number of outputs of the network's classifier, if it has a usable one.
fn logit_outputs(viz: &Visualizer) -> Option<usize> {
    let id = viz.resolve(&LayerRef::Name("logits".into())).ok()?;
    Some(viz.backbone().layer(id).channels)
}
