#!/bin/sh
# tests/family/run.sh - the autoencoder family end to end on Fashion-MNIST subsets, through
# the real generated trainers (bin/<model>, built by `make trainers`): denoising PSNRs,
# sparse latent statistics, VAE samples and interpolation, latent maps (PCA, t-SNE), the
# transfer classifier's accuracy, growth's frozen weights (stages 1 -> 2 -> 3) and image-to-image
# from PNG folders (img2img_png.sh). About 2 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/../.."
OUT=$(mktemp -d /tmp/aec_family_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
export OMP_WAIT_POLICY=PASSIVE
fail() { echo "family: FAIL: $*" >&2; exit 1; }
field() { sed -n "s/.*$1 *\([0-9.-]*\).*/\1/p" "$2" | head -1; }
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
for m in denoising_ae denoising_skip sparse_l1_ae sparse_none_ae vae2 conv_ae latent_classifier grow_stage1 grow_stage2 \
         grow_stage3; do
  [ -x bin/$m ] || fail "bin/$m is missing (make trainers)"
done

# Denoising: the reconstruction of a noisy image is closer to the clean one than the noise;
# also with the noisy input concatenated into the decoder's convolutions (denoising_skip: a
# skip from the input, which takes no gradient).
denoises() {   # model, output folder
  bin/$1 train --quiet --epochs 1 --limit 9000 --out $2
  bin/$1 eval --quiet --out $2 > $2.txt
  noisy=$(sed -n 's/.*noisy input PSNR \([0-9.]*\) dB.*/\1/p' $2.txt)
  recon=$(sed -n 's/.*reconstruction PSNR \([0-9.]*\) dB.*/\1/p' $2.txt)
  [ -n "$noisy" ] && [ -n "$recon" ] || fail "$1 eval printed no denoising line"
  gt "$recon" "$noisy" || fail "$1: reconstruction PSNR $recon <= noisy $noisy"
  [ -s $2/denoising.png ] || fail "$1 wrote no denoising.png"
  echo "family: $1 PSNR noisy $noisy dB, reconstructed $recon dB"
}
denoises denoising_ae $OUT/dn
denoises denoising_skip $OUT/dns

# Sparse: eval reports the latent's statistics; after the same short run, the L1 penalty
# leaves more of the latent near zero than the same network without it (sparse_none_ae).
nearzero() { sed -n 's/^latent .*near zero ([^)]*) \([0-9.]*\)%.*/\1/p' "$1"; }
for m in sparse_l1_ae sparse_none_ae; do
  bin/$m train --quiet --epochs 1 --limit 5120 --out $OUT/$m
  bin/$m eval --quiet --out $OUT/$m > $OUT/$m.txt
  grep -q "^latent .*near zero" $OUT/$m.txt || fail "$m eval printed no latent statistics"
  echo "family: $m $(grep '^latent' $OUT/$m.txt)"
done
l1=$(nearzero $OUT/sparse_l1_ae.txt); none=$(nearzero $OUT/sparse_none_ae.txt)
[ -n "$l1" ] && [ -n "$none" ] || fail "sparse: no near-zero fraction in the latent lines"
gt "$l1" "$none" || fail "sparse: L1 leaves $l1% near zero, no penalty $none% (should be more)"
echo "family: sparse: near zero with L1 $l1%, without $none%"

# Variational: samples, interpolation, the decoded plane of the 2-d latent.
bin/vae2 train --quiet --epochs 1 --limit 5120 --out $OUT/vae
grep -q "^epoch,step,lr,train_loss,bce,kl_normal," $OUT/vae/train.csv || fail "vae2 train.csv lacks the loss terms"
bin/vae2 sample --quiet --n 16 --out $OUT/vae
bin/vae2 interpolate --quiet --from 0 --to 1 --steps 8 --out $OUT/vae
for f in samples latent_grid interpolation; do
  [ -s $OUT/vae/$f.png ] || fail "vae2: no $f.png"
done

# Latents: encode, PCA and t-SNE maps.
bin/vae2 encode --quiet --out $OUT/vae
[ -s $OUT/vae/latent.npy ] || fail "no latent.npy"
bin/vae2 latent --quiet --method pca --out $OUT/vae
[ $(wc -l < $OUT/vae/latent_2d.csv) -eq 10001 ] || fail "pca: latent_2d.csv should have 10000 rows"
bin/vae2 latent --quiet --method tsne --points 500 --out $OUT/vae
[ $(wc -l < $OUT/vae/latent_2d.csv) -eq 501 ] && [ -s $OUT/vae/latent_2d.png ] || fail "t-SNE map"

# Transfer: the classifier reads runs/conv_ae/best.ckpt (a path in its spec) for its frozen
# encoder; a run of conv_ae already there is kept aside and put back.
keep=""
if [ -e runs/conv_ae ]; then keep=$OUT/conv_ae.kept; mv runs/conv_ae $keep; fi
restore() { rm -rf runs/conv_ae; [ -z "$keep" ] || mv $keep runs/conv_ae; }
bin/conv_ae train --quiet --epochs 1 --limit 6000 --out runs/conv_ae || { restore; fail "conv_ae train"; }
bin/latent_classifier train --quiet --epochs 1 --limit 6000 --out $OUT/lc || { restore; fail "latent_classifier train"; }
restore
bin/latent_classifier eval --quiet --out $OUT/lc > $OUT/lc.txt
acc=$(sed -n 's/^accuracy *\([0-9.]*\).*/\1/p' $OUT/lc.txt)
gt "$acc" 0.35 || fail "latent_classifier accuracy $acc <= 0.35 (chance is 0.1)"
echo "family: latent_classifier accuracy $acc after one short epoch"

# Growth: stage 2's frozen encoder equals stage 1's checkpoint, before and after training;
# stage 3 reads stage 1's encoder and stage 2's compress from stage 2's checkpoint (its spec
# names runs/grow_stage2/best.ckpt) and keeps them bit for bit too. Runs already in
# runs/grow_stage1 and runs/grow_stage2 are kept aside and put back.
k1=""; k2=""
if [ -e runs/grow_stage1 ]; then k1=$OUT/g1.kept; mv runs/grow_stage1 $k1; fi
if [ -e runs/grow_stage2 ]; then k2=$OUT/g2.kept; mv runs/grow_stage2 $k2; fi
restore12() {
  rm -rf runs/grow_stage1 runs/grow_stage2
  [ -z "$k1" ] || mv $k1 runs/grow_stage1
  [ -z "$k2" ] || mv $k2 runs/grow_stage2
}
bin/grow_stage1 train --quiet --epochs 1 --limit 2560 --out runs/grow_stage1 || { restore12; fail "grow_stage1"; }
cp runs/grow_stage1/best.ckpt $OUT/g1.ckpt
bin/grow_stage2 train --quiet --epochs 1 --limit 2560 --out runs/grow_stage2 || { restore12; fail "grow_stage2"; }
cp runs/grow_stage2/best.ckpt $OUT/g2.ckpt; cp runs/grow_stage2/last.ckpt $OUT/g2_last.ckpt
bin/grow_stage3 train --quiet --epochs 1 --limit 2560 --out $OUT/g3 || { restore12; fail "grow_stage3"; }
restore12
cat > $OUT/same.py <<'PY'
import struct, sys
def tensors(path):
    b = open(path, 'rb').read()[24:]
    o = 0
    def s():
        nonlocal o
        n, = struct.unpack_from('<I', b, o); o += 4 + n; return b[o - n:o].decode()
    s(); s(); o += 8 + 8 + 4 + 4 + 4 + 4 + 4 + 8
    n, = struct.unpack_from('<I', b, o); o += 4
    out = {}
    for _ in range(n):
        name = s(); r, = struct.unpack_from('<I', b, o); o += 4
        shape = struct.unpack_from('<%dI' % r, b, o); o += 4 * r
        size = 1
        for d in shape: size *= d
        out[name] = b[o:o + 4 * size]; o += 4 * size
    return out
# same.py REF CKPT PREFIX...: every parameter of CKPT under a PREFIX equals REF's, bit for bit
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
names = [k for k in b if '/' not in k and any(k.startswith(p) for p in sys.argv[3:])]
assert names, sorted(b)
for k in names:
    assert a[k] == b[k], k
print("carried bit for bit: %s" % ", ".join(names))
PY
r=$(python3 $OUT/same.py $OUT/g1.ckpt $OUT/g2_last.ckpt h.) || fail "growth: stage 2's frozen encoder differs from stage 1's"
echo "family: growth: stage 2: $r"
r=$(python3 $OUT/same.py $OUT/g2.ckpt $OUT/g3/last.ckpt h. z.) || fail "growth: stage 3's frozen layers differ from stage 2's"
echo "family: growth: stage 3: $r"
python3 $OUT/same.py $OUT/g1.ckpt $OUT/g3/last.ckpt h. > /dev/null || fail "growth: stage 3's h differs from stage 1's"
# Image-to-image on two folders of PNG images, against the same pairs as IDX files.
tests/family/img2img_png.sh || fail "img2img on PNG folders"
echo "family: all passed"
