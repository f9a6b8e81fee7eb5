#!/usr/bin/env python3
"""PyTorch's side of the DCGAN-step peer comparison: the model, data shapes, loss and optimizer of
nash_step_bench's BM_DcganStep (nn::dcgan_generator / nn::dcgan_discriminator, 32x32x1, width 64, batch 64,
non-saturating loss, Adam (2e-4, 0.5, 0.999) for both players, n_dis 1), float32.

Prints one line: `dcgan_step_ms <median> <device> torch <version> threads <n>` over --steps timed steps after
--warmup steps. Used by bench/peers/compare; runs alone too."""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def generator(z_dim=100, w=64, c=1):
    return nn.Sequential(
        nn.Unflatten(1, (z_dim, 1, 1)),
        nn.ConvTranspose2d(z_dim, 4 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
        nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.ConvTranspose2d(w, c, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(w=64, c=1):
    return nn.Sequential(
        nn.Conv2d(c, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
        nn.Conv2d(4 * w, 1, 4, 1, 0, bias=True), nn.Flatten())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    g, d = generator().to(dev), discriminator().to(dev)
    for m in list(g.modules()) + list(d.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    reals = [torch.randn(64, 1, 32, 32, device=dev).clamp(-1, 1) for _ in range(3)]
    zs = [torch.randn(64, 100, device=dev) for _ in range(3)]

    def step(k):
        with torch.no_grad():
            fake = g(zs[k])
        loss_d = F.softplus(-d(reals[k])).mean() + F.softplus(d(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-d(g(zs[k]))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        loss_g.item()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for i in range(a.warmup):
        step(i % 3)
    times = []
    for i in range(a.steps):
        t0 = time.perf_counter()
        step(i % 3)
        times.append((time.perf_counter() - t0) * 1e3)
    print(f"dcgan_step_ms {statistics.median(times):.2f} {a.device} torch {torch.__version__} threads {a.threads}")


if __name__ == "__main__":
    main()
