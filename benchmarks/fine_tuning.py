"""Which recipe for your own data: from scratch, fine-tuned from the shipped model, or the
official two stages; measured on the example export of book/09_your_own_dataset.ipynb.

    python benchmarks/fine_tuning.py [--steps 300] [--images 240] [--lr 3e-4] [--threads 2]
        [--record detr_explained/data/fine_tuning.json]

The dataset is ``detr_explained.example_labels.write_example_labels`` (stars and diamonds on
sky and sand: classes the shipped model never saw), converted with ``detr_explained.convert``;
the last ``--val-size`` images are held out. Each recipe is the training command itself
(``python -m detr_explained.train``, in this process), with the same total number of steps,
batch size, learning rate and seed:

- ``scratch``: random weights (``--config detr-tiny-synthetic``);
- ``fine-tune``: ``--init-from detr-tiny-synthetic`` (class head re-initialised, the rest kept);
- ``two-stage``: ``--stage boxes --init-from detr-tiny-synthetic`` for half the steps, then
  ``--stage masks --init-from`` that box model for the other half (the official recipe);
- ``two-stage-scratch``: the same two stages from random weights.

Every run takes the model config's "no object" weight and keep threshold (the shipped model's
1 and 0.4, which the preset shares); each row records both.

It prints, and writes to ``--record`` (the chapter prints the table from it), PQ all / things /
stuff on the held-out images, the training minutes and steps per second of each, the commands,
the code commit and the thread count. Training time is measured by the command itself (loading
batches included, evaluation not). Run it alone on the machine: a busy core slows every step.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from detr_explained import train  # noqa: E402
from detr_explained.convert import convert  # noqa: E402
from detr_explained.example_labels import write_example_labels  # noqa: E402
from detr_explained.runs import load_training_checkpoint  # noqa: E402

RECORD = os.path.join(ROOT, "detr_explained", "data", "fine_tuning.json")


def run(options: list[str]) -> dict:
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        record = train.main(options)
    record["wall_seconds"] = round(time.time() - start, 1)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--val-size", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="run only these recipes")
    parser.add_argument("--record", default=RECORD)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="fine_tuning_")
    export = write_example_labels(os.path.join(work, "export"), num_images=args.images, seed=args.seed)
    data = os.path.join(work, "panoptic")
    convert(export["images"], export["instances"], export["categories"], data, semantic=export["semantic"])
    common = ["--data", data, "--val-size", str(args.val_size), "--batch-size", str(args.batch_size),
              "--lr", str(args.lr), "--threads", str(args.threads), "--seed", str(args.seed),
              "--progress", "lines"]
    half = args.steps // 2

    def out(name: str) -> list[str]:
        return ["--out", os.path.join(work, name)]

    recipes = {
        "scratch": [["--steps", str(args.steps), *out("scratch")]],
        "fine-tune": [["--steps", str(args.steps), "--init-from", "detr-tiny-synthetic", *out("fine-tune")]],
        "two-stage": [["--steps", str(half), "--stage", "boxes", "--init-from", "detr-tiny-synthetic",
                       "--model-dtype", "float32", *out("boxes")],
                      ["--steps", str(args.steps - half), "--stage", "masks", "--init-from",
                       os.path.join(work, "boxes", "model.pth"), *out("two-stage")]],
        "two-stage-scratch": [["--steps", str(half), "--stage", "boxes", "--model-dtype", "float32",
                               *out("boxes-scratch")],
                              ["--steps", str(args.steps - half), "--stage", "masks", "--init-from",
                               os.path.join(work, "boxes-scratch", "model.pth"), *out("two-stage-scratch")]],
    }
    rows = []
    for name, commands in recipes.items():
        if args.only and name not in args.only:
            continue
        seconds, steps = 0.0, 0
        for options in commands:
            record = run([*common, *options])
            seconds += record["train_seconds"]
            steps += int(options[options.index("--steps") + 1])
        # the last command's "no object" weight and the threshold its PQ was measured at (the
        # model config's: --init-from's file, or the preset's for random weights)
        options_used = load_training_checkpoint(options[options.index("--out") + 1])["args"]
        row = {"recipe": name, "steps": steps, "train_minutes": round(seconds / 60, 2),
               "eos_coef": options_used["eos_coef"], "eval_threshold": options_used["eval_threshold"],
               "steps_per_second": round(steps / seconds, 2),
               "pq_all": record["pq_all"], "pq_things": record["pq_things"], "pq_stuff": record["pq_stuff"],
               "commands": ["python -m detr_explained.train " + " ".join(common + options).replace(work + "/", "")
                            for options in commands]}
        rows.append(row)
        print(f"{name:18s} PQ {100 * row['pq_all']:5.1f}  things {100 * row['pq_things']:5.1f}  "
              f"stuff {100 * row['pq_stuff']:5.1f}  {row['train_minutes']:5.2f} min  "
              f"{row['steps_per_second']:.2f} steps/s", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    result = {"what": "PQ on held-out images of the example export after the same number of steps, by recipe",
              "dataset": {"images": args.images, "held_out": args.val_size, "seed": args.seed,
                          "made_by": "detr_explained.example_labels.write_example_labels + detr_explained.convert"},
              "command": "python benchmarks/fine_tuning.py " + " ".join(sys.argv[1:]),
              "commit": commit, "threads": args.threads, "rows": rows}
    with open(args.record, "w") as handle:
        json.dump(result, handle, indent=1)
    print(f"wrote {args.record}")


if __name__ == "__main__":
    main()
