#!/bin/sh
# Watching a run, end to end with the built trainers (make trainers) on Fashion-MNIST:
#  1. OUT/curves.png after every epoch (loss and learning rate; a segmentation model's
#     validation metrics too), redrawn when a resumed run adds epochs;
#  2. --tensorboard DIR: the event files read back by the tensorboard package (PyPI, in
#     build/venv from scripts/test-venv.sh) hold train.csv's numbers;
#  3. after SIGTERM mid-epoch and --resume, the epoch's logged means equal an uninterrupted run's;
#  4. pictures: labelled, scaled-up reconstructions; `sample` refuses a plain autoencoder;
#     a 2-d latent plotted as it is; Isomap against a numpy reference on a swiss roll;
#  5. a relative data folder in a spec means the same data wherever the trainer is started.
set -eu
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/build/watch-test
rm -rf "$out"
mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
py=$(scripts/test-venv.sh) || fail "no Python environment with tensorboard (scripts/test-venv.sh)"

# width and height of a PNG, from its IHDR chunk
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4 "x" $5*16777216+$6*65536+$7*256+$8}'; }

# 1 + 2. curves and TensorBoard events of a VAE: one epoch, then resumed to two
bin/vae2 train --epochs 1 --limit 6000 --out "$out/vae2" --tensorboard "$out/vae2/tb" --quiet
[ "$(png_size "$out/vae2/curves.png")" = 820x500 ] ||
  fail "vae2 curves.png is $(png_size "$out/vae2/curves.png"), not 820x500 (loss and learning-rate panels)"
cp "$out/vae2/curves.png" "$out/curves1.png"
bin/vae2 train --epochs 2 --limit 6000 --out "$out/vae2" --tensorboard "$out/vae2/tb" --resume --quiet
cmp -s "$out/curves1.png" "$out/vae2/curves.png" && fail "curves.png was not redrawn after the second epoch"
"$py" - "$out/vae2" <<'EOF' || fail "the TensorBoard events do not hold train.csv's numbers"
import csv, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/train.csv")))
ea = EventAccumulator(d + "/tb")
ea.Reload()
tags = sorted(ea.Tags()["scalars"])
want = {"train/loss": "train_loss", "val/loss": "val_loss", "lr": "lr", "train/bce": "bce",
        "train/kl_normal": "kl_normal"}
assert tags == sorted(want), tags
for tag, col in want.items():
    got = [(e.step, e.value) for e in ea.Scalars(tag)]
    exp = [(int(r["epoch"]), float(r[col])) for r in rows]
    assert len(got) == len(exp) == 2, (tag, got)
    for (s, v), (es, ev) in zip(got, exp):
        assert s == es and abs(v - ev) <= 1e-6 * abs(ev), (tag, got, exp)
print("tensorboard: %d scalars over 2 epochs (2 event files, one per run) match train.csv" % len(tags))
EOF
echo "curves.png: 820x500 after epoch 1, redrawn after the resumed epoch 2"

# a segmentation model adds the validation pixel accuracy and mean IoU
bin/unet_landcover_small train --epochs 1 --limit 32 --data "$out/synth" --out "$out/unet" \
  --tensorboard "$out/unet/tb" --quiet > "$out/unet.log" 2>&1 || { cat "$out/unet.log"; fail "unet train"; }
[ "$(png_size "$out/unet/curves.png")" = 820x750 ] ||
  fail "unet curves.png is $(png_size "$out/unet/curves.png"), not 820x750 (three panels)"
"$py" -c "
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1]); ea.Reload()
t = ea.Tags()['scalars']
assert 'val/mean_iou' in t and 'val/pixel_accuracy' in t, t
" "$out/unet/tb" || fail "the U-Net's events lack the validation mean IoU or pixel accuracy"
echo "curves.png of the U-Net: a third panel (pixel accuracy, mean IoU); both in its events"

# 3. the logged means of an epoch resumed mid-way cover the whole epoch
args="--epochs 1 --limit 20000 --seed 4 --quiet"
bin/vae2 train $args --out "$out/straight" > /dev/null
mid=""
for moment in 1.0 0.5 1.8 0.3; do   # until a SIGTERM lands inside the epoch
  rm -rf "$out/term"
  bin/vae2 train $args --out "$out/term" > "$out/term.txt" 2>&1 &
  pid=$!
  sleep $moment
  kill -TERM $pid 2>/dev/null || true
  status=0
  wait $pid || status=$?
  if [ $status -eq 143 ] && grep -q "interrupted at step" "$out/term.txt"; then mid=$moment; break; fi
done
[ -n "$mid" ] || fail "no SIGTERM landed inside the epoch: $(cat "$out/term.txt")"
bin/vae2 train $args --out "$out/term" --resume > /dev/null
cut -d, -f1-7 "$out/straight/train.csv" > "$out/straight.csv"
cut -d, -f1-7 "$out/term/train.csv" > "$out/term.csv"
cmp -s "$out/straight.csv" "$out/term.csv" ||
  fail "after SIGTERM mid-epoch and --resume the logged means differ: $(tail -n1 "$out/straight.csv") vs $(tail -n1 "$out/term.csv")"
echo "resume mid-epoch: $(grep -o "interrupted at [^:]*" "$out/term.txt"); the epoch's logged means equal an uninterrupted run's"

# 4. pictures
bin/vae2 eval --out "$out/vae2" > /dev/null
[ "$(png_size "$out/vae2/reconstructions.png")" = 779x171 ] ||
  fail "reconstructions.png is $(png_size "$out/vae2/reconstructions.png"), not 779x171 (labels, 3x tiles)"
bin/dense_ae train --epochs 1 --limit 2560 --out "$out/dense" --quiet
if bin/dense_ae sample --out "$out/dense" > "$out/sample.txt" 2>&1; then fail "dense_ae sample ran"; fi
grep -q "model 'dense_ae' is not generative" "$out/sample.txt" || fail "sample's refusal does not say why: $(cat "$out/sample.txt")"
bin/vae2 latent --points 300 --out "$out/vae2" > "$out/latent.txt"
grep -q "plotted as they are" "$out/latent.txt" || fail "vae2's 2-d latent was mapped: $(cat "$out/latent.txt")"
bin/vae2 encode --out "$out/vae2" --quiet
awk -F, 'NR > 1 && NR <= 301 { printf "%.5g %.5g\n", $2, $3 }' "$out/vae2/latent_2d.csv" > "$out/map.txt"
awk -F, 'NR <= 300 { printf "%.5g %.5g\n", $(NF-1), $NF }' "$out/vae2/latent.csv" > "$out/raw.txt"
cmp -s "$out/map.txt" "$out/raw.txt" || fail "latent_2d.csv of a 2-d latent is not the latent itself"
bin/vae2 sample --n 8 --out "$out/vae2" --quiet
[ -s "$out/vae2/latent_grid.png" ] || fail "vae2 sample wrote no latent_grid.png"
bin/dense_ae latent --method isomap --points 400 --out "$out/dense" > "$out/iso.txt" ||
  fail "latent --method isomap failed: $(cat "$out/iso.txt")"
echo "pictures: labelled reconstructions, sample refused for a plain autoencoder, raw 2-d latent, $(head -n1 "$out/iso.txt")"
cc -O2 -fopenmp -std=gnu11 -Wall -Wextra -Werror -Iruntime -o "$out/isomap_main" tests/watch/isomap_main.c \
  build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
/usr/bin/python3 tests/watch/isomap_check.py "$out/isomap_main" "$out"

# 5. a relative data folder: relative to the spec's folder, wherever the trainer is started
mkdir -p "$out/rel/specs" "$out/rel/data" "$out/elsewhere"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  ln -s /usr/share/datasets/fashion-mnist/$f "$out/rel/data/"
done
sed 's|^  loss |  data {\n    source idx(dir = "../data")\n  }\n  loss |' specs/dense_ae.ae > "$out/rel/specs/rel.ae"
(cd "$out/rel" && "$root/bin/aec" build specs/rel.ae > build.log 2>&1) || { cat "$out/rel/build.log"; fail "aec build of a spec with a relative data folder"; }
(cd "$out/elsewhere" && "$out/rel/bin/dense_ae" train --epochs 1 --limit 512 --out run --quiet) ||
  fail "the trainer started from another folder did not find the spec's relative data folder"
echo "relative data folder: '../data' in specs/rel.ae found by bin/dense_ae started from another folder"
