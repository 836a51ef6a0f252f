"""The ablation table of training runs that are not (or not yet) shipped, read from their folders.

    .venv/bin/python scripts/ablation_table.py --json OUT.json "WHAT WAS CHANGED=RUN_DIR[@STEP]" ...

Each argument names one evaluation of a run of ``python -m detr_explained.train``: its last one, or
the one at STEP. The row (the run's config and options from ``checkpoint.pth``, PQ all / things /
stuff and the step it was reached at, the training speed up to it) comes from the run's own files,
as ``scripts/ship_weights.py --ablation`` makes them for the shipped weights' README, so no figure is
typed in by hand. Prints the Markdown table; ``--json`` also writes the rows, with every periodic
evaluation of each run (``"evaluations"``), so that a learning curve can be compared later;
``--append`` keeps the rows already in that file (runs of earlier sessions) and adds these after them.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ship_weights import ablation_row, _read_json, _write_json, ablation_table  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", nargs="+", metavar="WHAT=RUN_DIR[@STEP]")
    parser.add_argument("--json", default=None, help="also write the rows (and each run's evaluations) here")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows already in the --json file and add these after them")
    args = parser.parse_args(argv)
    if args.append and not args.json:
        parser.error("--append needs --json FILE")
    rows = [ablation_row(item) for item in args.rows]
    print(ablation_table(rows), end="")
    if args.json:
        for item, row in zip(args.rows, rows):
            run_dir = item.rpartition("=")[2].partition("@")[0]
            with open(os.path.join(run_dir, "log.jsonl"), encoding="utf-8") as handle:
                row["evaluations"] = [{k: v for k, v in r.items() if k.startswith(("step", "train_seconds", "pq_", "raw_pq_"))}
                                      for r in map(json.loads, handle) if "pq_all" in r]
        kept = _read_json(args.json).get("rows", []) if args.append else []
        _write_json(args.json, {"rows": kept + rows})


if __name__ == "__main__":
    main()
