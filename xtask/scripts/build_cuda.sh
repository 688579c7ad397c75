#!/usr/bin/env bash
# Builds fmv's CUDA binaries on a machine with neither a CUDA toolkit nor a GPU, for
# xtask/scripts/gpu_check.sh to run on the device machine (docs/PERFORMANCE.md, "Building").
#
# usage: xtask/scripts/build_cuda.sh [--cudnn] WORK_DIR
#   --cudnn   candle's convolutions on cuDNN (the `cudnn` features; cuDNN 9 from PyPI too)
#   WORK_DIR  receives the wheels (whl/), the toolkit they unpack to (x/) and the binaries
#             `fmv`, `xtask` and `it` (fmv-core's integration tests), stripped and
#             xz-compressed, in bin/: the BIN_DIR of gpu_check.sh. Wheels already there are
#             not downloaded again.
#
# The toolkit is PyPI's CUDA 13.0 (the device machine's driver JIT-compiles PTX up to its own
# CUDA version, 13.0; a newer nvcc emits PTX it refuses), cuBLAS and cuRAND from CUDA 13, and a
# stub libcuda.so for the linker (the driver's library exists only where a GPU does). The
# build goes to target/cuda of this checkout, for sm_90 (H100, H200).
set -euo pipefail
cudnn=0
if [ "${1:-}" = --cudnn ]; then
  cudnn=1
  shift
fi
W=$(realpath -m "${1:?usage: build_cuda.sh [--cudnn] WORK_DIR}")
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
mkdir -p "$W/whl" "$W/x" "$W/bin"

pkgs=(nvidia-cuda-nvcc==13.0.* nvidia-nvvm==13.0.* nvidia-cuda-crt==13.0.*
  nvidia-cuda-runtime==13.0.* nvidia-cuda-nvrtc==13.0.* nvidia-cuda-cccl==13.0.*
  nvidia-cublas==13.* nvidia-curand==10.*)
features=fmv-cli/cuda,xtask/cuda,fmv-core/cuda
if [ $cudnn = 1 ]; then
  pkgs+=(nvidia-cudnn-cu13==9.*)
  features=fmv-cli/cudnn,xtask/cudnn,fmv-core/cudnn
fi
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$W/whl" "${pkgs[@]}"
for wheel in "$W"/whl/*.whl; do
  python3 -m zipfile -e "$wheel" "$W/x"
done

# The CUDA 13 wheels unpack into nvidia/cu13/{bin,include,lib,nvvm}; cuDNN's into
# nvidia/cudnn/{include,lib}, copied beside them so that one folder is the toolkit.
N=$W/x/nvidia/cu13
chmod +x "$N"/bin/* "$N"/nvvm/bin/*
if [ $cudnn = 1 ]; then
  cp -r "$W"/x/nvidia/cudnn/include/. "$N/include/"
  cp -r "$W"/x/nvidia/cudnn/lib/. "$N/lib/"
fi
# The linker looks for the unversioned names.
for lib in "$N"/lib/lib*.so.[0-9]*; do
  base=$(basename "$lib")
  case $base in
    *.alt.*) continue ;;
  esac
  ln -sf "$base" "$N/lib/${base%%.so.*}.so"
done
echo 'void fmv_stub(void) {}' | gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -x c - -o "$N/lib/libcuda.so"

# One cargo invocation, so that features unify once; with an explicit --target, RUSTFLAGS
# reach only the target's crates, not the build scripts.
cd "$ROOT"
PATH=$N/bin:$PATH CUDA_PATH=$N CUDA_COMPUTE_CAP=90 LIBRARY_PATH=$N/lib \
  RUSTFLAGS="-L $N/lib -C link-arg=-Wl,--unresolved-symbols=ignore-in-object-files \
-C link-arg=-Wl,--push-state,--no-as-needed -C link-arg=-lcuda -C link-arg=-Wl,--pop-state" \
  cargo build --release --target x86_64-unknown-linux-gnu --target-dir target/cuda \
  -p fmv-cli -p xtask -p fmv-core --features "$features" \
  --bin fmv --bin xtask --test it --message-format=json-render-diagnostics >"$W/build.json"

# The integration tests' binary has a hashed name: cargo's JSON says which.
it=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and "/fmv-core#" in m["package_id"] \
            and m["target"]["name"] == "it" and m.get("executable"):
        print(m["executable"])
' "$W/build.json" | tail -1)
out=target/cuda/x86_64-unknown-linux-gnu/release
for pair in "fmv:$out/fmv" "xtask:$out/xtask" "it:$it"; do
  name=${pair%%:*}
  strip -o "$W/bin/$name" "${pair#*:}"
  xz -T0 -f "$W/bin/$name"
done
ls -l "$W/bin"
echo "needed by fmv:"
readelf -d "$out/fmv" | grep NEEDED
