#!/usr/bin/env bash
# fmv's checks and benchmark on a machine with an NVIDIA GPU but no Rust toolchain, from
# binaries built elsewhere with `--features cuda`, or `--features cudnn` for cuDNN's
# convolutions (xtask/scripts/build_cuda.sh builds them; docs/PERFORMANCE.md, "GPU"; the
# benchmark's header says which).
#
# usage: xtask/scripts/gpu_check.sh BIN_DIR OUT_DIR BUILD_CHECKOUT [BENCH_ARGS...]
#   BIN_DIR         holds `fmv`, `xtask` and `it` (fmv-core's integration tests), each plain or
#                   xz-compressed as NAME.xz
#   OUT_DIR         receives the log, log.txt
#   BUILD_CHECKOUT  the checkout the binaries were built in: they find test data and write
#                   benchmark files through that path, so it is linked to this checkout when
#                   it does not exist here
#   BENCH_ARGS      passed to `xtask bench` (default: --runs 10 --full)
#
# STEPS (environment) picks steps, space-separated: tests demo forward f32 rank patterns
# robust transposed goldens (default: all). `f32` is `forward` with torch's cuDNN kept from
# TF32; `robust` times robust steps at 224 px against torch's (TF32 off, as fmv computes).
#
# Runs from the checkout's root. Needs python3 with torch, torchvision, opencv and safetensors
# (the original's side of the benchmark); the CUDA 13 libraries are taken from torch's nvidia-*
# wheels. Each step has its own time limit (about 16 minutes in all, more than a session's 15
# minutes of device time: pick STEPS, e.g. `tests f32 robust rank`, at most about 9) and a
# failed step does not stop the next; the most wanted come first.
set -u
BIN_DIR=$1 OUT_DIR=$2 BUILD_CHECKOUT=$3
shift 3
BENCH_ARGS=("$@")
[ ${#BENCH_ARGS[@]} -eq 0 ] && BENCH_ARGS=(--runs 10 --full)
mkdir -p "$OUT_DIR"
exec > >(tee "$OUT_DIR/log.txt") 2>&1
step() { echo; echo "=== $* ($(date +%T))"; }
STEPS=${STEPS:-tests demo forward f32 rank patterns robust transposed goldens}
wants() { [[ " $STEPS " == *" $1 "* ]]; }

step "binaries"
BIN=$(mktemp -d) WORK=$(mktemp -d)
for name in fmv xtask it; do
  if [ -f "$BIN_DIR/$name.xz" ]; then
    python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
      "$BIN_DIR/$name.xz" "$BIN/$name"
  else
    cp "$BIN_DIR/$name" "$BIN/$name"
  fi
  chmod +x "$BIN/$name"
done
NVIDIA=$(python3 -c "import nvidia; print(list(nvidia.__path__)[0])")
LD_LIBRARY_PATH=$(ls -d "$NVIDIA"/*/lib | tr '\n' ':')/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH
ldd "$BIN/fmv" | grep -E 'cuda|cublas|curand|nvrtc|cudnn|not found'
if [ ! -e "$BUILD_CHECKOUT" ]; then
  mkdir -p "$(dirname "$BUILD_CHECKOUT")" && ln -s "$PWD" "$BUILD_CHECKOUT"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
nproc

if wants tests; then
  step "the GPU against the CPU (fmv-core tests, module cuda)"
  timeout 100 "$BIN/it" cuda:: --test-threads 1 --nocapture
fi

if wants demo; then
  step "fmv on both devices: rank on the reference networks, robust patterns on the demo"
  TRAIN=testdata/reference/data/dsA/train
  TIMEFORMAT="%R s"
  for net in resnet50_small_seed1:-2 vgg16_small_seed1:12; do
    for device in cpu cuda; do
      echo -n "rank ${net%%:*} on $device: "
      time "$BIN/fmv" rank --weights "testdata/reference/weights/${net%%:*}.safetensors" \
        --preprocess original --layer "${net#*:}" --train-dir $TRAIN --device $device --json \
        >"$WORK/rank-$device.json"
    done
    python3 - "$WORK" "${net%%:*}" <<'PY'
import json, sys
cpu, gpu = (json.load(open(f"{sys.argv[1]}/rank-{d}.json")) for d in ("cpu", "cuda"))
differ = sum(a != b for c in cpu["counts"] for a, b in zip(cpu["counts"][c], gpu["counts"][c]))
total = sum(len(v) for v in cpu["counts"].values())
same = "the same" if cpu["classes"] == gpu["classes"] else "NOT the same"
means = [(a, b) for c in cpu["mean_activation"] for a, b in zip(cpu["mean_activation"][c], gpu["mean_activation"][c])]
scale = max(abs(a) for a, _ in means)
worst = max(abs(a - b) for a, b in means) / scale
print(f"rank {sys.argv[2]}: {same} maps per class on both devices; {differ} of {total} counts differ;"
      f" mean activations within {worst:.1e} of the largest")
PY
  done
  for device in cpu cuda; do
    echo -n "robust patterns, demo-resnet layer4, 4 filters, 64 steps, on $device: "
    time "$BIN/fmv" patterns --model demo-resnet --layer layer4 --filter 1,2,3,4 --steps 64 \
      --device $device --json -o "$WORK/patterns-$device.png" >"$WORK/patterns-$device.json"
  done
  python3 - "$WORK" <<'PY'
import json, sys
cpu, gpu = (json.load(open(f"{sys.argv[1]}/patterns-{d}.json")) for d in ("cpu", "cuda"))
for c, g in zip(cpu, gpu):
    rel = abs(g["final_activation"] - c["final_activation"]) / abs(c["final_activation"])
    print(f"filter {c['filter']}: final activation cpu {c['final_activation']:.6f}, cuda {g['final_activation']:.6f}, relative {rel:.2e}")
PY
fi

bench() { # STEP PART TIMEOUT [VAR=VALUE...]: one part of the benchmark
  local name=$1 part=$2 limit=$3
  shift 3
  wants "$name" || return 0
  step "bench $part on the GPU $*"
  env "$@" timeout "$limit" "$BIN/xtask" bench "$part" --device cuda --fmv "$BIN/fmv" \
    --torch python3 "${BENCH_ARGS[@]}"
}
bench forward forward 75
bench f32 forward 75 FMV_BENCH_TF32=0
bench rank rank 200
bench patterns patterns 180
bench robust robust 150 FMV_BENCH_TF32=0

if wants transposed; then
  step "bench patterns on the GPU, every input gradient through conv_transpose2d (as before)"
  FMV_INPUT_GRAD=transposed timeout 90 "$BIN/xtask" bench patterns --device cuda \
    --fmv "$BIN/fmv" --runs 3
fi

if wants goldens; then
  step "the goldens on the GPU (fmv-core tests, FMV_TEST_DEVICE=cuda)"
  FMV_TEST_DEVICE=cuda timeout 90 "$BIN/it" --skip cuda:: --test-threads 4
fi

step "done"
