#!/usr/bin/env python3
"""PyTorch's side of the DCGAN-step peer comparison: the model, data shapes, loss and optimizer of
nash_step_bench's BM_DcganStep (nn::dcgan_generator / nn::dcgan_discriminator, 32x32x1, width 64, batch 64,
non-saturating loss, Adam (2e-4, 0.5, 0.999) for both players, n_dis 1), float32.

Prints one line: `dcgan_step_ms <median> <device> torch <version> threads <n>` over the timed steps (at least
--steps and --min-time seconds) after --warmup steps. Used by bench/peers/compare; runs alone too."""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_timing import add_timing_args, median_ms, setup


def generator(z_dim=100, w=64, c=1):
    return nn.Sequential(
        nn.Unflatten(1, (z_dim, 1, 1)),
        nn.ConvTranspose2d(z_dim, 4 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
        nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.ConvTranspose2d(w, c, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(w=64, c=1, batch_norm=True):
    """nn::dcgan_discriminator: batch norm in the hidden layers; without it (a WGAN-GP critic) those convs get
    biases instead."""
    hidden = []
    for cin, cout in ((w, 2 * w), (2 * w, 4 * w)):
        hidden.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=not batch_norm))
        if batch_norm:
            hidden.append(nn.BatchNorm2d(cout))
        hidden.append(nn.LeakyReLU(0.2))
    return nn.Sequential(
        nn.Conv2d(c, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        *hidden,
        nn.Conv2d(4 * w, 1, 4, 1, 0, bias=True), nn.Flatten())


def dcgan_init(*modules):
    """DCGAN's initialisation as nash applies it: conv weights N(0, 0.02), batch-norm scales N(1, 0.02), biases 0."""
    for m in (x for mod in modules for x in mod.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def update(opt, loss):
    """One optimizer step on loss, as GanTrainer takes it: the loss is read first (a device sync on CUDA)."""
    loss.item()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_timing_args(ap, warmup=2, steps=5)
    a = ap.parse_args()
    dev = setup(a)
    g, d = generator().to(dev), discriminator().to(dev)
    dcgan_init(g, d)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    reals = [torch.randn(64, 1, 32, 32, device=dev).clamp(-1, 1) for _ in range(3)]
    zs = [torch.randn(64, 100, device=dev) for _ in range(3)]

    def step(i):
        k = i % 3
        with torch.no_grad():
            fake = g(zs[k])
        update(opt_d, F.softplus(-d(reals[k])).mean() + F.softplus(d(fake)).mean())
        update(opt_g, F.softplus(-d(g(zs[k]))).mean())

    ms, _ = median_ms(step, dev, a)
    print(f"dcgan_step_ms {ms:.2f} {a.device} torch {torch.__version__} threads {a.threads}")


if __name__ == "__main__":
    main()
