"""Makes the torch fixtures in this folder. Needs torch 2.15 / torchvision 0.29 / timm 1.0 / safetensors.

    python testdata/torch/make_fixtures.py

Writes:
  headers.json            state-dict keys and shapes of real torchvision/timm networks (no weights)
  narrow_*.safetensors    small random networks built from torchvision's own classes
  narrow_*.json           their per-channel mean activations and logits computed by torch
  resnet50_small_seed1.pth   the reference small ResNet re-saved with torch.save (zip format)
  vgg_features_wrapped.pth   a headless VGG state dict under {"state_dict": {"module.…"}}
"""
import json, os
import torch, torchvision, timm
from torch import nn
from torchvision.models import resnet as tvr, vgg as tvv
from safetensors.torch import save_file, load_file

from fixture_input import test_input

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
torch.set_num_threads(2)

# ---- real key sets --------------------------------------------------------------------------
headers = {}
for name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2",
             "resnext50_32x4d", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
             "vgg19", "vgg19_bn"]:
    m = getattr(torchvision.models, name)(weights=None)
    headers[name] = {k: list(v.shape) for k, v in m.state_dict().items()}
for name in ["vgg16", "resnet50"]:
    m = timm.create_model(name, pretrained=False)
    headers["timm_" + name] = {k: list(v.shape) for k, v in m.state_dict().items()}
with open(os.path.join(HERE, "headers.json"), "w") as f:
    json.dump(headers, f, sort_keys=True, separators=(",", ":"))


# ---- small networks from torchvision's classes ----------------------------------------------
def narrow_resnet(block, layers, base, num_classes, groups=1, width_per_group=None):
    """torchvision.models.ResNet.__init__ with the stem/stage widths scaled to `base`."""
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d
    m.inplanes = base
    m.dilation = 1
    m.groups = groups
    m.base_width = width_per_group or 64
    m.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(base)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(block, base, layers[0])
    m.layer2 = m._make_layer(block, base * 2, layers[1], stride=2)
    m.layer3 = m._make_layer(block, base * 4, layers[2], stride=2)
    m.layer4 = m._make_layer(block, base * 8, layers[3], stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Linear(base * 8 * block.expansion, num_classes)
    return m


def narrow_vgg(cfg, batch_norm, hidden, num_classes):
    m = tvv.VGG(tvv.make_layers(cfg, batch_norm=batch_norm), num_classes=num_classes)
    last = [c for c in cfg if c != "M"][-1]
    m.classifier = nn.Sequential(nn.Linear(last * 49, hidden), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(hidden, num_classes))
    return m


def randomise_bn(m):
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.weight.data = 0.5 + torch.rand(n, generator=g)
            mod.bias.data = 0.2 * torch.randn(n, generator=g)
            mod.running_mean.data = 0.1 * torch.randn(n, generator=g)
            mod.running_var.data = 0.5 + torch.rand(n, generator=g)


def taps_resnet(m):
    taps = {"conv1": m.relu, "maxpool": m.maxpool, "avgpool": m.avgpool}
    for s in range(1, 5):
        layer = getattr(m, f"layer{s}")
        taps[f"layer{s}"] = layer
        for b in range(len(layer)):
            taps[f"layer{s}.{b}"] = layer[b]
    return taps


def taps_vgg(m):
    taps = {"avgpool": m.avgpool}
    feats = list(m.features)
    for i, mod in enumerate(feats):
        if isinstance(mod, nn.Conv2d):
            j = i + 1
            while not isinstance(feats[j], nn.ReLU):
                j += 1
            taps[f"features.{i}"] = feats[j]  # the value after the ReLU
        elif isinstance(mod, nn.MaxPool2d):
            taps[f"features.{i}"] = mod
    return taps


def record(name, m, taps):
    m.eval()
    out = {"name": name, "inputs": {}}
    for (n, h, w) in [(2, 224, 224), (1, 200, 160)]:
        stored = {}
        hooks = [mod.register_forward_hook(lambda _m, _i, o, k=k: stored.__setitem__(k, o.detach().clone()))
                 for k, mod in taps.items()]
        with torch.no_grad():
            logits = m(test_input(n, h, w))
        for hk in hooks:
            hk.remove()
        res = {k: v.mean((2, 3)).tolist() for k, v in stored.items()}
        res["logits"] = logits.tolist()
        out["inputs"][f"{n}x{h}x{w}"] = res
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(HERE, f"{name}.safetensors"))
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))


m = narrow_resnet(tvr.BasicBlock, [2, 2, 2, 2], 8, 5); randomise_bn(m)
record("narrow_resnet18", m, taps_resnet(m))
m = narrow_resnet(tvr.Bottleneck, [1, 2, 1, 1], 8, 3, groups=2, width_per_group=32); randomise_bn(m)
record("narrow_resnext", m, taps_resnet(m))
m = narrow_vgg([8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"], True, 16, 4); randomise_bn(m)
record("narrow_vgg11_bn", m, taps_vgg(m))

# ---- .pth files -----------------------------------------------------------------------------
ref = load_file(os.path.join(HERE, "..", "reference", "weights", "resnet50_small_seed1.safetensors"))
torch.save(ref, os.path.join(HERE, "resnet50_small_seed1.pth"))
feats = {k: v for k, v in load_file(os.path.join(HERE, "narrow_vgg11_bn.safetensors")).items()
         if k.startswith("features.")}
torch.save({"state_dict": {"module." + k: v for k, v in feats.items()}, "epoch": 3},
           os.path.join(HERE, "vgg_features_wrapped.pth"))
