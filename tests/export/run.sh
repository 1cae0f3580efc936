#!/bin/sh
# Trained models outside the trainer (docs/runtime.md, "Using a trained model elsewhere"):
#  1. init, export in both layouts and formats, the PyTorch twins on the torch-layout export
#     against aec's predict (check.py), import of weights changed in PyTorch and aec's
#     outputs on them, export -> import -> export byte for byte;
#  2. train --init from init.ckpt is the plain run, bit for bit;
#  3. checkpoints follow their tensors: an edited spec (comment, epochs, lr) still loads
#     them, resuming with a changed optimizer needs --force, other tensors are named;
#  4. bad files: truncated, foreign, float64, mis-shaped, missing and extra tensors;
#  5. the PyTorch example of docs/runtime.md;
#  6. predict --input and encode --input on PNG folders, .npy arrays and IDX files against the
#     twins, every buildable example spec, and inputs that are refused;
#  7. ONNX exports of every buildable example spec: onnx.checker, strict shape inference,
#     ONNX Runtime against predict and encode (onnxruntime from PyPI in build/venv).
# Needs Debian's python3-torch, python3-numpy, python3-onnx and python3-venv, and PyPI for
# onnxruntime (scripts/test-venv.sh); run after `make all trainers`.
set -eu
cd "$(dirname "$0")/../.."
out=build/export
py=${PYTHON:-/usr/bin/python3}
rm -rf "$out"
mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
t0=$(date +%s)

# 1. export, the twins, import
models="dense_ae conv_ae conv_ae_transpose vae"
for m in $models; do
  d="$out/$m"
  bin/$m init --seed 3 --out "$d" --quiet
  for layout in aec torch; do
    for format in safetensors npz; do
      bin/$m export --ckpt "$d/init.ckpt" --layout $layout --format $format --out "$d" --quiet
    done
  done
  bin/$m predict --ckpt "$d/init.ckpt" --out "$d" --quiet
done
$py tests/export/check.py "$out" $models || fail "exports do not match PyTorch"
for m in $models; do
  d="$out/$m"
  bin/$m import "$d/from_torch.npz" --file "$d/from_torch.ckpt" --quiet
  bin/$m predict --ckpt "$d/from_torch.ckpt" --out "$d/imported" --quiet
  $py tests/export/check.py compare "$m" "$d/imported/predictions.npy" "$d/from_torch_out.npy" ||
    fail "$m: aec's outputs on imported PyTorch weights differ from PyTorch's"
  for f in $m.safetensors $m.torch.safetensors $m.npz $m.torch.npz; do
    bin/$m import "$d/$f" --file "$d/back.ckpt" --quiet
    bin/$m export --ckpt "$d/back.ckpt" --format npz --file "$d/back.npz" --quiet
    cmp -s "$d/back.npz" "$d/$m.npz" || fail "$m: export -> import -> export of $f is not the same file"
  done
done
echo "export -> import -> export: the same bytes from all four files of each model"

# 2. train --init init.ckpt is the plain run of the same seed
bin/dense_ae train --epochs 1 --limit 1280 --seed 3 --out "$out/plain" --quiet
bin/dense_ae train --epochs 1 --limit 1280 --seed 3 --init "$out/dense_ae/init.ckpt" --out "$out/from_init" --quiet
cmp -s "$out/plain/last.ckpt" "$out/from_init/last.ckpt" || fail "train --init init.ckpt differs from the plain run"
echo "train --init init.ckpt: bit for bit the plain run"
bin/dense_ae train --epochs 1 --limit 1280 --init "$out/dense_ae/from_torch.ckpt" --out "$out/torch_run" --quiet ||
  fail "training from imported PyTorch weights failed"

# 3. an edited spec: a comment and the epochs change nothing; the learning rate needs --force
edited() {  # name sed-script: a changed copy of dense_ae, built to $out/name/dense_ae
  mkdir -p "$out/$1"
  sed -e "$2" specs/dense_ae.ae > "$out/$1/dense_ae.ae"
  bin/aec build --no-compile --out "$out/$1/src" "$out/$1/dense_ae.ae" >/dev/null
  ${CC:-cc} -O2 -fopenmp -std=gnu11 -Iruntime -I"$out/$1/src" -o "$out/$1/dense_ae" "$out/$1/src/model.c" \
    build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
}
edited comment 's/^  epochs .*/  epochs 3  # an edited copy/'
edited lr 's/lr = 1e-3/lr = 5e-4/'
edited wider 's/dense(z, 64)/dense(z, 65)/'
"$out/comment/dense_ae" eval --ckpt "$out/plain/last.ckpt" --out "$out/comment" >"$out/comment/eval.txt" 2>&1 ||
  fail "a spec with a new comment and epochs refuses the checkpoint: $(cat "$out/comment/eval.txt")"
cp -r "$out/plain" "$out/resume"
if "$out/lr/dense_ae" train --resume --epochs 2 --limit 1280 --out "$out/resume" --quiet 2>"$out/lr/err.txt"; then
  fail "resuming with another learning rate did not ask for --force"
fi
grep -q "lr 0.001 -> 0.0005" "$out/lr/err.txt" && grep -q -- "--force" "$out/lr/err.txt" ||
  fail "the refused resume does not say what changed: $(cat "$out/lr/err.txt")"
"$out/lr/dense_ae" train --resume --force --epochs 2 --limit 1280 --out "$out/resume" >"$out/lr/force.txt" ||
  fail "--resume --force failed"
grep -q "changed optimizer settings (--force): lr 0.001 -> 0.0005" "$out/lr/force.txt" || fail "--force does not say what changed"
if "$out/wider/dense_ae" eval --ckpt "$out/plain/last.ckpt" --out "$out/wider" 2>"$out/wider/err.txt"; then
  fail "a checkpoint of other shapes was accepted"
fi
grep -q "shape of 'y.1.w' \[32,64\] (the model has \[32,65\])" "$out/wider/err.txt" ||
  fail "the shape mismatch is not named: $(cat "$out/wider/err.txt")"
echo "checkpoints: an edited comment and epochs load; a new lr needs --force; $(sed 's/^aec: //' "$out/wider/err.txt" | cut -c1-150)..."

# 4. bad files, each refused with the file named, and nothing written
d="$out/dense_ae"
refuse() {  # file what-the-message-says
  rm -f "$d/bad.ckpt"
  if bin/dense_ae import "$1" --file "$d/bad.ckpt" --quiet 2>"$d/err.txt"; then fail "import accepted $1"; fi
  grep -q "$2" "$d/err.txt" || fail "importing $1: expected '$2', got: $(cat "$d/err.txt")"
  grep -q "$1" "$d/err.txt" || fail "importing $1: the message does not name the file: $(cat "$d/err.txt")"
  [ ! -e "$d/bad.ckpt" ] || fail "a refused import wrote $d/bad.ckpt"
  echo "  refused: $(head -n 1 "$d/err.txt" | cut -c1-160)"
}
head -c 3000 "$d/dense_ae.safetensors" > "$d/truncated.safetensors"
refuse "$d/truncated.safetensors" "truncated"
head -c 100000 "$d/dense_ae.npz" > "$d/truncated.npz"
refuse "$d/truncated.npz" "truncated"
refuse specs/dense_ae.ae "not a safetensors file"
printf 'not really onnx' > "$d/model.onnx"
refuse "$d/model.onnx" "is an ONNX model: import reads weights from safetensors and npz"
$py - "$d" <<'PY'
import sys, numpy as np
d = sys.argv[1]
w = dict(np.load(d + "/dense_ae.npz"))
np.savez(d + "/f64.npz", **{k: v.astype(np.float64) for k, v in w.items()})
np.savez(d + "/shape.npz", **{k: (v[:-1] if k == "z.3.w" else v) for k, v in w.items()})
np.savez(d + "/missing.npz", **{k: v for k, v in w.items() if k != "y.1.b"})
np.savez(d + "/extra.npz", extra_layer=np.zeros(3, np.float32), **w)
np.savez_compressed(d + "/compressed.npz", **w)
PY
refuse "$d/f64.npz" "holds <f8 values; aec reads float32"
refuse "$d/shape.npz" "'z.3.w' is \[63,32\], the model needs \[64,32\]"
refuse "$d/missing.npz" "missing 'y.1.b' \[64\]"
refuse "$d/extra.npz" "extra 'extra_layer' \[3\]"
bin/dense_ae import "$d/compressed.npz" --file "$d/compressed.ckpt" --quiet || fail "np.savez_compressed's file was refused"
bin/dense_ae export --ckpt "$d/compressed.ckpt" --format npz --file "$d/compressed_back.npz" --quiet
cmp -s "$d/compressed_back.npz" "$d/dense_ae.npz" || fail "a compressed npz did not import to the same weights"
# 5. the PyTorch example of docs/runtime.md, on conv_ae's exports of part 1
sed -n '/<!-- example: pytorch/,/<!-- end of example/p' docs/runtime.md | sed -e '1d' -e '$d' -e 's/^    //' \
  -e "s|runs/conv_ae|$out/conv_ae|g" > "$out/doc_example.py"
$py "$out/doc_example.py" || fail "the PyTorch example of docs/runtime.md failed"
bin/conv_ae import "$out/conv_ae/tuned.npz" --out "$out/conv_ae" --quiet || fail "the example's tuned.npz does not import"
echo "docs/runtime.md's PyTorch example runs"
# 6. predict --input and encode --input: PNG files and folders, IDX, .npy; no labels
in="$out/inputs"
$py tests/export/inputs.py write "$in"
for m in dense_ae conv_ae; do
  bin/$m predict --ckpt "$out/$m/init.ckpt" --input "$in/png" --out "$out/$m/png" --quiet
  $py tests/export/inputs.py check $m "$in" "$out/$m/png" || fail "$m: predict --input differs from PyTorch"
  bin/$m predict --ckpt "$out/$m/init.ckpt" --input "$in/ten.npy" --out "$out/$m/npy" --quiet
  cmp -s "$out/$m/png/predictions.npy" "$out/$m/npy/predictions.npy" || fail "$m: the .npy input does not give the PNG input's outputs"
done
d="$out/unet_landcover_small"
bin/unet_landcover_small init --out "$d" --quiet
bin/unet_landcover_small export --ckpt "$d/init.ckpt" --layout torch --format npz --out "$d" --quiet
bin/unet_landcover_small predict --ckpt "$d/init.ckpt" --input "$in/rgba" --out "$d/png" --quiet
$py tests/export/inputs.py check unet_landcover_small "$in" "$d/png" || fail "unet_landcover_small: predict --input differs from PyTorch"
bin/unet_landcover_small predict --ckpt "$d/init.ckpt" --input "$in/rgba.npy" --out "$d/npy" --quiet
cmp -s "$d/png/predictions.npy" "$d/npy/predictions.npy" || fail "unet_landcover_small: the .npy input does not give the PNG input's outputs"
bin/conv_ae predict --ckpt "$out/conv_ae/init.ckpt" --input /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
  --out "$out/conv_ae/idx" --quiet
$py -c "
import numpy as np, sys
a, b = np.load('$out/conv_ae/idx/predictions.npy'), np.load('$out/conv_ae/png/predictions.npy')
sys.exit(0 if a.shape == (10000, 28, 28, 1) and np.array_equal(a[:10], b) else 1)" ||
  fail "conv_ae: predict --input of the IDX file does not give the PNG images' outputs"
[ -s "$out/conv_ae/idx/predictions-idx-ubyte" ] || fail "conv_ae: no IDX file of the predicted images"
bin/conv_ae encode --ckpt "$out/conv_ae/init.ckpt" --input "$in/png" --out "$out/conv_ae/enc" --quiet
[ -s "$out/conv_ae/enc/latent.npy" ] && [ -s "$out/conv_ae/enc/latents/img09.npy" ] || fail "encode --input wrote no latents"
# every example spec with a decoder or a head whose checkpoint can be made here (those that
# import weights from runs/ of another spec cannot)
for m in conv_ae_1x1 conv_vae deep_ae denoising_ae denoising_skip grow_stage1 img2img sparse_kl_ae \
         sparse_l1_ae sparse_none_ae vae2; do
  bin/$m init --out "$out/all/$m" --quiet
  bin/$m predict --ckpt "$out/all/$m/init.ckpt" --input "$in/png" --out "$out/all/$m" --quiet ||
    fail "$m: predict --input failed"
  ls "$out/all/$m/predictions/img00."* >/dev/null || fail "$m: no output per input"
done
echo "predict --input: PNG folders, .npy and IDX give PyTorch's outputs; every buildable example spec predicts PNG inputs"
pfail() {  # command what-the-message-says
  if "$@" --quiet 2>"$in/err.txt"; then fail "accepted: $*"; fi
}
pfail bin/conv_ae predict --ckpt "$out/conv_ae/init.ckpt" --input "$in/small.png" --out "$in/o"
grep -q "small.png' is 27 x 28 pixels (width x height) but the model's input is 28 x 28: resize it" "$in/err.txt" ||
  fail "a small image: $(cat "$in/err.txt")"
pfail bin/conv_ae predict --ckpt "$out/conv_ae/init.ckpt" --input "$in/empty" --out "$in/o"
grep -q "no PNG images (\*.png) in the folder '$in/empty'" "$in/err.txt" || fail "an empty folder: $(cat "$in/err.txt")"
pfail bin/conv_ae predict --ckpt "$out/conv_ae/init.ckpt" --input "$in/notes/readme.txt" --out "$in/o"
grep -q "is not a PNG image, an IDX file or a .npy array" "$in/err.txt" || fail "a text file: $(cat "$in/err.txt")"
pfail bin/conv_ae predict --ckpt "$out/conv_ae/init.ckpt" --input "$in/rgba.npy" --out "$in/o"
grep -q "rgba.npy' has 16384 values per row" "$in/err.txt" || fail "an array of another shape: $(cat "$in/err.txt")"
[ ! -e "$in/o/predictions.npy" ] || fail "a refused predict --input wrote predictions"
echo "predict --input refuses, naming the file: $(cut -c1-150 "$in/err.txt")"
# GeoTIFF tiles without labels: the class maps of the labelled test split, byte for byte
g="$out/geo"
bin/unet_landcover_small predict --ckpt "$d/init.ckpt" --data "$g/synth" --out "$g/labelled" --quiet >/dev/null
mkdir -p "$g/new" && cp "$g"/synth/test/*_naip-new.tif "$g/new/"
bin/unet_landcover_small predict --ckpt "$d/init.ckpt" --input "$g/new" --out "$g/folder" --quiet
bin/unet_landcover_small predict --ckpt "$d/init.ckpt" --input "$g/new/synth_001_naip-new.tif" --out "$g/file" --quiet
for f in "$g"/labelled/predictions/*_pred.tif; do
  cmp -s "$f" "$g/folder/predictions/$(basename "$f")" || fail "GeoTIFF --input: $(basename "$f") differs from the labelled predict"
done
cmp -s "$g/labelled/predictions/synth_001_pred.tif" "$g/file/predictions/synth_001_pred.tif" || fail "GeoTIFF --input of one file"
[ -s "$g/folder/predictions/synth_000_pred.png" ] || fail "GeoTIFF --input wrote no picture"
cp "$g/new/synth_000_naip-new.tif" "$g/tile.tif"   # one file of every input band: a scene
bin/unet_landcover_small predict --ckpt "$d/init.ckpt" --input "$g/tile.tif" --out "$g/scene" --quiet
cmp -s "$g/labelled/predictions/synth_000_pred.tif" "$g/scene/predictions/tile_pred.tif" || fail "GeoTIFF --input of a scene file"
cp "$g/synth/test/synth_000_lc.tif" "$g/one_band.tif"
pfail bin/unet_landcover_small predict --ckpt "$d/init.ckpt" --input "$g/one_band.tif" --out "$in/o"
grep -q "one_band.tif' has 1 band(s), model 'unet_landcover_small' takes 4" "$in/err.txt" || fail "a scene of too few bands: $(cat "$in/err.txt")"
echo "predict --input of GeoTIFF tiles without labels (a folder, one file, a scene): the labelled class maps, byte for byte"

# 7. ONNX: every example spec, checked by onnx.checker and strict shape inference and run by
# ONNX Runtime (PyPI, in build/venv) against predict/encode
vpy=$(scripts/test-venv.sh) || fail "no Python with onnxruntime (scripts/test-venv.sh failed above)"
onnx_models="dense_ae conv_ae conv_ae_transpose vae unet_landcover_small conv_ae_1x1 conv_vae deep_ae denoising_ae
             denoising_skip grow_stage1 img2img sparse_kl_ae sparse_l1_ae sparse_none_ae vae2"
# the specs that import weights from other specs' runs find them under runs/ of the folder they
# run in: step-0 checkpoints of those specs, made in $out/cwd
root=$(pwd)
mkdir -p "$out/cwd/specs"
for pair in conv_ae:conv_ae grow_stage1:grow_stage1 grow_stage2:grow_stage2; do
  m=${pair%%:*}
  mkdir -p "$out/cwd/runs/$m"
  (cd "$out/cwd" && "$root/bin/$m" init --file "runs/$m/best.ckpt" --quiet)
done
for m in latent_classifier grow_stage2 grow_stage3; do
  (cd "$out/cwd" && "$root/bin/$m" init --out "$root/$out/$m" --quiet)
done
# unet_landcover standardizes its 24 bands: a checkpoint of one training step carries the statistics
bin/unet_landcover train --epochs 1 --limit 8 --data "$g/synth" --out "$out/unet_landcover" --quiet >/dev/null
cp "$out/unet_landcover/last.ckpt" "$out/unet_landcover/init.ckpt"
$py tests/torch/ckpt_npy.py export "$out/unet_landcover/init.ckpt" "$out/unet_landcover/npy" >/dev/null
$py -c "
import numpy as np  # raw values as the tiles have them: each band's mean + std * N(0, 1)
d = '$out/unet_landcover/npy'
mean, std = np.load(d + '/mean/data.npy'), np.load(d + '/std/data.npy')
np.save('$in/bands24.npy', (mean + std * np.random.default_rng(3).standard_normal((2, 256, 256, 24))).astype(np.float32))"
onnx_models="$onnx_models latent_classifier grow_stage2 grow_stage3 unet_landcover"
for m in $onnx_models; do
  d="$out/$m"
  [ -f "$d/init.ckpt" ] || bin/$m init --out "$d" --quiet
  ck="$d/init.ckpt"   # where part 1 imported weights changed in PyTorch (biases not zero), those
  [ -f "$d/from_torch.ckpt" ] && ck="$d/from_torch.ckpt"
  bin/$m export --format onnx --ckpt "$ck" --out "$d" --quiet
  x="$in/ten.npy"; [ $m = unet_landcover_small ] && x="$in/rgba.npy"; [ $m = unet_landcover ] && x="$in/bands24.npy"
  bin/$m predict --ckpt "$ck" --input "$x" --out "$d/onnx_in" --quiet
  cp "$x" "$d/onnx_in/input.npy"
  if grep -q "latent_layer = [0-9]" "generated/$m/model.c"; then
    bin/$m encode --ckpt "$ck" --input "$x" --out "$d/onnx_in" --quiet 2>/dev/null || true
  fi
done
bin/conv_ae export --format onnx --layout nhwc --ckpt "$out/conv_ae/from_torch.ckpt" --out "$out/conv_ae" --quiet
# bias=false (Gemm, Conv and ConvTranspose without a bias input), bilinear Resize, a concat of
# vectors: the PyTorch cross-check's t_lang, built here
lang_onnx() {
  mkdir -p "$out/t_lang"
  bin/aec build --no-compile --out "$out/t_lang/src" tests/torch/specs/t_lang.ae >/dev/null
  ${CC:-cc} -O2 -fopenmp -std=gnu11 -Iruntime -I"$out/t_lang/src" -o "$out/t_lang/t_lang" "$out/t_lang/src/model.c" \
    build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
  "$out/t_lang/t_lang" init --seed 5 --out "$out/t_lang" --quiet
  $py -c "import numpy as np; np.save('$out/t_lang/x.npy', np.random.default_rng(5).integers(0, 256, (3, 6, 6, 2)).astype(np.float32))"
  "$out/t_lang/t_lang" export --format onnx --ckpt "$out/t_lang/init.ckpt" --out "$out/t_lang" --quiet
  "$out/t_lang/t_lang" predict --ckpt "$out/t_lang/init.ckpt" --input "$out/t_lang/x.npy" --out "$out/t_lang/onnx_in" --quiet
  cp "$out/t_lang/x.npy" "$out/t_lang/onnx_in/input.npy"
}
lang_onnx
$vpy tests/export/onnx_check.py "$out" $onnx_models t_lang || fail "ONNX exports do not match aec"
if bin/conv_ae export --format onnx --layout torch --ckpt "$out/conv_ae/init.ckpt" --out "$in/o" 2>"$in/err.txt"; then
  fail "--format onnx accepted --layout torch"
fi
grep -q "takes nchw (default) or nhwc" "$in/err.txt" || fail "onnx with --layout torch: $(cat "$in/err.txt")"
# the ONNX Runtime example of docs/runtime.md
cp "$in/ten.npy" "$out/conv_ae/ten.npy"
bin/conv_ae predict --ckpt "$out/conv_ae/from_torch.ckpt" --input "$out/conv_ae/ten.npy" --out "$out/conv_ae/ten" --quiet
sed -n '/<!-- example: onnxruntime/,/<!-- end of example/p' docs/runtime.md | sed -e '1d' -e '$d' -e 's/^    //' \
  -e "s|runs/conv_ae|$out/conv_ae|g" > "$out/doc_onnx.py"
$vpy "$out/doc_onnx.py" || fail "the ONNX Runtime example of docs/runtime.md failed"
echo "export tests passed in $(( $(date +%s) - t0 )) s"
