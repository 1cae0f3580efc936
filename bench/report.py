#!/usr/bin/python3
"""Turns bench/run.sh's JSON lines into bench/RESULTS.md: per model aec against
PyTorch's faster layout, with the ratio PyTorch time / aec time; per kernel of the
convolutional models, ms and GFLOP/s beside OpenBLAS's SGEMM rate; then bench/history.md
(earlier measurements and the profiles behind each change), verbatim."""
import json, platform, subprocess, sys, time

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
threads = sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# Benchmark results\n")
print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu}; {subprocess.getoutput('nproc')} cores; "
      f"{threads} threads on both sides; command `make bench` (bench/run.sh).\n")
print("Median of the timed training steps (forward, loss, backward, Adam) after 3 warm-up steps;")
print("PyTorch: torch.set_num_threads, OPENBLAS_NUM_THREADS=1, the faster of NCHW and channels-last.")
rounds = max(sum(1 for r in rows if r["side"] == "aec" and r["model"] == m) for m in {r["model"] for r in rows})
print(f"{rounds} rounds, aec and PyTorch alternating; each side's fastest round.\n")
print("| model | batch | aec ms/step | PyTorch ms/step (layout) | PyTorch / aec | aec img/s | aec GFLOP/s | aec peak RSS MiB | PyTorch peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for model in ["dense_ae", "conv_ae", "vae", "unet_landcover"]:
    a = sorted((r for r in rows if r["model"] == model and r["side"] == "aec"), key=lambda r: r["median_ms"])
    t = sorted((r for r in rows if r["model"] == model and r["side"] == "torch"), key=lambda r: r["median_ms"])
    if not a or not t:
        continue
    a, t = a[0], t[0]
    print(f"| {model} | {a['batch']} | {a['median_ms']:.1f} | {t['median_ms']:.1f} ({t['layout']}) | "
          f"{t['median_ms'] / a['median_ms']:.2f} | {a['images_per_s']:.0f} | {a['gflops']:.1f} | "
          f"{a['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} |")

gemms = {(r["model"], r["kernel"]): r for r in rows if r["side"] == "sgemm"}
kernels = list({(r["model"], r["kernel"]): r for r in rows if r["side"] == "aec-kernel"}.values())
if kernels:
    print("\nPer kernel (aec_step's profiled steps): mean ms per step and GFLOP/s, forward and")
    print("backward (weight gradient plus dx where the layer has them). For each convolution, the")
    print("ceiling: OpenBLAS's own SGEMM rate (its threads, best of several runs) at the forward GEMM")
    print("shape of an im2col formulation (rows of an im2col chunk x output channels x window length),")
    print("and aec's rate as a share of it.\n")
    print("| model | kernel | fwd ms | fwd GFLOP/s | bwd ms | bwd GFLOP/s | GEMM M x N x K | OpenBLAS GFLOP/s | fwd / OpenBLAS | bwd / OpenBLAS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in kernels:
        if r["model"] not in ("conv_ae", "unet_landcover"):
            continue
        g = gemms.get((r["model"], r["kernel"]))
        fg = f"{r['forward_gflops']:.1f}" if r["forward_gflops"] > 0 else "-"
        bg = f"{r['backward_gflops']:.1f}" if r["backward_gflops"] > 0 else "-"
        line = f"| {r['model']} | {r['kernel']} | {r['forward_ms']:.2f} | {fg} | {r['backward_ms']:.2f} | {bg} | "
        if g and g["gflops"] > 0:
            line += (f"{g['m']} x {g['n']} x {g['k']} | {g['gflops']:.1f} | {100 * r['forward_gflops'] / g['gflops']:.0f}% | "
                     f"{100 * r['backward_gflops'] / g['gflops']:.0f}% |")
        else:
            line += "| | | |"
        print(line)

history = sys.argv[0].rsplit("/", 1)[0] + "/history.md"
try:
    print("\n" + open(history).read().rstrip())
except OSError:
    pass
