#!/bin/sh
# aec report, end to end: the page of every example spec is generated and loaded by
# headless Chromium with all traffic sent to a proxy that records it (a control page proves
# the proxy sees a request): no request may leave the page, every link target exists, every
# kernel and buffer of the manifest appears, the totals are `aec summary --json`'s. Then a
# trainer's and the bench's --profile, --diff against earlier builds, a screenshot, and the
# errors for bad input. Needs bin/aec, build/libaert.a and bin/conv_ae (make trainers).
set -eu
cd "$(dirname "$0")/../.."
out=build/report-test
rm -rf "$out"
mkdir -p "$out"
CHROMIUM=${CHROMIUM:-chromium}
check="python3 tests/report/check_report.py"
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# ---- a proxy that records every request Chromium makes ----------------------------------
: > "$out/proxy.log"
$check proxy "$out/proxy.log" "$out/proxy.port" &
proxy_pid=$!
trap 'kill $proxy_pid 2>/dev/null || true' EXIT INT TERM
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$out/proxy.port" ] && break; sleep 0.2; done
port=$(cat "$out/proxy.port")

# Chromium's own traffic (component updates, account checks, network time) is pointed at a
# dead local port, so that everything the proxy sees comes from the page.
export CHROME_FLAGS="--headless --no-sandbox --disable-gpu --no-first-run --no-default-browser-check
  --disable-background-networking --disable-component-update --disable-sync --disable-default-apps --disable-extensions
  --disable-features=Translate,OptimizationHints,MediaRouter,NetworkTimeServiceQuerying,AutofillServerCommunication
  --component-updater=url-source=http://127.0.0.1:9/ --gaia-url=http://127.0.0.1:9/ --google-base-url=http://127.0.0.1:9/
  --proxy-server=http://127.0.0.1:$port --virtual-time-budget=3000"

# browse NAME URL [extra flags]: the DOM after load into $out/NAME.dom
browse() {
  name=$1 url=$2
  shift 2
  # shellcheck disable=SC2086
  timeout 60 "$CHROMIUM" $CHROME_FLAGS --user-data-dir="$out/chrome-$name" "$@" "$url" > "$out/$name.dom" 2> "$out/$name.chrome.log"
}

# the control: a page that does fetch something must show up in the proxy's log
printf '<!DOCTYPE html><title>control</title><img src="http://aec-report-test.invalid/x.png" alt="">\n' > "$out/control.html"
browse control "file://$PWD/$out/control.html" --dump-dom
grep -q "aec-report-test.invalid" "$out/proxy.log" || fail "the proxy saw no request from the control page: the network check would prove nothing"
: > "$out/proxy.log"

# ---- every example spec --------------------------------------------------------------
for spec in specs/*.ae; do
  name=$(basename "$spec" .ae)
  bin/aec report --out "$out/$name" "$spec" > /dev/null || { fail "aec report $spec"; continue; }
  bin/aec build --no-compile --out "$out/$name/gen" "$spec" > /dev/null
  bin/aec summary --json "$spec" > "$out/$name/summary.json"
done
# two browsers at a time
ls specs/*.ae | sed 's|specs/||; s|\.ae$||' | xargs -P 2 -I{} sh -c '
  timeout 60 "$0" $CHROME_FLAGS --user-data-dir="$1/chrome-{}" --dump-dom "file://$PWD/$1/{}/index.html" > "$1/{}.dom" 2> "$1/{}.chrome.log"' \
  "$CHROMIUM" "$out" || fail "chromium could not load every page"
for spec in specs/*.ae; do
  name=$(basename "$spec" .ae)
  $check page "$out/$name.dom" "$out/$name/index.html" "$out/$name/gen/manifest.json" "$out/$name/summary.json" ||
    fail "the page of $name"
done

# ---- a trainer's profile and the bench's ------------------------------------------------
bin/conv_ae train --epochs 1 --limit 640 --quiet --out "$out/conv_ae.run" --profile "$out/conv_ae.profile.json" > /dev/null ||
  fail "conv_ae train --profile"
bin/aec report --profile "$out/conv_ae.profile.json" --out "$out/conv_ae.prof" specs/conv_ae.ae > /dev/null || fail "report --profile"
browse conv_ae.prof "file://$PWD/$out/conv_ae.prof/index.html" --dump-dom
$check page "$out/conv_ae.prof.dom" "$out/conv_ae.prof/index.html" "$out/conv_ae/gen/manifest.json" "$out/conv_ae/summary.json" \
  "$out/conv_ae.profile.json" || fail "the page of conv_ae with its profile"
if ${CC:-cc} -O2 -fopenmp -std=gnu11 -DAEC_NO_MAIN -Wno-unused-function -Iruntime -I"$out/dense_ae/gen" -o "$out/aec_step" \
     bench/aec_step.c build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm; then
  OMP_WAIT_POLICY=PASSIVE "$out/aec_step" 2 2 0 "$out/dense_ae.profile.json" > /dev/null || fail "the bench's aec_step with a profile"
  grep -q '"source": "bench"' "$out/dense_ae.profile.json" || fail "the bench's profile does not say where it comes from"
  bin/aec report --profile "$out/dense_ae.profile.json" --out "$out/dense_ae.prof" specs/dense_ae.ae > /dev/null ||
    fail "report --profile of the bench's profile"
else
  fail "bench/aec_step.c does not compile"
fi

# ---- --diff: a spec change, no change, a manifest from before buffers were listed ------
sed 's/double_conv(x, 8)/double_conv(x, 16)/' specs/unet_landcover_small.ae > "$out/unet_landcover_small.ae"
cmp -s specs/unet_landcover_small.ae "$out/unet_landcover_small.ae" && fail "the test's spec change did not apply"
old="$out/unet_landcover_small/gen/manifest.json"
bin/aec report --diff "$old" --out "$out/diff" "$out/unet_landcover_small.ae" > /dev/null || fail "report --diff"
browse diff "file://$PWD/$out/diff/index.html" --dump-dom
$check diff "$out/diff.dom" changed || fail "--diff of a changed spec"
bin/aec report --diff "$old" --out "$out/same" specs/unet_landcover_small.ae > /dev/null || fail "report --diff, same build"
$check diff "$out/same/index.html" same || fail "--diff of the same build"
python3 -c "import json,sys; m=json.load(open(sys.argv[1])); del m['buffers']; json.dump(m, open(sys.argv[2], 'w'))" "$old" "$out/old.json"
bin/aec report --diff "$out/old.json" --out "$out/old" specs/unet_landcover_small.ae > /dev/null || fail "report --diff, old manifest"
$check diff "$out/old/index.html" old || fail "--diff of a manifest without buffers"

# ---- the screenshot: the U-Net's page renders, and nothing left it --------------------
browse shot "file://$PWD/$out/unet_landcover/index.html" --hide-scrollbars --window-size=1280,2000 --screenshot="$PWD/$out/unet_landcover.png"
size=$(stat -c %s "$out/unet_landcover.png" 2>/dev/null || echo 0)
[ "$size" -gt 100000 ] || fail "the screenshot of the U-Net's page is $size bytes: blank or missing"
# printed, the folded code opens: the page prints longer than it does with its script removed
sed 's|<script>.*</script>||' "$out/unet_landcover_small/index.html" > "$out/noscript.html"
browse pdf "file://$PWD/$out/unet_landcover_small/index.html" --no-pdf-header-footer --print-to-pdf="$PWD/$out/page.pdf"
browse pdf0 "file://$PWD/$out/noscript.html" --no-pdf-header-footer --print-to-pdf="$PWD/$out/noscript.pdf"
pages() { python3 -c "import re,sys; print(len(re.findall(rb'/Type\s*/Page[^s]', open(sys.argv[1], 'rb').read())))" "$1" 2>/dev/null || echo 0; }
printed=$(pages "$out/page.pdf") folded=$(pages "$out/noscript.pdf")
[ "$printed" -gt "$folded" ] && [ "$folded" -gt 0 ] || fail "printed, the page has $printed pages, folded $folded: the code does not open for print"
if [ -s "$out/proxy.log" ]; then fail "requests left the pages:"; cat "$out/proxy.log" >&2; fi

# ---- the CUDA target's page: model.cu kernel by kernel, each with its launches ----------
bin/aec report --target cuda --batch 4 --out "$out/cuda" specs/unet_landcover_small.ae > /dev/null
cu="$out/cuda/index.html"
grep -q 'target cuda' "$cu" || fail "the CUDA page does not name its target"
grep -q 'model.cu lines' "$cu" && ! grep -q 'model.c lines' "$cu" || fail "the CUDA page does not show model.cu"
kernels=$(grep -c '<section class="kernel[^"]*" id="k[0-9]*"' "$cu")
launched=$(grep -c '<th scope="row">launches</th><td><code>' "$cu")
[ "$kernels" -gt 0 ] && [ "$launched" -eq "$kernels" ] || fail "the CUDA page lists launches for $launched of its $kernels kernels"
grep -q 'AECD_BOUNDS <span class="fn">conv_d1_1_fwd</span>(' "$cu" && grep -q 'conv_d1_1_fwd</code> (launch [0-9]* x [0-9]* blocks of 256 threads' "$cu" ||
  fail "the CUDA page lacks conv_d1_1_fwd's code or its launch"
grep -q 'id="h-optimizer"' "$cu" && grep -q 'host glue: model.cu lines' "$cu" || fail "the CUDA page lacks the optimizer or the host glue"
grep -q 'schedule (cpu)' "$cu" && fail "the CUDA page describes the CPU's schedule"
bin/aec build --no-compile --batch 4 --out "$out/cuda/gen" specs/unet_landcover_small.ae > /dev/null
bin/aec summary --json --batch 4 specs/unet_landcover_small.ae > "$out/cuda/summary.json"
browse cuda "file://$PWD/$cu" --dump-dom
$check page "$out/cuda.dom" "$cu" "$out/cuda/gen/manifest.json" "$out/cuda/summary.json" || fail "the CUDA page of unet_landcover_small"

# ---- errors name the file and the problem ---------------------------------------------
expect() {   # expect STATUS TEXT COMMAND...: exit status and a message containing TEXT
  want=$1 text=$2
  shift 2
  set +e
  "$@" > "$out/err.out" 2> "$out/err.txt"
  got=$?
  set -e
  [ "$got" -eq "$want" ] && grep -qF -- "$text" "$out/err.txt" ||
    { fail "'$*' gave status $got (want $want) and: $(cat "$out/err.txt")"; }
}
expect 1 "no_such.ae" bin/aec report "$out/no_such.ae"
printf '{"model": "conv_ae", "kernels": [\n  {"name": "x",}\n' > "$out/garbled.json"
expect 1 "$out/garbled.json:2:" bin/aec report --diff "$out/garbled.json" --out "$out/e" specs/conv_ae.ae
expect 1 "$out/garbled.json:2:" bin/aec report --profile "$out/garbled.json" --out "$out/e" specs/conv_ae.ae
expect 1 "not a manifest" bin/aec report --diff "$out/conv_ae.profile.json" --out "$out/e" specs/conv_ae.ae
expect 1 "not a profile" bin/aec report --profile "$out/conv_ae/gen/manifest.json" --out "$out/e" specs/conv_ae.ae
expect 1 "of model 'conv_ae', not 'dense_ae'" bin/aec report --profile "$out/conv_ae.profile.json" --out "$out/e" specs/dense_ae.ae
expect 1 "give --batch 128" bin/aec report --batch 64 --profile "$out/conv_ae.profile.json" --out "$out/e" specs/conv_ae.ae
expect 1 "no_such.json" bin/aec report --profile "$out/no_such.json" --out "$out/e" specs/conv_ae.ae
: > "$out/a_file"
expect 1 "$out/a_file/index.html" bin/aec report --out "$out/a_file" specs/conv_ae.ae
expect 1 "/proc/aec-report" bin/aec report --out /proc/aec-report specs/conv_ae.ae
expect 2 "the CUDA target's page has no profile yet" bin/aec report --target cuda --profile "$out/conv_ae.profile.json" --out "$out/e" specs/conv_ae.ae
expect 2 "unknown target 'tpu'" bin/aec report --target tpu specs/conv_ae.ae
expect 1 "$out/no_dir/p.json" bin/conv_ae train --epochs 1 --limit 128 --quiet --out "$out/e" --profile "$out/no_dir/p.json"

if [ $fails -ne 0 ]; then echo "report tests: $fails failed" >&2; exit 1; fi
echo "report tests: every example spec's page loads offline with every link and kernel; profile, diff and errors checked"
