#!/usr/bin/python3
"""Turns bench/run.sh's JSON lines into bench/RESULTS.md: per model aec against
PyTorch's faster layout, with the ratio PyTorch time / aec time."""
import json, platform, subprocess, sys, time

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
threads = sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# Benchmark results\n")
print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu}; {subprocess.getoutput('nproc')} cores; "
      f"{threads} threads on both sides; command `make bench` (bench/run.sh).\n")
print("Median of the timed training steps (forward, loss, backward, Adam) after 3 warm-up steps;")
print("PyTorch: torch.set_num_threads, OPENBLAS_NUM_THREADS=1, the faster of NCHW and channels-last.\n")
print("| model | batch | aec ms/step | PyTorch ms/step (layout) | PyTorch / aec | aec img/s | aec GFLOP/s | aec peak RSS MiB | PyTorch peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for model in ["dense_ae", "conv_ae", "vae", "unet_landcover"]:
    a = [r for r in rows if r["model"] == model and r["side"] == "aec"]
    t = sorted((r for r in rows if r["model"] == model and r["side"] == "torch"), key=lambda r: r["median_ms"])
    if not a or not t:
        continue
    a, t = a[0], t[0]
    print(f"| {model} | {a['batch']} | {a['median_ms']:.1f} | {t['median_ms']:.1f} ({t['layout']}) | "
          f"{t['median_ms'] / a['median_ms']:.2f} | {a['images_per_s']:.0f} | {a['gflops']:.1f} | "
          f"{a['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} |")

gemms = [r for r in rows if r["side"] == "sgemm"]
if gemms:
    print("\nThe ceiling: OpenBLAS's own SGEMM rate (its threads, best of several runs) at the forward")
    print("GEMM shape of each convolution (rows of an im2col chunk x output channels x window length).\n")
    print("| model | kernel | M x N x K | OpenBLAS GFLOP/s |")
    print("|---|---|---|---|")
    for r in gemms:
        print(f"| {r['model']} | {r['kernel']} | {r['m']} x {r['n']} x {r['k']} | {r['gflops']:.1f} |")
