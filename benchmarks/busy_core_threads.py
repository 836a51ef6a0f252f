"""Training speed when another program keeps one core busy: 2 threads, 1 thread and --threads auto.

    .venv/bin/python benchmarks/busy_core_threads.py [--steps 40] [--repeats 2]

Runs the training command (detr-tiny-synthetic, batch 8, 128 px scenes) for ``--steps`` steps
with each thread setting, on a quiet machine and with a busy loop in another process taking one
core, alternating the settings in each repeat, and prints the training seconds per step
(``train_seconds`` of the checkpoint, which counts batch loading, not start-up) and each setting's
slow-down against 2 threads on the quiet machine. Run it on an otherwise idle machine: the
"quiet" rows assume that nothing else runs.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import torch

from detr_explained import synthetic, train

SETTINGS = ("2", "1", "auto")


def busy_loop() -> subprocess.Popen:
    """Another program that keeps one core busy until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True:\n    pass"])


def seconds_per_step(data: str, work: str, threads: str, steps: int) -> float:
    out = os.path.join(work, f"run-{threads}")
    shutil.rmtree(out, ignore_errors=True)
    train.main(["--data", data, "--out", out, "--steps", str(steps), "--batch-size", "8", "--val-size", "0",
                "--threads", threads, "--progress", "lines", "--log-every", str(steps)])
    return train.load_training_checkpoint(out)["train_seconds"] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"torch {torch.__version__}, {cores} usable cores, {args.steps} steps per measurement")
    work = tempfile.mkdtemp(prefix="busy_core_")
    try:
        data = os.path.join(work, "data")
        synthetic.write_dataset(data, num_images=64, seed=0, min_side=128, max_side=128)
        times = {(load, threads): [] for load in ("quiet", "one core busy") for threads in SETTINGS}
        seconds_per_step(data, work, "2", 5)  # warm-up
        for _ in range(args.repeats):
            for load in ("quiet", "one core busy"):
                spinner = busy_loop() if load != "quiet" else None
                try:
                    for threads in SETTINGS:
                        times[(load, threads)].append(seconds_per_step(data, work, threads, args.steps))
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
        base = statistics.median(times[("quiet", "2")])
        print(f"\n{'machine':<15}{'--threads':>10}{'s/step (median)':>18}{'vs quiet, 2 threads':>22}")
        for (load, threads), values in times.items():
            median = statistics.median(values)
            print(f"{load:<15}{threads:>10}{median:>18.3f}{median / base:>21.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
