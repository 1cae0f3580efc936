#!/usr/bin/python3
"""Writes bench/GPU_RESULTS.md from tests/gpu/run.sh's JSON lines: per bench model the
median training step of aec's CUDA kernels (bench/aec_cuda_step.cu; fp32, and tf32 and bf16
when run.sh built them) and of PyTorch eager
fp32 and fast (bench/torch_gpu.py) on the same GPU, and the ratios (PyTorch's time / aec's:
above 1, aec is faster).

Usage: python3 bench/gpu_report.py RESULTS.jsonl GPU_NAME OUT.md
"""
import json, sys, time


def main():
    path, gpu, out = sys.argv[1:4]
    rows = [json.loads(line) for line in open(path) if line.startswith("{")]
    by = {(r["model"], r["side"]): r for r in rows}
    torch_version = next((r["torch"] for r in rows if "torch" in r), "?")
    lines = ["# aec's CUDA target against PyTorch on one GPU", "",
             f"GPU: {gpu}; PyTorch {torch_version}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             "written by `tests/gpu/run.sh`.", "",
             "Median ms of a training step (forward, loss, backward, Adam) over 20 steps on a fixed random batch, "
             "at bench/run.sh's batches. aec: the kernels of model.cu on device buffers (the host glue's copies "
             "not timed). PyTorch eager: fp32, NCHW. PyTorch fast: channels_last, cudnn.benchmark, bf16 autocast, "
             "torch.compile. A ratio is PyTorch's ms / aec's ms: above 1, aec is faster. aec graph: the same "
             "fp32 step captured once and replayed as a CUDA graph, as the trainer runs it. aec tf32 and bf16: "
             "the same model.cu built with --precision tf32 or bf16 (its GEMMs on tensor cores); aec cublaslt: "
             "with --gemm cublaslt (dense layers' GEMMs by cuBLASLt, fp32).", "",
             "| model | batch | aec ms | aec graph ms | aec tf32 ms | aec bf16 ms | aec cublaslt ms | eager ms | fast ms | eager / aec | fast / aec |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in ["dense_ae", "conv_ae", "vae", "unet_landcover"]:
        a, t, b, lt, e, f = (by.get((model, s)) for s in ("aec-cuda", "aec-cuda-tf32", "aec-cuda-bf16", "aec-cuda-cublaslt",
                                                          "torch-eager", "torch-fast"))
        if not a:
            continue
        cell = lambda r: f"{r['median_ms']:.3f}" if r else "-"
        ratio = lambda r: f"{r['median_ms'] / a['median_ms']:.2f}" if r else "-"
        graph = f"{a['graph_median_ms']:.3f}" if "graph_median_ms" in a else "-"
        lines.append(f"| {model} | {a['batch']} | {cell(a)} | {graph} | {cell(t)} | {cell(b)} | {cell(lt)} | {cell(e)} | {cell(f)} | {ratio(e)} | {ratio(f)} |")
    open(out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
