#!/bin/sh
# tests/family/images_folder.sh - `source images(dir = ...)`: one folder of PNG images, each
# its own target. Writes 600 Fashion-MNIST images as 8-bit grey PNGs and the same bytes as
# IDX files, trains one epoch of a denoising model (its noise on a view of the input, a
# bias-free conv, a bilinear upsampling) from each source: the losses must be equal to the
# last digit. Without a test folder, eval scores the held-out validation images and gives
# the denoising report; an image-pairs model with a noised input gets it too. An empty
# folder and a folder without test images are refused, naming the folder. Needs bin/aec;
# about 15 s on 2 cores.
set -eu
cd "$(dirname "$0")/../.."
OUT=$(mktemp -d /tmp/aec_images_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
export OMP_WAIT_POLICY=PASSIVE
fail() { echo "images_folder: FAIL: $*" >&2; exit 1; }
[ -x bin/aec ] && [ -f build/libaert.a ] || fail "bin/aec or build/libaert.a is missing (make all)"
N=600

cat > $OUT/write.py <<'PY'
import gzip, os, struct, sys, zlib
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = gzip.open(os.path.join(src, 'train-images-idx3-ubyte.gz')).read()
count, h, w = struct.unpack_from('>III', b, 4)
ims = [b[16 + i * h * w:16 + (i + 1) * h * w] for i in range(n)]
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
os.makedirs(os.path.join(out, 'digits'))
os.makedirs(os.path.join(out, 'empty'))
for i, im in enumerate(ims):
    raw = b''.join(b'\0' + im[y * w:(y + 1) * w] for y in range(h))
    with open(os.path.join(out, 'digits', 'img%04d.png' % i), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) +
                chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
with open(os.path.join(out, 'images.idx'), 'wb') as f:
    f.write(struct.pack('>IIII', 0x803, n, h, w) + b''.join(ims))
with open(os.path.join(out, 'labels.idx'), 'wb') as f:
    f.write(struct.pack('>II', 0x801, n) + bytes(n))
PY
python3 $OUT/write.py /usr/share/datasets/fashion-mnist $OUT $N

# One network, three sources: images, the same bytes as IDX, and image pairs of a folder with itself.
spec() {  # name source target-line
  cat > $OUT/$1.ae <<AE
model $1 {
  input x: f32[28, 28, 1]
  $3
  batch 32
  epochs 1
  noisy = x |> flatten |> gaussian_noise(0.3, min = 0, max = 1) |> reshape([28, 28, 1])
  h = conv(noisy, 8, k=3, bias=false) |> batchnorm |> relu |> maxpool(2)
  y = upsample(h, 2, mode=bilinear) |> conv(1, k=3) |> sigmoid
  loss bce(y, $4)
  data {
    source $2
    validation 0.2
  }
}
AE
  bin/aec build --no-compile --out $OUT/$1.gen $OUT/$1.ae > /dev/null
  ${CC:-cc} -O2 -fopenmp -std=gnu11 -Wall -Wextra -Werror -Iruntime -I$OUT/$1.gen -o $OUT/$1 $OUT/$1.gen/model.c \
    build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
}
spec folder 'images(dir = "digits")' '' x
spec idx 'idx(train = "images.idx", train_labels = "labels.idx", test = "images.idx", test_labels = "labels.idx")' '' x
spec pairs 'image_pairs(train = "digits", train_labels = "digits", test = "digits", test_labels = "digits")' \
  'target clean: f32[28, 28, 1]' clean

$OUT/folder train --quiet --threads 1 --data $OUT/digits --out $OUT/run_folder
$OUT/idx train --quiet --threads 1 --data $OUT --out $OUT/run_idx
row() { tail -1 $1/train.csv | cut -d, -f1-6; }   # epoch,step,lr,train_loss,bce,val_loss
[ "$(row $OUT/run_folder)" = "$(row $OUT/run_idx)" ] ||
  fail "one epoch differs: images folder $(row $OUT/run_folder), IDX $(row $OUT/run_idx)"

# No test folder: eval scores the 120 held-out validation images, with the denoising report.
$OUT/folder eval --quiet --data $OUT/digits --out $OUT/run_folder > $OUT/eval.txt
grep -q "^test examples  120 " $OUT/eval.txt || fail "eval did not use the 120 validation images: $(cat $OUT/eval.txt)"
grep -q "^denoising      noise stddev 0.3: noisy input PSNR" $OUT/eval.txt || fail "no denoising line: $(cat $OUT/eval.txt)"
[ -s $OUT/run_folder/denoising.png ] || fail "no denoising.png"

# Image pairs with a noised input: the report compares the outputs with the target images.
$OUT/pairs train --quiet --threads 1 --limit 200 --data $OUT --out $OUT/run_pairs
$OUT/pairs eval --quiet --data $OUT --out $OUT/run_pairs > $OUT/pairs.txt
grep -q "^denoising      noise stddev 0.3" $OUT/pairs.txt || fail "image pairs: no denoising line: $(cat $OUT/pairs.txt)"
[ -s $OUT/run_pairs/denoising.png ] || fail "image pairs: no denoising.png"

# Refusals: an empty folder; no test folder and no validation images.
if $OUT/folder train --quiet --data $OUT/empty --out $OUT/bad 2> $OUT/bad.txt; then fail "an empty folder trained"; fi
grep -q "^aec: no PNG images (\*.png) in the folder '$OUT/empty'" $OUT/bad.txt || fail "empty folder: $(cat $OUT/bad.txt)"
sed 's/validation 0.2/validation 0/' $OUT/folder.ae > $OUT/noval.ae
bin/aec build --no-compile --out $OUT/noval.gen $OUT/noval.ae > /dev/null
${CC:-cc} -O1 -fopenmp -std=gnu11 -Iruntime -I$OUT/noval.gen -o $OUT/noval $OUT/noval.gen/model.c build/libaert.a \
  -lopenblas -ltiff -lpng -lz -lpthread -lm
if $OUT/noval eval --quiet --data $OUT/digits --ckpt $OUT/run_folder/best.ckpt --out $OUT/bad 2> $OUT/bad.txt; then
  fail "eval without test images succeeded"; fi
grep -q "gives no test images: the spec names no test folder" $OUT/bad.txt || fail "no test images: $(cat $OUT/bad.txt)"
r=$(row $OUT/run_folder)
echo "images_folder: one epoch ($(echo $r | cut -d, -f2) steps) on a folder of $N PNGs = on IDX: train loss" \
  "$(echo $r | cut -d, -f4), val loss $(echo $r | cut -d, -f6); $(grep '^denoising' $OUT/eval.txt | sed 's/  */ /g')"
echo "images_folder: all passed"
