#!/usr/bin/env bash
# capture_outputs.sh FMV OUT: runs every command of the `fmv` binary FMV on the embedded demo
# (three demo reports, then each subcommand on the report's generated images, then bad input),
# keeping each command's stdout, stderr and exit code and every file it writes under OUT.
#
# Compare two builds after a refactoring that must not change any output:
#   xtask/scripts/capture_outputs.sh /tmp/fmv-before /tmp/before
#   xtask/scripts/capture_outputs.sh target/release/fmv /tmp/after
#   diff -r /tmp/before /tmp/after   # manifests differ by their timings; e-mem by free memory
set -u
BIN=$(realpath "$1"); OUT=$2
rm -rf "$OUT"; mkdir -p "$OUT"
cd "$OUT"
run() { name=$1; shift; "$BIN" "$@" > "$name.stdout" 2> "$name.stderr"; echo $? > "$name.rc"; }
# the demo report (also makes the images)
run report-resnet report -o rep-resnet
run report-vgg report --demo vgg -o rep-vgg --pattern-steps 16
run report-compat report -o rep-compat --mode compat --style original --svg --pattern-steps 16
D=rep-resnet/data
M="--model demo-resnet --preprocess original --size 96"
run layers layers --model demo-resnet --json
run layers-txt layers --model demo-vgg
run acts activations $M --layer layer4.1 --top 5 $D/test/blobs $D/test/rings --json
run acts-txt activations $M --layer -1 --top 3 $D/test/blobs
run rank rank $M --layer -1 --train-dir $D/train --n-each-img 8 --n-each-class 8 --json -o rank.json
run rank-txt rank $M --layer -1 --train-dir $D/train --n-each-img 8 --n-each-class 8
run shard0 rank $M --layer -1 --train-dir $D/train --n-each-img 8 --n-each-class 8 --shard 0/2 -o part0.json --json
run shard1 rank $M --layer -1 --train-dir $D/train --n-each-img 8 --n-each-class 8 --shard 1/2 -o part1.json
run merge rank --merge part0.json part1.json --json -o merged.json
run overlay overlay $M --layer -1 --filters 3 --images $D/test/blobs -o ov1 --json
run overlay2 overlay --model demo-vgg --preprocess original --size 96 --layer -1 --filters 3,5 --images $D/test -o ov2 --json
run csums class-sums $M --layer -1 --test-dir $D/test --top-maps rank.json --json
run csums-txt class-sums $M --layer -1 --test-dir $D/test --train-dir $D/train --n-each-img 8 --n-each-class 8
run pat-robust patterns $M --layer -1 --filter 3,5 --steps 12 -o pat/robust.png --json
run pat-compat patterns --model demo-resnet --layer -1 --filter 4 --mode compat --upscaling-steps 4 --opt-steps 5 -o pat/compat.png --json --reference-images $D/test/blobs
run pat-neuron patterns $M --layer layer3 --filter 2 --steps 6 --objective neuron -o pat/neuron.png
# errors
run e-layer activations $M --layer nope $D/test/blobs
run e-lr patterns $M --layer -1 --filter 3 --lr -1 -o x.png
run e-mode patterns $M --layer -1 --filter 3 --steps 3 --mode compat -o x.png
run e-nimg rank $M --layer -1 --train-dir $D/train --n-each-img 0
run e-nimg2 rank $M --layer -1 --train-dir $D/train --n-each-img 999
run e-classes rank $M --layer -1 --train-dir $D/train --classes blobs,blobs
run e-classes2 rank $M --layer -1 --train-dir $D/train --classes blobs,nope
run e-shard rank $M --layer -1 --train-dir $D/train --shard 3/2 -o p.json
run e-merge rank --merge part0.json part0.json
run e-size activations --model demo-resnet --size 0 --layer -1 $D/test/blobs
run e-preset activations --model demo-resnet --preprocess foo --layer -1 $D/test/blobs
run e-top activations $M --top 0 --layer -1 $D/test/blobs
run e-filters overlay $M --layer -1 --filters 999 --images $D/test/blobs -o ov3
run e-arch layers --model demo-resnet --arch vgg16
run e-up patterns --model demo-resnet --layer -1 --filter 3 --mode compat --upscaling-factor 1.01 -o x.png
run e-init patterns --model demo-resnet --layer -1 --filter 3 --mode compat --init-size 2 -o x.png
run e-mem patterns --model demo-resnet --layer -1 --filter 3 --size 100000 -o x.png
run e-filt2 patterns --model demo-resnet --layer -1 --filter 3,3 -o x.png
run e-device layers --model demo-resnet --device cuda
