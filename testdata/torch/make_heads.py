"""Makes the fine-tuned-head and checkpoint-wrapper fixtures. Needs torch 2.15 / torchvision 0.29 /
safetensors; reads the narrow networks `make_fixtures.py` wrote.

    python testdata/torch/make_heads.py

Writes:
  heads.safetensors   head tensors of several fine-tuned heads, under `CASE/` (`r_bn/fc.0.weight`)
  heads.json          per case: the backbone file, the --head layout (or null for torchvision's
                      convention), and torch's logits for the test input
  wrapped/*.pth       one tiny VGG state dict saved as training code saves it: Lightning
                      (`state_dict` + `model.`), DataParallel (`module.`), torch.compile
                      (`_orig_mod.`), EMA copies (`state_dict_ema`, `model_ema`), and a whole
                      pickled nn.Module (`torch.save(model)`)
"""
import json, os
import torch
from torch import nn
from torchvision.models import resnet as tvr, vgg as tvv
from safetensors.torch import save_file, load_file

from fixture_input import test_input

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
torch.set_num_threads(2)
INPUT = (2, 96, 80)


def randomise_bn1d(head):
    g = torch.Generator().manual_seed(2)
    for mod in head.modules():
        if isinstance(mod, nn.BatchNorm1d):
            n = mod.num_features
            if mod.affine:
                mod.weight.data = 0.5 + torch.rand(n, generator=g)
                mod.bias.data = 0.2 * torch.randn(n, generator=g)
            mod.running_mean.data = 0.1 * torch.randn(n, generator=g)
            mod.running_var.data = 0.5 + torch.rand(n, generator=g)


def resnet18_narrow():
    return load_file(os.path.join(HERE, "narrow_resnet18.safetensors"))


def vgg11_bn_narrow():
    return load_file(os.path.join(HERE, "narrow_vgg11_bn.safetensors"))


def narrow_resnet_module(sd):
    """torchvision's ResNet18 class at base width 8, holding `sd`'s backbone."""
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d
    m.inplanes, m.dilation, m.groups, m.base_width = 8, 1, 1, 64
    m.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(8)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(tvr.BasicBlock, 8, 2)
    m.layer2 = m._make_layer(tvr.BasicBlock, 16, 2, stride=2)
    m.layer3 = m._make_layer(tvr.BasicBlock, 32, 2, stride=2)
    m.layer4 = m._make_layer(tvr.BasicBlock, 64, 2, stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Linear(64, 5)
    m.load_state_dict(sd)
    return m


def narrow_vgg_module(sd):
    cfg = [8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"]
    m = tvv.VGG(tvv.make_layers(cfg, batch_norm=True), num_classes=4)
    m.classifier = nn.Sequential(nn.Linear(32 * 49, 16), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(16, 4))
    m.load_state_dict(sd)
    return m


R, V = 64, 32 * 49  # the pooled features' widths
cases = {
    # name: (family, head, --head layout or None)
    "r_gap": ("resnet", nn.Sequential(nn.Linear(R, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 5)), None),
    "r_dropout_first": ("resnet", nn.Sequential(nn.Dropout(), nn.Linear(R, 3)), None),
    "r_bn": ("resnet", nn.Sequential(nn.Linear(R, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(),
                                     nn.Linear(16, 5)), None),
    "r_bn_first": ("resnet", nn.Sequential(nn.BatchNorm1d(R), nn.Dropout(), nn.Linear(R, 5)),
                   "batchnorm,dropout,linear"),
    "r_gelu_nobias": ("resnet", nn.Sequential(nn.Linear(R, 16), nn.GELU(), nn.Linear(16, 5, bias=False)),
                      "linear,gelu,linear"),
    "v_tumor_like": ("vgg", nn.Sequential(nn.Linear(V, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(),
                                          nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)), None),
    "v_bn_before_linear": ("vgg", nn.Sequential(nn.Linear(V, 16), nn.ReLU(), nn.BatchNorm1d(16),
                                                nn.Dropout(), nn.Linear(16, 4)),
                           "linear,relu,bn,dropout,linear"),
    "v_bn_between_activations": ("vgg", nn.Sequential(nn.Linear(V, 16), nn.ReLU(),
                                                      nn.BatchNorm1d(16, affine=False), nn.SiLU(),
                                                      nn.Linear(16, 4)),
                                 "linear,relu,bn,silu,linear"),
}

backbones = {"resnet": ("narrow_resnet18", narrow_resnet_module(resnet18_narrow()), "fc"),
             "vgg": ("narrow_vgg11_bn", narrow_vgg_module(vgg11_bn_narrow()), "classifier")}
tensors, golden = {}, {}
x = test_input(*INPUT)
for name, (family, head, layout) in cases.items():
    backbone_name, model, attr = backbones[family]
    for p in head.parameters():
        with torch.no_grad():
            p.copy_(0.3 * torch.randn(p.shape))
    randomise_bn1d(head)
    setattr(model, attr, head)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    for k, v in head.state_dict().items():
        tensors[f"{name}/{attr}.{k}"] = v.contiguous().clone()
    golden[name] = {"backbone": f"{backbone_name}.safetensors", "prefix": attr, "layout": layout,
                    "input": list(INPUT), "logits": logits.tolist()}
save_file(tensors, os.path.join(HERE, "heads.safetensors"))
with open(os.path.join(HERE, "heads.json"), "w") as f:
    json.dump(golden, f, indent=1, sort_keys=True)

# ---- checkpoints as training code saves them ------------------------------------------------
tiny = {k: v for k, v in vgg11_bn_narrow().items() if k.split(".")[:2] in (["features", "0"], ["features", "1"])}
ema = {k: (v * 0.5 if v.is_floating_point() else v) for k, v in tiny.items()}
out = os.path.join(HERE, "wrapped")
os.makedirs(out, exist_ok=True)
prefixed = lambda sd, p: {p + k: v for k, v in sd.items()}
torch.save({"state_dict": prefixed(tiny, "model."), "epoch": 3, "global_step": 120,
            "pytorch-lightning_version": "2.4.0", "optimizer_states": [{"state": {}}],
            "lr_schedulers": [], "hyper_parameters": {"lr": 0.01}},
           os.path.join(out, "lightning.ckpt"))
torch.save(prefixed(tiny, "module."), os.path.join(out, "data_parallel.pth"))
torch.save(prefixed(tiny, "_orig_mod."), os.path.join(out, "compiled.pth"))
torch.save({"state_dict": tiny, "state_dict_ema": ema, "epoch": 7, "arch": "vgg11_bn"},
           os.path.join(out, "timm_ema.pth.tar"))
torch.save({"model": tiny, "model_ema": ema, "optimizer": {}, "epoch": 7},
           os.path.join(out, "model_ema.pth"))
whole = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
torch.save(whole, os.path.join(out, "whole_module.pth"))
