#!/usr/bin/python3
"""Times PyTorch training steps of the four pinned example models on a GPU, to set beside
bench/aec_cuda_step.cu (tests/gpu/run.sh): forward, loss, backward and Adam on a fixed
random batch, after 3 warm-up steps (more with torch.compile, which compiles in them);
prints one JSON line per setting (median ms per step from CUDA events, images/s).

The models are bench/torch_step.py's (the U-Net) and bench/torch_reference.py's (the
others), layer for layer as the specs. Two settings:
  eager  fp32, NCHW, as written;
  fast   channels_last, torch.backends.cudnn.benchmark, bf16 autocast for the forward
         (the loss in fp32: binary_cross_entropy refuses autocast) and torch.compile.

--device cpu runs one step of each setting at the given batch as a smoke test on a machine
without a GPU (torch.compile skipped there, and on PyTorch before 2.0).

Usage: python3 bench/torch_gpu.py --model conv_ae|dense_ae|vae|unet_landcover --batch N
           [--steps 20] [--device cuda|cpu] [--setting eager|fast|both]
"""
import argparse, json, statistics, sys, time
import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_reference import ConvAE, DenseAE, VAE, losses  # noqa: E402
from torch_step import UNet  # noqa: E402

MODELS = {"conv_ae": ConvAE, "dense_ae": DenseAE, "vae": VAE, "unet_landcover": UNet}


def batch_of(name, b, device):
    if name == "unet_landcover":
        return torch.rand(b, 24, 256, 256, device=device), torch.randint(0, 6, (b, 256, 256), device=device)
    return torch.rand(b, 784, device=device), None


def step_fn(name, model, x, t, device, fast):
    """One training step's loss: the forward under bf16 autocast when fast, the loss in fp32."""
    def forward():
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=fast):
            return model(x)
    if name == "unet_landcover":
        return lambda: F.cross_entropy(forward().float(), t, ignore_index=15)

    def loss():
        y, extra = forward()
        extra = tuple(e.float() for e in extra) if isinstance(extra, tuple) else extra
        return losses(name, y.float(), x, extra)[0]
    return loss


def clock(device):
    if device == "cuda":
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        return e
    return time.perf_counter()


def elapsed_ms(device, t0, t1):
    if device == "cuda":
        t1.synchronize()
        return t0.elapsed_time(t1)
    return (t1 - t0) * 1e3


def time_setting(a, fast):
    torch.manual_seed(1)
    device = a.device
    model = MODELS[a.model]().to(device)
    x, t = batch_of(a.model, a.batch, device)
    compiled = False
    if fast:
        torch.backends.cudnn.benchmark = True
        if a.model in ("conv_ae", "unet_landcover"):
            model = model.to(memory_format=torch.channels_last)
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
        if device == "cuda" and hasattr(torch, "compile"):
            model = torch.compile(model)
            compiled = True
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step_loss = step_fn(a.model, model, x, t, device, fast)
    warm = 0 if device == "cpu" else (10 if compiled else 3)
    steps = 1 if device == "cpu" else a.steps
    times = []
    for i in range(warm + steps):
        t0 = clock(device)
        opt.zero_grad(set_to_none=True)
        loss = step_loss()
        loss.backward()
        opt.step()
        ms = elapsed_ms(device, t0, clock(device))
        if i >= warm:
            times.append(ms)
    med = statistics.median(times)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(json.dumps({"side": "torch-" + ("fast" if fast else "eager"), "model": a.model, "batch": a.batch, "steps": steps,
                      "median_ms": round(med, 3), "images_per_s": round(a.batch / med * 1e3, 1), "loss": round(loss.item(), 6),
                      "compiled": compiled, "device": name, "torch": torch.__version__}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--setting", default="both", choices=["eager", "fast", "both"])
    a = p.parse_args()
    for fast in {"eager": [False], "fast": [True], "both": [False, True]}[a.setting]:
        time_setting(a, fast)


if __name__ == "__main__":
    main()
