"""Benchmark aid: where in a training run the memory peaks, between consecutive log lines.

Run by hand (not a test), on a folder the scaling benchmark generated::

    python -m benchmarks.memory_timeline --folder /tmp/icpkit_bench_crm/n1000000_s7 [--trials 4] [--calls]

It runs what ``make train`` runs (load, the four outcomes, the ICP, outputs, publishing into a
temporary store) while a thread samples the resident memory every 50 ms. Each time icpkit logs a
line (or, with ``--calls``, each time a function of the ICP derivation or of publishing starts
or returns) it prints the window that just ended: seconds since the start, the peak RSS in the
window, the RSS at its end, and what the window started with. The largest peaks point at the
step to look at; :mod:`benchmarks.scaling` gives the per-stage figures to record. Tuning trials
change the time, not the memory, so ``--trials`` may be small.
"""

from __future__ import annotations

import argparse
import functools
import logging
import tempfile
import threading
import time
import types
from pathlib import Path

from benchmarks.meter import rss_mb
from benchmarks.scaling import train_like_make_train


class Timeline:
    """Peak RSS per window; a window ends at each :meth:`mark`."""

    def __init__(self) -> None:
        self.label, self.peak, self.t0 = "start", rss_mb("VmRSS"), time.time()
        self.lock = threading.Lock()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            now = rss_mb("VmRSS")
            with self.lock:
                self.peak = max(self.peak, now)
            time.sleep(0.05)

    def mark(self, label: str) -> None:
        now = rss_mb("VmRSS")
        with self.lock:
            print(f"{time.time() - self.t0:6.0f}s  peak {max(self.peak, now):6.0f} MB  end {now:6.0f} MB | {self.label}",
                  flush=True)  # fmt: skip
            self.label, self.peak = label, now


class _Marks(logging.Handler):
    def __init__(self, timeline: Timeline) -> None:
        super().__init__()
        self.timeline = timeline

    def emit(self, record: logging.LogRecord) -> None:
        self.timeline.mark(f"[{record.threadName}] {record.getMessage()[:110]}")


def _mark_calls(module: types.ModuleType, timeline: Timeline) -> None:
    """Wrap the module's own icpkit functions so each call opens and closes a window."""
    for name, fn in list(vars(module).items()):
        if not isinstance(fn, types.FunctionType) or not fn.__module__.startswith("icpkit"):
            continue

        def wrapped(*args, _fn=fn, _name=name, **kwargs):  # noqa: ANN002, ANN003, ANN202
            timeline.mark(f"> {_name}")
            try:
                return _fn(*args, **kwargs)
            finally:
                timeline.mark(f"< {_name}")

        setattr(module, name, functools.wraps(fn)(wrapped))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="a CSV CRM (e.g. from benchmarks.scaling)")
    parser.add_argument("--trials", type=int, default=None, help="Optuna trials per outcome (default: config)")
    parser.add_argument("--calls", action="store_true", help="also mark ICP and publishing function calls")
    args = parser.parse_args()

    timeline = Timeline()
    logging.getLogger("icpkit").addHandler(_Marks(timeline))
    logging.getLogger("icpkit").setLevel(logging.INFO)
    import icpkit.icp.derive
    import icpkit.registry.publish

    if args.calls:
        for module in (icpkit.icp.derive, icpkit.registry.publish):
            _mark_calls(module, timeline)
    with tempfile.TemporaryDirectory() as t:
        train_like_make_train(args.folder, Path(t), timeline.mark, n_trials=args.trials)
        timeline.mark("end")
    print(f"run peak {rss_mb('VmHWM'):.0f} MB")


if __name__ == "__main__":
    main()
