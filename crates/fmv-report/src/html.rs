//! The report's page: static, self-contained HTML (inline CSS, relative links, no scripts),
//! one section per capability with a plain-language explanation at its top.

use std::fmt::Write;

use fmv_core::{Ablation, ClassSums, Exemplars, Ranking};

use crate::figures::{Figure, MapsRow, ShownExemplars, TopMaps};
use crate::results::{Manifest, ShownPattern};

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{font-size:1.6em}h2{margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}\
p.explain{color:#444;max-width:60em}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}\
img{max-width:100%;height:auto;border:1px solid #eee}.patterns{display:flex;flex-wrap:wrap;gap:1em}\
.patterns figure{width:180px}.patterns img{width:180px;image-rendering:auto}\
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}\
nav a{margin-right:1em}code{background:#f4f4f4;padding:0 .2em}";

/// The page under construction.
pub struct Page {
    layer: String,
    demo: bool,
    sections: String,
}

fn img(fig: &Figure) -> String {
    let mut s = format!(
        "<img src=\"{}\" alt=\"{}\">",
        escape(&fig.png),
        escape(&fig.alt)
    );
    if let Some(svg) = &fig.svg {
        let _ = write!(s, " <a href=\"{}\">SVG</a>", escape(svg));
    }
    s
}

impl Page {
    /// A page about `layer`; `demo` adds a note that the data are generated.
    pub fn new(layer: &str, demo: bool) -> Self {
        Page {
            layer: layer.to_string(),
            demo,
            sections: String::new(),
        }
    }

    fn section(&mut self, id: &str, title: &str, explain: &str, body: &str) {
        let _ = write!(
            self.sections,
            "<section id=\"{id}\">\n<h2>{}</h2>\n<p class=\"explain\">{explain}</p>\n{body}\n</section>\n",
            escape(title)
        );
    }

    /// The rank section.
    pub fn rank(&mut self, chart: &Figure, ranking: &Ranking) {
        let mut body = format!(
            "<figure>{}</figure>\n<table><tr><th>class</th><th>training images</th><th>unique maps (most frequent first)</th></tr>",
            img(chart)
        );
        for c in &ranking.classes {
            let maps = if c.unique.is_empty() {
                "none: every frequent map is shared with another class".to_string()
            } else {
                c.unique
                    .iter()
                    .map(|&m| format!("{m} ({}/{})", c.counts[m], c.n_images))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&c.name),
                c.n_images,
                escape(&maps)
            );
        }
        body.push_str("</table>");
        let explain = format!(
            "For every training image, fmv lists the {} maps of layer <code>{}</code> that fire hardest on average. Per class it keeps the {} maps that appear in those lists most often, then removes maps that another class also keeps. What remains are the maps that are typical of one class only; each bar shows in what fraction of the class's images the map was among the most active.",
            ranking.n_each_img,
            escape(&self.layer),
            ranking.n_each_class
        );
        self.section("rank", "Rank: maps unique to each class", &explain, &body);
    }

    /// The patterns section.
    pub fn patterns(&mut self, patterns: &[ShownPattern]) {
        let mut body = String::from("<div class=\"patterns\">");
        if patterns.is_empty() {
            body.push_str("<p>No class has a unique map, so there is no pattern to draw.</p>");
        }
        for p in patterns {
            let _ = write!(
                body,
                "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{} · filter {} · activation {:.2}</figcaption></figure>",
                escape(&p.file),
                escape(&format!(
                    "Synthetic image that maximises filter {} of {} (a top map of class {}); it reaches a mean activation of {:.2}.",
                    p.filter, self.layer, p.class, p.final_activation
                )),
                escape(&p.class),
                p.filter,
                p.final_activation
            );
        }
        body.push_str("</div>");
        self.section(
            "patterns",
            "Patterns: what each top map responds to",
            "Starting from noise, fmv changes an image step by step so that one map fires as hard as possible (activation maximisation). The result shows the texture or shape the map looks for. These are each class's most frequent unique maps.",
            &body,
        );
    }

    /// The top-maps section.
    pub fn top_maps(&mut self, shown: &[TopMaps]) {
        let mut body = String::new();
        for t in shown {
            let predicted = t.predicted.as_ref().map_or(String::new(), |p| {
                format!(
                    "<p>The network classifies it as <b>{}</b> (logit {:.2}).</p>",
                    escape(&p.label),
                    p.logits[p.index]
                )
            });
            let _ = write!(
                body,
                "<h3>{} ({})</h3>{predicted}<figure>{}<figcaption>The image, then its most active maps, each titled with layer, filter and mean activation.</figcaption></figure><figure>{}<figcaption>Every map's mean activation; the most active are marked.</figcaption></figure>",
                escape(&t.image),
                escape(&t.class),
                img(&t.grid),
                img(&t.plot)
            );
        }
        self.section(
            "top-maps",
            "One image, its top maps",
            "For a few test images: the maps of this layer that are most active on that image, drawn over it (bright where the map fires), and the mean activation of every map.",
            &body,
        );
    }

    fn rows(rows: &[MapsRow], what: &str) -> String {
        let mut body = String::new();
        for r in rows {
            let maps = r
                .maps
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                body,
                "<h3>{} · {what} {}</h3><figure>{}<figcaption>First row: test images of {}; second row: other classes. Each title gives the image's class and mean activation; the files are listed in results.json.</figcaption></figure>",
                escape(&r.class),
                escape(&maps),
                img(&r.grid),
                escape(&r.class)
            );
        }
        body
    }

    /// The one-map section.
    pub fn one_map(&mut self, rows: &[MapsRow]) {
        let body = Self::rows(rows, "filter");
        self.section(
            "one-map",
            "One map, many images",
            "Each class's most frequent unique map, drawn over test images of that class and of other classes. A map that is typical of the class should be bright on its own images and dim on the others.",
            &body,
        );
    }

    /// The summed-maps section.
    pub fn summed_maps(&mut self, rows: &[MapsRow]) {
        let body = Self::rows(rows, "maps");
        self.section(
            "summed-maps",
            "Several maps summed, many images",
            "All of a class's unique maps added together, drawn over the same images. Summing gives a steadier picture of where the class's evidence lies than any single map.",
            &body,
        );
    }

    /// The class-sums section.
    pub fn class_sums(&mut self, plot: &Figure, sums: &ClassSums) {
        let mut body = format!(
            "<figure>{}</figure><table><tr><th>maps of</th><th>maps</th><th>ROC AUC against the other classes</th></tr>",
            img(plot)
        );
        for ((k, maps), auc) in sums.top_maps.iter().zip(&sums.separability) {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(k),
                escape(&format!("{maps:?}")),
                auc.map_or("n/a".into(), |a| format!("{a:.3}"))
            );
        }
        body.push_str("</table>");
        self.section(
            "class-sums",
            "Class sums: do the maps tell the classes apart?",
            "For every test image, the activations of each class's unique maps are added up. If the maps really belong to their class, its own images score higher than the others: the ROC AUC is 1 when every own image scores above every other image, 0.5 when the sums are no better than chance.",
            &body,
        );
    }

    /// The exemplars section.
    pub fn exemplars(&mut self, shown: &[ShownExemplars], found: &Exemplars) {
        let mut body = String::new();
        if shown.is_empty() {
            body.push_str("<p>No class has a unique map, so there are no exemplars to show.</p>");
        }
        for s in shown {
            let _ = write!(
                body,
                "<figure>{}<figcaption>{} · filter {}</figcaption></figure>",
                img(&s.grid),
                escape(&s.class),
                s.filter
            );
        }
        let explain = format!(
            "A synthetic pattern can mislead; real images cannot. For each unique map, fmv scanned all {} training and test images and kept the {} where the map is most active on average. The pattern comes first; then each image with the map overlaid, its most active place boxed, and its mean activation. If a map is unique to a class, its exemplars should mostly be that class's images, and the boxes should sit on what the pattern draws.",
            found.images, found.k
        );
        self.section(
            "exemplars",
            "Exemplars: the real images that drive each map",
            &explain,
            &body,
        );
    }

    /// The ablation section; `None` when the network has no classifier to watch.
    pub fn ablation(&mut self, shown: Option<(&Figure, &Ablation)>) {
        let Some((chart, a)) = shown else {
            self.section(
                "ablation",
                "Ablation: do the maps matter for their class?",
                "Ablation watches the network's outputs, and this network has no classifier fmv can run (its weights end before the head), so this section is empty.",
                "",
            );
            return;
        };
        let mut body = format!(
            "<figure>{}</figure><table><tr><th>class</th><th>maps zeroed</th><th>mean logit before → after</th><th>drop</th><th>random sets: mean ± sd</th><th>z</th><th>accuracy after (before {:.1} %)</th></tr>",
            img(chart),
            100.0 * a.accuracy
        );
        for c in &a.classes {
            let random = c.random.as_ref().map_or("n/a".to_string(), |r| {
                format!(
                    "{:.3} ± {:.3} ({} sets)",
                    r.mean_drop,
                    r.sd_drop,
                    r.sets.len()
                )
            });
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{:.3} → {:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{:.1} %</td></tr>",
                escape(&c.name),
                escape(&format!("{:?}", c.maps)),
                c.logit_before,
                c.logit_after,
                c.drop,
                random,
                c.z.map_or("n/a".into(), |z| format!("{z:.1}")),
                100.0 * c.accuracy_after
            );
        }
        body.push_str("</table>");
        self.section(
            "ablation",
            "Ablation: do the maps matter for their class?",
            "Ranking and class sums show that a class's maps fire on its images; they cannot show that the network uses them. Here fmv sets a class's unique maps to zero and lets the network finish its work on the test images: the drop is how much the class's mean logit falls. The same is done with random sets of as many other maps (grey dots); z is how many standard deviations the class's own drop lies above theirs. A large z means the maps matter for the class more than maps chosen at random; the small dots are each map zeroed alone.",
            &body,
        );
    }

    /// The whole document.
    pub fn finish(&self, manifest: &Manifest) -> String {
        let demo = if self.demo {
            "<p>This report ran on fmv's embedded demo: a small network trained on generated pictures of four classes (blobs, checkerboards, rings, stripes), which fmv writes under <code>data/</code>. Run <code>fmv report --weights W --train-dir D --test-dir D -o OUT</code> for your own network.</p>"
        } else {
            ""
        };
        let weights = &manifest.weights.file;
        let arch = &manifest.weights.arch;
        let preprocess = &manifest.preprocess;
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>fmv report · {layer}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>What the feature maps of <code>{layer}</code> respond to</h1>\n<p>Network <code>{arch}</code> from <code>{weights}</code>, preprocessing <code>{preprocess}</code>. Every number on this page is in <a href=\"results.json\">results.json</a>; how it was made is in <a href=\"manifest.json\">manifest.json</a>.</p>\n{demo}\n<nav><a href=\"#rank\">rank</a><a href=\"#patterns\">patterns</a><a href=\"#top-maps\">top maps</a><a href=\"#one-map\">one map</a><a href=\"#summed-maps\">summed maps</a><a href=\"#class-sums\">class sums</a><a href=\"#exemplars\">exemplars</a><a href=\"#ablation\">ablation</a></nav>\n{sections}<footer><p>Made by fmv {version}.</p></footer>\n</body>\n</html>\n",
            layer = escape(&self.layer),
            arch = escape(arch),
            weights = escape(weights),
            preprocess = escape(preprocess),
            sections = self.sections,
            version = env!("CARGO_PKG_VERSION"),
        )
    }
}
