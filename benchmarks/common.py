"""Helpers shared by the benchmark sections: timing, machine facts, Markdown tables."""
import os
import statistics
import time


def best_and_median(fn, repeats, min_time=0.0):
    """Call fn() repeats times (at least min_time seconds in all); return (best, median) s."""
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def md_table(headers, rows):
    """A Markdown table; floats printed with one decimal."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
        return str(v)
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def env_without(*names):
    """A copy of os.environ with the given variables removed."""
    env = dict(os.environ)
    for n in names:
        env.pop(n, None)
    return env
