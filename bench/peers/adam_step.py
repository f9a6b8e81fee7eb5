#!/usr/bin/env python3
"""PyTorch's side of the optimizer-step peer comparison: one Adam step (lr 2e-4, betas (0.5, 0.999)) over the
parameters of the 32x32x1 DCGAN's generator and discriminator (width 64: 19 tensors, 1.73 M floats), the case of
nash_gpu_bench's `adam step` row and nash_step_bench's BM_OptimizerStep/rule:0. Gradients are fixed random tensors.

Prints one line per implementation torch offers on the device: `adam_step_ms <impl> <median ms> <device> torch
<version>`, impl in {fused (CUDA only), foreach, loop (torch's default on the CPU)}, over the timed steps (at
least --steps and --min-time seconds; CUDA: between CUDA events) after --warmup."""
import argparse

import torch

from dcgan_step import discriminator, generator
from peer_timing import add_timing_args, median_ms, setup


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_timing_args(ap, warmup=10, steps=100)
    a = ap.parse_args()
    dev = setup(a)
    params = [p for m in (generator(), discriminator()) for p in m.parameters()]
    params = [p.detach().to(dev).requires_grad_() for p in params]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-2
    impls = [("foreach", dict(foreach=True)), ("loop", dict(foreach=False))]
    if dev.type == "cuda":
        impls.insert(0, ("fused", dict(fused=True)))
    n = sum(p.numel() for p in params)
    for name, kw in impls:
        try:
            opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **kw)
        except (TypeError, RuntimeError) as e:  # an older torch without that implementation
            print(f"adam_step_ms {name} unavailable ({e})")
            continue
        ms, _ = median_ms(lambda i: opt.step(), dev, a, events=True)
        print(f"adam_step_ms {name} {ms:.4f} {a.device} torch {torch.__version__} params {n} tensors {len(params)}")


if __name__ == "__main__":
    main()
