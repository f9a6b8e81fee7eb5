"""What the PyTorch peer scripts share: the thread and device setup, and the timed loop.

The loop mirrors nash_step_bench's: untimed warm-up calls, then timed calls until both --steps calls and
--min-time seconds are done, each call timed on the host clock up to a device synchronisation (or, with
events=True on CUDA, between two CUDA events around the call), and the median is reported."""
import statistics
import time

import torch


def add_timing_args(ap, warmup, steps, min_time=0.0):
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--warmup", type=int, default=warmup, help="untimed calls first")
    ap.add_argument("--steps", type=int, default=steps, help="at least this many timed calls")
    ap.add_argument("--min-time", type=float, default=min_time, help="and at least this many seconds of them")


def setup(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    return torch.device(a.device)


def median_ms(fn, dev, a, events=False):
    """Median milliseconds of fn(i) (i counts the calls) over the timed calls."""
    cuda = dev.type == "cuda"
    i = 0
    for _ in range(a.warmup):
        fn(i)
        i += 1
    if cuda:
        torch.cuda.synchronize()
    times, spent = [], 0.0
    while len(times) < max(1, a.steps) or spent < a.min_time:
        if cuda and events:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            s.record()
            fn(i)
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
            spent += time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            fn(i)
            if cuda:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            times.append(dt * 1e3)
            spent += dt
        i += 1
    return statistics.median(times), len(times)
