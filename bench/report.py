#!/usr/bin/python3
"""Turns bench/run.sh's JSON lines into this machine's section of bench/RESULTS.md: per
model aec (native, and the AVX2 path where the machine has AVX-512) against PyTorch's
faster layout, with the ratio PyTorch time / aec time; per kernel of the convolutional
models, ms and GFLOP/s beside OpenBLAS's SGEMM rate and the machine's measured FMA peak.
The sections of other machines are kept; bench/history.md follows them, verbatim.
Usage: report.py RESULTS.jsonl THREADS RESULTS.md"""
import json, os, re, subprocess, sys, time

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
threads, path = sys.argv[2], sys.argv[3]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
peaks = {r["isa"]: r["gflops"] for r in rows if r["side"] == "peak"}
native_isa = next((r["isa"] for r in rows if r["side"] == "peak"), "?")
isa_name = {"avx512": "AVX-512", "avx2": "AVX2", "sse": "SSE"}.get(native_isa, native_isa)
has_avx2_path = any(r.get("isa") == "avx2" for r in rows if r["side"] == "aec")
out = []
p = out.append

p(f"## {cpu}, {isa_name}, {subprocess.getoutput('nproc')} cores\n")
# hosts that share a model name can differ ("AMD EPYC": Zen 1 without AVX-512, Zen 4 with it)
info = dict(line.split(":", 1) for line in open("/proc/cpuinfo").read().split("\n\n")[0].splitlines() if ":" in line)
info = {k.strip(): v.strip() for k, v in info.items()}
kind = f"cpu family {info.get('cpu family', '?')}, model {info.get('model', '?')}, cache {info.get('cache size', '?')}"
p(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `lscpu`: {cpu} ({kind}); {threads} threads on both sides; "
  f"command `make bench` (bench/run.sh).\n")
loads = {r["at"]: r["loadavg"] for r in rows if r["side"] == "load"}
if loads:
    p("Load average of the machine (1, 5, 15 minutes; 2 cores, shared): " +
      ", ".join(f"{k} {v}" for k, v in loads.items()) + ".\n")
p("Median of the timed training steps (forward, loss, backward, Adam) after 3 warm-up steps;")
p("PyTorch: torch.set_num_threads, OPENBLAS_NUM_THREADS=1, the faster of NCHW and channels-last.")
rounds = max((sum(1 for r in rows if r["side"] == "aec" and r["model"] == m and r.get("isa", "native") == "native")
              for m in {r["model"] for r in rows if r["side"] == "aec"}), default=0)
p(f"{rounds} rounds, aec and PyTorch alternating; each side's fastest round. Measured FMA peak "
  f"({threads} threads, bench/fma_peak.c): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()) + ".\n")
torch2 = next((r["torch"].split("+")[0] for r in rows if r["side"] == "torch2"), None)
if torch2:
    p(f"Second column: PyTorch {torch2} from PyPI (build/torch2, `make torch2`), the best of eager NCHW, eager "
      "channels-last and torch.compile (its compilation in the warm-up steps, not timed).\n")
avx2_cols = " aec AVX2 ms/step | PyTorch / aec AVX2 |" if has_avx2_path else ""
t2_cols = f" PyTorch {torch2} ms/step (setting) | PyTorch {torch2} / aec |" if torch2 else ""
p(f"| model | batch | aec ms/step |{avx2_cols} PyTorch ms/step (layout) | PyTorch / aec |{t2_cols} aec img/s | aec GFLOP/s | aec peak RSS MiB | PyTorch peak RSS MiB |")
p("|---|---|---|" + ("---|---|" if has_avx2_path else "") + ("---|---|" if torch2 else "") + "---|---|---|---|---|---|")


def best(model, side, isa=None):
    c = [r for r in rows if r.get("model") == model and r["side"] == side and (isa is None or r.get("isa", "native") == isa)]
    return min(c, key=lambda r: r["median_ms"]) if c else None


for model in ["dense_ae", "conv_ae", "vae", "unet_landcover"]:
    a, t, a2 = best(model, "aec", "native"), best(model, "torch"), best(model, "aec", "avx2")
    if not a or not t:
        continue
    extra = f" {a2['median_ms']:.1f} | {t['median_ms'] / a2['median_ms']:.2f} |" if has_avx2_path and a2 else (" | |" if has_avx2_path else "")
    t2, t2_cells = best(model, "torch2"), " | |" if torch2 else ""
    if t2:
        setting = t2["layout"] + (", compiled" if t2.get("compiled") else "")
        t2_cells = f" {t2['median_ms']:.1f} ({setting}) | {t2['median_ms'] / a['median_ms']:.2f} |"
    p(f"| {model} | {a['batch']} | {a['median_ms']:.1f} |{extra} {t['median_ms']:.1f} ({t['layout']}) | "
      f"{t['median_ms'] / a['median_ms']:.2f} |{t2_cells} {a['images_per_s']:.0f} | {a['gflops']:.1f} | "
      f"{a['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} |")

gemms = {(r["model"], r["kernel"]): r for r in rows if r["side"] == "sgemm"}
kernels = list({(r["model"], r["kernel"]): r for r in rows if r["side"] == "aec-kernel" and r.get("isa", "native") == "native"}.values())
peak = peaks.get(native_isa, 0)


def roof_inputs(model):
    """The bytes each kernel moves (fwd, bwd: the compiler's count, manifest.json) and the
    memory bandwidth aec_step's profile probed (STREAM triad), for the roofline."""
    d = os.path.join(os.path.dirname(sys.argv[1]), model)
    try:
        bytes_ = {k["name"]: k["bytes"] for k in json.load(open(os.path.join(d, "manifest.json")))["kernels"]}
        bw = json.load(open(os.path.join(d, "profile.json")))["machine"]["bandwidth_gbs"]
    except (OSError, KeyError, ValueError):
        return {}, 0
    return bytes_, bw


roofs = {m: roof_inputs(m) for m in ("conv_ae", "unet_landcover")}
bandwidth = next((bw for _, bw in roofs.values() if bw), 0)


def roof_share(r, d):
    """aec's rate as a share of the roofline: the lower of the FMA peak and the kernel's
    intensity (FLOPs per byte moved) times the measured bandwidth."""
    moved, bw = roofs.get(r["model"], ({}, 0))
    gf, ms = r[("forward", "backward")[d] + "_gflops"], r[("forward", "backward")[d] + "_ms"]
    b = moved.get(r["kernel"], [0, 0])[d]
    if not (peak and bw and b and gf > 0 and ms > 0):
        return "-"
    flops = gf * 1e9 * ms * 1e-3
    roof = min(peak, flops / b * bw)
    return f"{100 * gf / roof:.0f}%" + (" (memory)" if roof < peak else "")


if kernels:
    p("\nPer kernel (native build, aec_step's profiled steps): mean ms per step and GFLOP/s, forward")
    p("and backward (weight gradient plus dx where the layer has them); the share of the measured")
    p("FMA peak, and of the roofline: the lower of that peak and the kernel's intensity (FLOPs per")
    p("byte it moves, the compiler's count in manifest.json) times the measured memory bandwidth"
      + (f" ({bandwidth:.1f} GB/s, a STREAM triad on {threads} threads)" if bandwidth else "")
      + "; (memory) marks")
    p("kernels whose roof is the bandwidth. Winograd layers count the direct convolution's multiply-adds,")
    p("so they can pass 100%. For each convolution OpenBLAS's own SGEMM rate (its threads, best of several")
    p("runs) at the forward GEMM shape of an im2col formulation, and aec's rate as a share of it.\n")
    p("| model | kernel | fwd ms | fwd GFLOP/s | bwd ms | bwd GFLOP/s | fwd % peak | bwd % peak | fwd % roofline | bwd % roofline | GEMM M x N x K | OpenBLAS GFLOP/s | fwd / OpenBLAS | bwd / OpenBLAS |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in kernels:
        if r["model"] not in ("conv_ae", "unet_landcover"):
            continue
        g = gemms.get((r["model"], r["kernel"]))
        fg = f"{r['forward_gflops']:.1f}" if r["forward_gflops"] > 0 else "-"
        bg = f"{r['backward_gflops']:.1f}" if r["backward_gflops"] > 0 else "-"
        fp = f"{100 * r['forward_gflops'] / peak:.0f}%" if peak and r["forward_gflops"] > 0 else "-"
        bp = f"{100 * r['backward_gflops'] / peak:.0f}%" if peak and r["backward_gflops"] > 0 else "-"
        line = (f"| {r['model']} | {r['kernel']} | {r['forward_ms']:.2f} | {fg} | {r['backward_ms']:.2f} | {bg} | {fp} | {bp} | "
                f"{roof_share(r, 0)} | {roof_share(r, 1)} | ")
        if g and g["gflops"] > 0:
            line += (f"{g['m']} x {g['n']} x {g['k']} | {g['gflops']:.1f} | {100 * r['forward_gflops'] / g['gflops']:.0f}% | "
                     f"{100 * r['backward_gflops'] / g['gflops']:.0f}% |")
        else:
            line += "| | | |"
        p(line)
epochs = [r for r in rows if r["side"] == "epoch"]
if epochs:
    limits = sorted({r["limit"] for r in epochs if r["limit"]})
    p("\nPer epoch, the whole trainer: `bin/<model> train --epochs 1` (data, augmentation, validation, best and")
    p("last checkpoints; its train.csv `seconds`) against one epoch of a plain PyTorch loop on the same data and")
    p("model (bench/torch_epoch.py: the same span, torch.save for the checkpoints), both in the same run")
    p("(bench/epoch.sh), alternating; each side's fastest round, PyTorch in its faster layout. Process: the")
    p("whole command from the outside (start-up, PyTorch's import, data loading). "
      + (f"conv_ae's epoch is shortened to the first {', '.join(map(str, limits))} training images (`--limit`, "
         "a tenth of them validation) on both sides; " if limits else "")
      + "the U-Net's epoch is whole. Load: the machine's 1-minute load average as the fastest runs started.\n")
    p("| model | epoch | aec s | PyTorch s (layout) | PyTorch / aec | aec process s | PyTorch process s | PyTorch / aec (process) | load aec, PyTorch |")
    p("|---|---|---|---|---|---|---|---|---|")
    for model in ["conv_ae", "unet_landcover_small"]:
        a = [r for r in epochs if r["model"] == model and r["trainer"] == "aec"]
        t = [r for r in epochs if r["model"] == model and r["trainer"] == "torch"]
        if not a or not t:
            continue
        a, t = min(a, key=lambda r: r["epoch_s"]), min(t, key=lambda r: r["epoch_s"])
        tp = min(r["process_s"] for r in epochs if r["model"] == model and r["trainer"] == "torch")
        ap = min(r["process_s"] for r in epochs if r["model"] == model and r["trainer"] == "aec")
        p(f"| {model} | {t['examples']} examples, {a['steps']} steps | {a['epoch_s']:.1f} | {t['epoch_s']:.1f} ({t['layout']}) | "
          f"{t['epoch_s'] / a['epoch_s']:.2f} | {ap:.1f} | {tp:.1f} | {tp / ap:.2f} | {a.get('load', '?')}, {t.get('load', '?')} |")
section = "\n".join(out) + "\n"

# the file: a heading, one section per machine (this one replaced or added), then the history
head = ("# Benchmark results\n\nOne section per machine (`lscpu`'s model name and the vector ISA the build used): "
        "`make bench` rewrites the section of the machine it runs on and keeps the others. A speed claim "
        "holds only for the machines listed here.\n\n")
try:
    old = open(path).read()
except OSError:
    old = ""
old = old.split("\n## History", 1)[0]
sections = [s for s in re.split(r"(?m)^(?=## )", old) if s.startswith("## ")]
title = section.split("\n", 1)[0]
sections = [s if s.split("\n", 1)[0] != title else section for s in sections]
if not any(s.split("\n", 1)[0] == title for s in sections):
    sections.append(section)
history = sys.argv[0].rsplit("/", 1)[0] + "/history.md"
try:
    tail = "\n" + open(history).read().rstrip() + "\n"
except OSError:
    tail = ""
open(path, "w").write(head + "\n".join(s.rstrip() + "\n" for s in sections) + tail)
print(section)
