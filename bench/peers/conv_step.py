#!/usr/bin/env python3
"""PyTorch's side of the convolution peer comparison: the work of nash_step_bench's BM_ConvStep, float32.

For each convolution of the apps' DCGAN at batch 64 (D's 4x4 stride-2 convs 1->64->128->256, G's transposed
convs 100->256->128->64->1, and D's channel counts with 3x3 stride-1 kernels), no bias: y = conv(x, w), then
y.backward(gy) for the input and the weight gradient (x.grad and w.grad cleared before each call), inputs
rotating among 3 sets. One line per convolution:
`conv_step_ms <op>/<shape> <median> <device> torch <version> threads <n>`, the median over the timed calls (at
least --steps and --min-time seconds, CUDA: between CUDA events) after --warmup calls. --only REGEX keeps the
convolutions whose name matches."""
import argparse
import re

import torch
import torch.nn.functional as F

from peer_timing import add_timing_args, median_ms, setup

# (transposed, n, cin, hw, cout, k, stride, pad): the list of BM_ConvStep in bench/step_bench.cpp.
CASES = [
    (False, 64, 1, 32, 64, 4, 2, 1), (False, 64, 64, 16, 128, 4, 2, 1), (False, 64, 128, 8, 256, 4, 2, 1),
    (True, 64, 100, 1, 256, 4, 1, 0), (True, 64, 256, 4, 128, 4, 2, 1), (True, 64, 128, 8, 64, 4, 2, 1),
    (True, 64, 64, 16, 1, 4, 2, 1), (False, 64, 1, 32, 64, 3, 1, 1), (False, 64, 64, 16, 128, 3, 1, 1),
    (False, 64, 128, 8, 256, 3, 1, 1),
]


def name(c):
    t, n, cin, hw, cout, k, s, p = c
    return f"{'conv_transpose2d' if t else 'conv2d'}/n{n}_c{cin}_{hw}x{hw}_o{cout}_k{k}s{s}p{p}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_timing_args(ap, warmup=1, steps=5, min_time=0.5)
    ap.add_argument("--only", default="", help="regular expression on the convolutions' names")
    a = ap.parse_args()
    dev = setup(a)
    for c in CASES:
        if a.only and not re.search(a.only, name(c)):
            continue
        t, n, cin, hw, cout, k, s, p = c
        ohw = (hw - 1) * s - 2 * p + k if t else (hw + 2 * p - k) // s + 1
        wshape = (cin, cout, k, k) if t else (cout, cin, k, k)
        x0 = torch.randn(n, cin, hw, hw, device=dev)
        w0 = torch.randn(*wshape, device=dev) / (cin * k * k) ** 0.5
        g0 = torch.randn(n, cout, ohw, ohw, device=dev)
        xs = [v.clone().requires_grad_() for v in (x0, -x0, 0.5 * x0)]
        ws = [v.clone().requires_grad_() for v in (w0, -w0, 0.5 * w0)]
        gys = [g0, -g0, 0.5 * g0]
        op = F.conv_transpose2d if t else F.conv2d

        def call(i):
            j = i % 3
            xs[j].grad = None
            ws[j].grad = None
            op(xs[j], ws[j], None, s, p).backward(gys[j])

        ms, _ = median_ms(call, dev, a, events=True)
        print(f"conv_step_ms {name(c)} {ms:.4f} {a.device} torch {torch.__version__} threads {a.threads}")


if __name__ == "__main__":
    main()
