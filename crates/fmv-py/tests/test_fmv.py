"""The `fmv` Python package: the demo end to end, the same numbers as the CLI's JSON, state
dicts in memory, typed errors. Run from the repository root (`pytest crates/fmv-py/tests`) with
the wheel installed; the CLI comparison needs `FMV_BIN` (the `fmv` binary) or skips."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import fmv

ROOT = Path(__file__).resolve().parents[3]
REF = ROOT / "testdata" / "reference"
DSA = REF / "data" / "dsA"
VGG = REF / "weights" / "vgg16_small_seed1.safetensors"
RESNET = REF / "weights" / "resnet50_small_seed1.safetensors"


def cli(*args):
    """`fmv ARGS --json` through the binary `FMV_BIN` names, or skip."""
    binary = os.environ.get("FMV_BIN")
    if not binary:
        pytest.skip("FMV_BIN does not name the fmv binary")
    out = subprocess.run([binary, *args, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """The demo's generated folders, written by a demo report."""
    out = tmp_path_factory.mktemp("demo")
    viz = fmv.Visualizer(fmv.Model.demo(), preprocess="original", size=(96, 96))
    page = viz.report(out, pattern_steps=4)
    assert Path(page).is_file()
    return out


def test_the_demo_ranks_and_draws_patterns(demo_data):
    viz = fmv.Visualizer(fmv.Model.demo(), preprocess="original", size=(96, 96))
    seen = []
    ranking = viz.rank(demo_data / "data" / "train", "layer4", n_each_img=8, n_each_class=8,
                       progress=lambda done, total: seen.append((done, total)))
    assert list(ranking["classes"]) == ["blobs", "checkerboard", "rings", "stripes"]
    assert ranking["counts"]["blobs"].dtype == np.uint32
    assert seen and seen[-1][0] == seen[-1][1]
    maps = ranking["classes"]["stripes"][:2]
    patterns = viz.patterns("layer4", maps, steps=32)
    assert [p.filter for p in patterns] == maps
    for p in patterns:
        assert p.image.dtype == np.uint8 and p.image.shape == (96, 96, 3)
        assert p.activation_trace.shape == (32,)
        assert p.steps == 32 and p.document["steps"] == 32
    assert max(p.final_activation for p in patterns) > 0


def test_python_and_cli_give_the_same_documents(tmp_path):
    w, train, test = str(VGG), str(DSA / "train"), str(DSA / "test")
    viz = fmv.Visualizer(fmv.Model.load(VGG))
    ranking = viz.rank(train, "features.28", n_each_img=5, n_each_class=5)
    assert ranking.document == cli("rank", "--weights", w, "--layer", "features.28",
                                   "--train-dir", train, "--n-each-img", "5", "--n-each-class", "5")
    acts = viz.activations([test + "/cat"], 12, top=5)
    assert acts.document == cli("activations", "--weights", w, "--layer", "12", "--top", "5",
                                test + "/cat")
    maps_file = tmp_path / "maps.json"
    maps_file.write_text(json.dumps(ranking.document["classes"]))
    sums = viz.class_sums(test, "features.28", ranking.document["classes"])
    assert sums.document == cli("class-sums", "--weights", w, "--layer", "features.28",
                                "--test-dir", test, "--top-maps", str(maps_file))
    ex = viz.exemplars([train, test], "features.28", filters=[3, 17], k=4)
    assert ex.document == cli("exemplars", "--weights", w, "--layer", "features.28", "--filters",
                              "3,17", "-k", "4", "--images", train, test)
    ab = viz.ablate(test, "features.28", top_maps=ranking["classes"], each=True, random_sets=5)
    assert ab.document == cli("ablate", "--weights", w, "--layer", "features.28", "--test-dir",
                              test, "--top-maps", str(maps_file), "--each", "--random-sets", "5")


def read_safetensors(path):
    """A safetensors file's tensors as numpy arrays (the format is a JSON header and the
    bytes), without the safetensors package."""
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    kinds = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, end = t["data_offsets"]
        data = raw[8 + n + start : 8 + n + end]
        out[name] = np.frombuffer(data, dtype=kinds[t["dtype"]]).reshape(t["shape"])
    return out


def test_a_state_dict_in_memory_is_the_file():
    from_file = fmv.Model.load(RESNET)
    in_memory = fmv.Model.load(read_safetensors(RESNET))
    assert in_memory.arch == from_file.arch == "resnet50"
    a = fmv.Visualizer(from_file).activations(DSA / "test" / "cat", "layer4.1", top=3)
    b = fmv.Visualizer(in_memory).activations(DSA / "test" / "cat", "layer4.1", top=3)
    for x, y in zip(a["images"], b["images"]):
        np.testing.assert_array_equal(x["mean"], y["mean"])


def test_errors_are_typed_with_fmvs_messages(tmp_path):
    viz = fmv.Visualizer(fmv.Model.load(VGG))
    with pytest.raises(fmv.BadConfig, match="features.99"):
        viz.activations(DSA / "test" / "cat", "features.99")
    with pytest.raises(fmv.BadConfig, match="channel 64"):
        viz.exemplars(DSA / "test", "features.28", filters=[64])
    with pytest.raises(fmv.BadInput):
        viz.rank(tmp_path, "features.28")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(fmv.BadCheckpoint):
        fmv.Model.load(bad)
    with pytest.raises(fmv.BadCheckpoint, match="missing"):
        fmv.Model.load({"features.0.weight": np.zeros((8, 3, 3, 3), np.float32)})
    assert issubclass(fmv.BadInput, fmv.FmvError)


def test_a_progress_callback_that_raises_stops_the_run():
    viz = fmv.Visualizer(fmv.Model.load(VGG), batch_size=1)

    def stop(done, total):
        raise RuntimeError(f"stop at {done}")

    with pytest.raises(RuntimeError, match="stop at 1"):
        viz.exemplars([DSA / "train"], "features.28", filters=[1], progress=stop)


def test_the_quickstart_notebook_runs_end_to_end(tmp_path, monkeypatch):
    """`examples/python/quickstart.ipynb`'s code cells, in order, in a fresh namespace."""
    nb = json.loads((ROOT / "examples" / "python" / "quickstart.ipynb").read_text())
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "quickstart.ipynb", "exec"), namespace)
    assert Path(namespace["page"]).is_file()
    assert set(namespace["ranking"]["classes"]) == {"blobs", "checkerboard", "rings", "stripes"}
    assert len(namespace["patterns"]) == 2


def test_tqdm_progress_draws_a_bar_per_count():
    pytest.importorskip("tqdm")
    import io

    def closed_bars(text: str, desc: str) -> list:
        # A closed bar is a line; what it shows last is its last carriage-returned state (how
        # often tqdm redraws before that depends on timing, so only the last state counts).
        last_states = [line.split("\r")[-1] for line in text.split("\n")]
        return [state for state in last_states if state.startswith(desc)]

    out = io.StringIO()
    viz = fmv.Visualizer(fmv.Model.load(VGG))
    viz.activations([str(DSA / "test" / "cat")], 12, progress=fmv.tqdm_progress(file=out, desc="acts"))
    # Robust patterns step their maps together: one count of steps, one bar.
    viz.patterns(12, [3, 5], steps=6, progress=fmv.tqdm_progress(file=out, desc="patterns"))
    acts, patterns = closed_bars(out.getvalue(), "acts"), closed_bars(out.getvalue(), "patterns")
    assert len(acts) == 1 and acts[0].startswith("acts: 100%") and "4/4" in acts[0]
    assert len(patterns) == 1 and patterns[0].startswith("patterns: 100%") and "6/6" in patterns[0]
    # A count that starts again (compat patterns: one per map) starts a new bar.
    out = io.StringIO()
    progress = fmv.tqdm_progress(file=out, desc="maps")
    for done, total in [(1, 3), (2, 3), (3, 3), (1, 3), (2, 3), (3, 3)]:
        progress(done, total)
    maps = closed_bars(out.getvalue(), "maps")
    assert len(maps) == 2 and all(m.startswith("maps: 100%") and "3/3" in m for m in maps)


def test_ctrl_c_stops_a_run_with_keyboard_interrupt():
    """A real SIGINT to a Python process in the middle of a long run: it stops at the next
    step, not at the end."""
    import signal
    import sys
    import time

    script = (
        "import sys, fmv\n"
        f"viz = fmv.Visualizer(fmv.Model.load({str(VGG)!r}))\n"
        "def started(done, total):\n"
        "    if done == 2: print('started', flush=True)\n"
        "try:\n"
        "    viz.patterns(12, [3], steps=1_000_000, progress=started)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True); sys.exit(3)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 3
    assert proc.stdout.read().strip() == "interrupted"
    assert time.monotonic() - sent < 30
