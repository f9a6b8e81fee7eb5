#!/usr/bin/env python3
"""PyTorch's side of the optimizer-step peer comparison: one Adam step (lr 2e-4, betas (0.5, 0.999)) over the
parameters of the 32x32x1 DCGAN's generator and discriminator (width 64: 19 tensors, 1.73 M floats), the case of
nash_gpu_bench's `adam step` row and nash_step_bench's BM_OptimizerStep. Gradients are fixed random tensors.

Prints one line per implementation torch offers on the device: `adam_step_ms <impl> <median ms> <device> torch
<version>`, impl in {fused, foreach, loop}, over --steps timed steps after --warmup (CUDA: timed with events)."""
import argparse
import statistics
import time

import torch

from dcgan_step import discriminator, generator


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    params = [p for m in (generator(), discriminator()) for p in m.parameters()]
    params = [p.detach().to(dev).requires_grad_() for p in params]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-2
    impls = [("foreach", dict(foreach=True)), ("loop", dict(foreach=False))]
    if dev.type == "cuda":
        impls.insert(0, ("fused", dict(fused=True)))
    for name, kw in impls:
        try:
            opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **kw)
        except (TypeError, RuntimeError) as e:  # an older torch without that implementation
            print(f"adam_step_ms {name} unavailable ({e})")
            continue
        for _ in range(a.warmup):
            opt.step()
        times = []
        for _ in range(a.steps):
            if dev.type == "cuda":
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                opt.step()
                e.record()
                e.synchronize()
                times.append(s.elapsed_time(e))
            else:
                t0 = time.perf_counter()
                opt.step()
                times.append((time.perf_counter() - t0) * 1e3)
        n = sum(p.numel() for p in params)
        print(f"adam_step_ms {name} {statistics.median(times):.4f} {a.device} torch {torch.__version__} "
              f"params {n} tensors {len(params)}")


if __name__ == "__main__":
    main()
