#!/bin/sh
# tests/family/img2img_png.sh - image-to-image on folders of PNG images: writes Fashion-MNIST
# pairs (input: the image averaged over 2x2 blocks; target: the image) both as PNG folders
# and as IDX pair files, trains specs/img2img.ae on each for one short epoch and evaluates.
# The PNGs hold the same bytes in other forms (8-bit grey, 16-bit grey, RGB, grey+alpha), so
# the losses must be equal to the last digit. A missing partner stops the trainer with its
# name. Needs bin/aec and bin/img2img (make trainers); about 20 s on 2 cores.
set -eu
cd "$(dirname "$0")/../.."
OUT=$(mktemp -d /tmp/aec_img2img_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
export OMP_WAIT_POLICY=PASSIVE
fail() { echo "img2img_png: FAIL: $*" >&2; exit 1; }
[ -x bin/img2img ] && [ -x bin/aec ] || fail "bin/img2img or bin/aec is missing (make trainers)"
N=${IMG2IMG_N:-3000}

# The pairs: train inputs 8-bit grey, train targets 16-bit grey (v * 257), test inputs RGB
# (R = G = B), test targets grey+alpha; a PNG writer on zlib alone.
cat > $OUT/pairs.py <<'PY'
import gzip, os, struct, sys, zlib
src, out, ntrain, ntest = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def images(name, n):
    b = gzip.open(os.path.join(src, name)).read()
    count, h, w = struct.unpack_from('>III', b, 4)
    return [b[16 + i * h * w:16 + (i + 1) * h * w] for i in range(min(n, count))], h, w
def blocks(im, h, w):  # each 2x2 block replaced by its rounded mean
    o = bytearray(h * w)
    for y in range(0, h, 2):
        for x in range(0, w, 2):
            k = (y * w + x, y * w + x + 1, (y + 1) * w + x, (y + 1) * w + x + 1)
            v = (sum(im[i] for i in k) + 2) // 4
            for i in k:
                o[i] = v
    return bytes(o)
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
def png(path, im, h, w, ctype, depth):
    px = {0: lambda v: [v], 2: lambda v: [v, v, v], 4: lambda v: [v, 255]}[ctype]
    raw = bytearray()
    for y in range(h):
        raw.append(0)
        for v in im[y * w:(y + 1) * w]:
            for s in px(v):
                raw += struct.pack('>H', s * 257) if depth == 16 else bytes([s])
    ihdr = struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, 0)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
                chunk(b'IDAT', zlib.compress(bytes(raw))) + chunk(b'IEND', b''))
for split, n, name, forms in (('train', ntrain, 'train-images-idx3-ubyte.gz', ((0, 8), (0, 16))),
                              ('test', ntest, 't10k-images-idx3-ubyte.gz', ((2, 8), (4, 8)))):
    ims, h, w = images(name, n)
    for role, data, (ctype, depth) in (('inputs', [blocks(i, h, w) for i in ims], forms[0]),
                                       ('targets', ims, forms[1])):
        d = os.path.join(out, '%s-%s' % (split, role))
        os.makedirs(d)
        for i, im in enumerate(data):
            png(os.path.join(d, '%05d.png' % i), im, h, w, ctype, depth)
        with gzip.open(d + '-idx3-ubyte.gz', 'wb') as f:
            f.write(struct.pack('>IIII', 0x803, len(data), h, w) + b''.join(data))
PY
python3 $OUT/pairs.py /usr/share/datasets/fashion-mnist $OUT/pairs $N 500

# The same spec with folders in place of the IDX file names (same network, same code).
sed 's/-idx3-ubyte\.gz"/"/g' specs/img2img.ae > $OUT/img2img_png.ae
grep -q 'train = "train-inputs", train_labels = "train-targets"' $OUT/img2img_png.ae || fail "spec"
bin/aec build --no-compile --out $OUT/gen $OUT/img2img_png.ae > /dev/null
${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -Wall -Wextra -Werror -Iruntime -I$OUT/gen \
  -o $OUT/img2img_png $OUT/gen/model.c build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm

bin/img2img train --quiet --epochs 1 --limit $N --data $OUT/pairs --out $OUT/idx
$OUT/img2img_png train --quiet --epochs 1 --limit $N --data $OUT/pairs --out $OUT/png
bin/img2img eval --quiet --data $OUT/pairs --out $OUT/idx > $OUT/idx.txt
$OUT/img2img_png eval --quiet --data $OUT/pairs --out $OUT/png > $OUT/png.txt
[ -s $OUT/png/reconstructions.png ] || fail "no reconstructions.png"
row() { tail -1 $1/train.csv | cut -d, -f1-6; }   # epoch,step,lr,train_loss,mse,val_loss
[ "$(row $OUT/png)" = "$(row $OUT/idx)" ] ||
  fail "first epoch differs: PNG folders $(row $OUT/png), IDX pairs $(row $OUT/idx)"
grep -v checkpoint $OUT/png.txt > $OUT/png.cmp; grep -v checkpoint $OUT/idx.txt > $OUT/idx.cmp
cmp -s $OUT/png.cmp $OUT/idx.cmp || fail "eval differs: $(cat $OUT/png.cmp) / $(cat $OUT/idx.cmp)"
r=$(row $OUT/png)
echo "img2img_png: one epoch ($(echo $r | cut -d, -f2) steps) on PNG folders: train loss" \
  "$(echo $r | cut -d, -f4), val loss $(echo $r | cut -d, -f6); test: $(sed -n 's/^test loss *//p' \
  $OUT/png.txt) MSE, $(sed -n 's/^PSNR *//p' $OUT/png.txt); IDX pairs: identical"

# A target that lost its partner: the trainer stops, naming the input without one.
mv $OUT/pairs/train-targets/00007.png $OUT/00007.png
if $OUT/img2img_png train --quiet --epochs 1 --limit 64 --data $OUT/pairs --out $OUT/bad \
     2> $OUT/bad.txt; then fail "train on a folder with a missing partner succeeded"; fi
grep -q "^aec: '$OUT/pairs/train-inputs/00007.png' has no partner" $OUT/bad.txt ||
  fail "missing partner: $(cat $OUT/bad.txt)"
echo "img2img_png: all passed"
