"""Makes the goldens of exemplars and ablation on the two small reference networks: logits with
feature maps zeroed by a PyTorch forward hook (as Captum's LayerFeatureAblation does), and each
map's most active images. Needs torch 2.15 / torchvision 0.29 / safetensors / Pillow.

    python testdata/torch/make_meaning.py

Writes ablation.json:
  forward   per network: torch's logits for the deterministic test input (fixture_input.py),
            unchanged and with channel sets of several taps zeroed (`fmv_models::Pass`)
  ablate    per case: what `fmv ablate` must print on the reference test set (dsA/test, read
            with Pillow as fmv's default `imagenet` preprocessing reads it): accuracy, and per
            class the logits before and after zeroing its maps, the drops of seeded random sets
            of the same size (fmv's SplitMix64 and draw, reimplemented below) and of each map
Writes exemplars.json:
  per case: the images of dsA/train and dsA/test in `fmv_core::ImageList` order, and per map
  its top k by mean (or max): path, mean, max, argmax [y, x] (torch's first maximum), and the
  gap between the maximum and the largest value elsewhere (argmax is only defined above it)
"""
import json, os
import numpy as np
import torch
from torch import nn
from torchvision.models import resnet as tvr, vgg as tvv
from safetensors.torch import load_file
from PIL import Image

from fixture_input import test_input

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "reference")
torch.set_num_threads(2)
MASK = (1 << 64) - 1


def small_resnet50():
    """The reference small ResNet-50 (base width 8), torchvision's own classes."""
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d
    m.inplanes, m.dilation, m.groups, m.base_width = 8, 1, 1, 64
    m.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(8)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(tvr.Bottleneck, 8, 3)
    m.layer2 = m._make_layer(tvr.Bottleneck, 16, 4, stride=2)
    m.layer3 = m._make_layer(tvr.Bottleneck, 32, 6, stride=2)
    m.layer4 = m._make_layer(tvr.Bottleneck, 64, 3, stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Linear(256, 2)
    m.load_state_dict(load_file(os.path.join(REF, "weights", "resnet50_small_seed1.safetensors")))
    return m.eval()


def small_vgg16():
    """The reference small VGG-16 (widths / 8, a 64-wide head with 3 outputs)."""
    cfg = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]
    m = tvv.VGG(tvv.make_layers(cfg), num_classes=3)
    m.classifier = nn.Sequential(nn.Linear(64 * 49, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, 3))
    m.load_state_dict(load_file(os.path.join(REF, "weights", "vgg16_small_seed1.safetensors")))
    return m.eval()


def module_of(m, tap):
    """The module whose output is fmv's tap (post-ReLU taps: the ReLU)."""
    if isinstance(m, tvv.VGG):
        if tap == "avgpool":
            return m.avgpool
        i = int(tap.split(".")[1])
        return m.features[i + 1] if isinstance(m.features[i], nn.Conv2d) else m.features[i]
    if tap == "conv1":
        return m.relu  # used once, after bn1
    if "." in tap:
        stage, block = tap.split(".")
        return getattr(m, stage)[int(block)]
    return getattr(m, tap)


def logits_zeroed(m, x, tap=None, channels=()):
    handle = None
    if tap is not None:
        idx = torch.tensor(sorted(channels), dtype=torch.long)

        def hook(_mod, _inp, out):
            out = out.clone()
            out[:, idx] = 0
            return out

        handle = module_of(m, tap).register_forward_hook(hook)
    try:
        with torch.no_grad():
            return m(x)
    finally:
        if handle is not None:
            handle.remove()


NETS = {"resnet50_small_seed1": small_resnet50, "vgg16_small_seed1": small_vgg16}
FORWARD_TAPS = {
    "resnet50_small_seed1": {"conv1": 8, "maxpool": 8, "layer3": 128, "layer4.0": 256,
                             "layer4.1": 256, "layer4": 256, "avgpool": 256},
    "vgg16_small_seed1": {"features.0": 8, "features.17": 64, "features.23": 64,
                          "features.28": 64, "features.30": 64, "avgpool": 64},
}
INPUT = (2, 96, 80)


def channel_sets(c):
    return [[0], [1, c // 2, c - 1], list(range(0, c, 2))]


forward = {}
for name, make in NETS.items():
    m = make()
    x = test_input(*INPUT)
    cases = []
    for tap, c in FORWARD_TAPS[name].items():
        for ch in channel_sets(c):
            cases.append({"tap": tap, "channels": ch,
                          "logits": logits_zeroed(m, x, tap, ch).tolist()})
    forward[name] = {"input": list(INPUT), "logits": logits_zeroed(m, x).tolist(),
                     "cases": cases}


# ---- fmv ablate on dsA/test ---------------------------------------------------------------
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def imagenet_input(path):
    img = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
    t = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0
    return (t - MEAN) / STD


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & MASK

    def next_u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def draw(rng, candidates, m):
    """A partial Fisher-Yates shuffle of `candidates`; the first m, sorted."""
    c = list(candidates)
    for i in range(m):
        j = i + rng.next_u64() % (len(c) - i)
        c[i], c[j] = c[j], c[i]
    return sorted(c[:m])


def ablate(net, tap, channels, maps, random_sets, seed, each):
    m = NETS[net]()
    test = os.path.join(REF, "data", "dsA", "test")
    classes = sorted(d for d in os.listdir(test) if os.path.isdir(os.path.join(test, d)))
    files, labels = [], []
    for k, c in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(test, c))):
            files.append(os.path.join(test, c, f))
            labels.append(k)
    x = torch.stack([imagenet_input(f) for f in files])
    labels = torch.tensor(labels)
    base = logits_zeroed(m, x).double()
    out = {"accuracy": (base.argmax(1) == labels).double().mean().item(), "classes": {}}
    for k, c in enumerate(classes):
        mc = maps[c]
        own = labels == k

        def logit_after(chs):
            return logits_zeroed(m, x[own], tap, chs).double()[:, k].mean().item()

        after = logits_zeroed(m, x, tap, mc).double()
        before = base[own, k].mean().item()
        entry = {
            "maps": mc,
            "images": int(own.sum()),
            "accuracy_after": (after.argmax(1) == labels).double().mean().item(),
            "logit_before": before,
            "logit_after": after[own, k].mean().item(),
        }
        entry["drop"] = entry["logit_before"] - entry["logit_after"]
        rng = SplitMix64(seed + k)
        rest = [i for i in range(channels) if i not in mc]
        sets = [draw(rng, rest, len(mc)) for _ in range(random_sets)]
        drops = [before - logit_after(s) for s in sets]
        mean = float(np.mean(drops))
        sd = float(np.std(drops, ddof=1))
        entry["random"] = {"sets": random_sets, "mean_drop": mean, "sd_drop": sd,
                           "drawn": sets, "drops": drops}
        entry["z"] = (entry["drop"] - mean) / sd
        if each:
            entry["each"] = [{"filter": f, "drop": before - logit_after([f])} for f in mc]
        out["classes"][c] = entry
    return out


ablate_cases = [
    {"net": "vgg16_small_seed1", "layer": "features.28", "channels": 64,
     "maps": {"cat": [3, 17, 40], "coffee": [5, 22]}, "random_sets": 5, "seed": 7, "each": True},
    {"net": "resnet50_small_seed1", "layer": "layer4.1", "channels": 256,
     "maps": {"cat": [10, 20, 30, 113], "coffee": [10, 20, 30, 113]}, "random_sets": 4, "seed": 0,
     "each": False},
]
for case in ablate_cases:
    case["expected"] = ablate(case["net"], case["layer"], case["channels"], case["maps"],
                              case["random_sets"], case["seed"], case["each"])

with open(os.path.join(HERE, "ablation.json"), "w") as f:
    json.dump({"forward": forward, "ablate": ablate_cases}, f, indent=1)
print("wrote ablation.json")


# ---- fmv exemplars on dsA ------------------------------------------------------------------
def image_list(inputs):
    """fmv_core::ImageList: a folder's own images, then each sub-folder's (sorted by name)."""
    out = []
    for d in inputs:
        names = sorted(os.listdir(d))
        out += [os.path.join(d, n) for n in names if os.path.isfile(os.path.join(d, n))]
        for sub in [n for n in names if os.path.isdir(os.path.join(d, n))]:
            out += [os.path.join(d, sub, n) for n in sorted(os.listdir(os.path.join(d, sub)))]
    return out


def exemplars(net, tap, maps, k, by):
    m = NETS[net]()
    dsa = os.path.join(REF, "data", "dsA")
    files = [f for f in image_list([os.path.join(dsa, "train"), os.path.join(dsa, "test")])
             if not f.endswith(".json")]
    x = torch.stack([imagenet_input(f) for f in files])
    seen = []
    handle = module_of(m, tap).register_forward_hook(lambda _m, _i, o: seen.append(o.clone()))
    with torch.no_grad():
        m(x)
    handle.remove()
    a = seen[0]  # N×C×h×w
    n, c, h, w = a.shape
    flat = a.flatten(2)
    means, maxs, arg = flat.mean(2), flat.max(2).values, flat.argmax(2)
    second = flat.clone()
    second.scatter_(2, arg.unsqueeze(2), float("-inf"))
    gaps = maxs - second.max(2).values
    out = []
    for ch in maps:
        score = means[:, ch] if by == "mean" else maxs[:, ch]
        order = sorted(range(n), key=lambda i: (-score[i].item(), i))[:k]
        out.append({"filter": ch, "top": [{
            "path": os.path.relpath(files[i], dsa), "mean": means[i, ch].item(),
            "max": maxs[i, ch].item(), "argmax": [arg[i, ch].item() // w, arg[i, ch].item() % w],
            "gap": gaps[i, ch].item(), "score_next": score[order[min(j + 1, len(order) - 1)]].item(),
        } for j, i in enumerate(order)]})
    return {"files": [os.path.relpath(f, dsa) for f in files], "map_size": [h, w], "maps": out}


exemplar_cases = [
    {"net": "vgg16_small_seed1", "layer": "features.28", "k": 9, "by": "mean", "filters": None},
    {"net": "vgg16_small_seed1", "layer": "features.28", "k": 9, "by": "max", "filters": None},
    {"net": "resnet50_small_seed1", "layer": "layer4.1", "k": 5, "by": "mean",
     "filters": list(range(0, 256, 8))},
]
for case in exemplar_cases:
    maps = case["filters"] if case["filters"] is not None else list(range(64))
    case["expected"] = exemplars(case["net"], case["layer"], maps, case["k"], case["by"])
with open(os.path.join(HERE, "exemplars.json"), "w") as f:
    json.dump(exemplar_cases, f, indent=None)
print("wrote exemplars.json")
