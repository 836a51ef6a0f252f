"""Copy a finished training run's weights into the package, with the record of how they were made.

    .venv/bin/python scripts/ship_weights.py RUN_DIR --val-data VAL_DIR \
        --command "python -m detr_explained.train ..." \
        --data-command "python -m detr_explained.synthetic ..." [--data-command ...] \
        --machine "2 CPU cores (...)" --wall-minutes M [--data-minutes D] \
        [--rerun RERUN_DIR --rerun-wall-minutes M2] [--other-seed-data DIR ...] \
        [--ablation "WHAT WAS CHANGED=ABLATION_RUN_DIR[@STEP]" ...] [--ablation-json ROWS.json ...]

Writes detr_explained/weights/detr-tiny-synthetic.pth (RUN_DIR/model.pth, float16), and beside it
detr-tiny-synthetic.json (the commands, the saved training options, the steps, the measured
training time, the size, the file's SHA-256, which build_model(..., pretrained=True) checks the
file against, and the PQ of the shipped file on VAL_DIR, evaluated here through
build_model(..., pretrained=True)) and README.md (the same, for people). book/07_train_it_yourself
prints the record and checks that its PQ is reproduced; tests/test_trained_model.py checks a
cheaper version of it.

The options in brackets add the evidence around the file: --rerun, the same training command run
a second time (its model.pth is scored on VAL_DIR too, so that the record shows how far two runs
of one command land apart); --other-seed-data, held-out sets written with other seeds (the shipped
file's PQ on each); --ablation, short training runs that each changed one thing, one row per run
in the README's table (PQ of the run's last evaluation, or of its evaluation at STEP, its training
speed and its options, all
read from the run's own files, so no figure is typed in by hand); --ablation-json, rows that
scripts/ablation_table.py --json wrote earlier from runs whose folders are gone (each row keeps the
file it came from).
"""
import argparse
import dataclasses
import json
import os
import re
import sys

import torch

from detr_explained.coco_panoptic import open_dataset
from detr_explained.config import OFFICIAL_EOS_COEF, OFFICIAL_KEEP_THRESHOLD, get_config, keep_threshold
from detr_explained.evaluate import evaluate, load_trained_model
from detr_explained.hub import (WEIGHTS_DIR, CheckpointError, build_model, check_finite, file_sha256,
                                read_checkpoint)
from detr_explained.pq import format_pq_table

NAME = "detr-tiny-synthetic"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--val-data", required=True)
    parser.add_argument("--command", required=True, help="the training command, exactly as run")
    parser.add_argument("--data-command", action="append", default=[], help="a command that wrote the data")
    parser.add_argument("--machine", required=True, help="where the training time was measured")
    parser.add_argument("--wall-minutes", type=float, required=True,
                        help="the training command's whole run time, start to exit, periodic evaluations included")
    parser.add_argument("--code-commit", default=None,
                        help="the git commit of detr_explained that the run used")
    parser.add_argument("--notes", default=None,
                        help="a Markdown file appended to README.md (what was learnt making this run)")
    parser.add_argument("--data-minutes", type=float, default=None,
                        help="how long the data commands took, measured on the same machine")
    parser.add_argument("--rerun", default=None, help="the run folder of the same command run a second time")
    parser.add_argument("--rerun-wall-minutes", type=float, default=None,
                        help="the second run's whole run time, start to exit")
    parser.add_argument("--rerun-note", default="", help="how the second run's machine differed, if it did")
    parser.add_argument("--other-seed-data", action="append", default=[],
                        help="a held-out set written with another seed; the shipped file is scored on it")
    parser.add_argument("--ablation", action="append", default=[], metavar="WHAT=RUN_DIR",
                        help="a short run that changed one thing: its description, '=', its run folder")
    parser.add_argument("--ablation-json", action="append", default=[], metavar="ROWS.json",
                        help="rows written by scripts/ablation_table.py --json (runs made earlier)")
    args = parser.parse_args(argv)
    for path in args.ablation_json:
        if not os.path.isfile(path):
            sys.exit(f"error: --ablation-json {path}: no such file (give a file written by scripts/ablation_table.py --json, "
                     "e.g. benchmarks/stronger_model_runs.json)")
    recorded_rows = [_recorded_row(row, path) for path in args.ablation_json
                     for row in _read_json(path).get("rows", [])]

    source = os.path.join(args.run_dir, "model.pth")
    checkpoint = _read_run(args.run_dir, source)
    preset = get_config(NAME)
    trained_with = checkpoint["args"].get("eos_coef", OFFICIAL_EOS_COEF)
    if trained_with != preset.eos_coef:
        sys.exit(f"error: {args.run_dir} was trained with a \"no object\" weight of {trained_with:g}, but the "
                 f"preset {NAME} says eos_coef={preset.eos_coef:g} (and keeps queries above "
                 f"{preset.keep_threshold:g}, which goes with it): change the preset in "
                 "detr_explained/config.py first, or ship a run of the preset's recipe")
    os.makedirs(WEIGHTS_DIR, exist_ok=True)
    target = os.path.join(WEIGHTS_DIR, f"{NAME}.pth")
    record_path = os.path.join(WEIGHTS_DIR, f"{NAME}.json")
    # model.pth as the run wrote it, its config completed with the preset's keep threshold and
    # "no object" weight (a run made before those fields existed does not carry them), so that
    # the file evaluated on its own (python -m detr_explained.evaluate --checkpoint) is merged as
    # build_model(NAME, pretrained=True) merges it
    shipped = torch.load(source, map_location="cpu", weights_only=True)
    shipped["config"] = dict(shipped["config"], keep_threshold=preset.keep_threshold, eos_coef=preset.eos_coef)
    architecture = {k: v for k, v in dataclasses.asdict(preset).items() if k not in ("keep_threshold", "eos_coef")}
    if {k: shipped["config"].get(k) for k in architecture} != architecture:
        sys.exit(f"error: {source} has the config {shipped['config']}, not the preset {NAME}'s {architecture}")
    torch.save(shipped, target)
    sha256 = file_sha256(target)
    # build_model(pretrained=True) checks the file against the record's hash: record it first
    _write_json(record_path, dict(_read_json(record_path), name=NAME, sha256=sha256))

    model = build_model(NAME, pretrained=True)  # the shipped file, loaded as readers load it
    val_set = open_dataset(args.val_data)
    result = evaluate(model, val_set)
    table = format_pq_table(result, val_set.categories)
    print(table)

    with open(os.path.join(args.run_dir, "log.jsonl"), encoding="utf-8") as handle:
        evaluations = [r for r in map(json.loads, handle) if "pq_all" in r]
    record = {
        "name": NAME,
        "weights_file": f"detr_explained/weights/{NAME}.pth",
        "weights_megabytes": round(os.path.getsize(target) / 1e6, 2),
        "sha256": sha256,
        "parameters": sum(p.numel() for p in model.parameters()),
        "keep_threshold": keep_threshold(model),
        "eos_coef": model.config.eos_coef,
        "data_commands": args.data_command,
        "command": args.command,
        "code_commit": args.code_commit,
        "options": checkpoint["args"],
        "steps": checkpoint["step"],
        "train_minutes": round(checkpoint["train_seconds"] / 60, 2),
        "wall_minutes": round(args.wall_minutes, 2),
        "data_minutes": None if args.data_minutes is None else round(args.data_minutes, 1),
        "machine": args.machine,
        "evaluation": f"python -m detr_explained.evaluate --data {args.val_data} --checkpoint detr_explained/weights/{NAME}.pth",
        "eval_images": len(val_set),
        "pq": {group: {k: float(v) for k, v in values.items()} for group, values in result.summary.items()},
        "pq_per_category": {str(c): {k: float(v) for k, v in values.items()}
                            for c, values in result.per_class.items()},
        # the periodic evaluations of the run (on its --val-size held-out images)
        "pq_during_training": [{k: r[k] for k in ("step", "train_seconds", "pq_all", "pq_things", "pq_stuff")}
                               for r in evaluations],
    }
    if evaluations and "raw_pq_all" in evaluations[-1]:
        # --ema: the run's last evaluation scored the average (shipped) and the last step's weights
        last = evaluations[-1]
        record["ema_vs_last_step"] = {
            "step": last["step"], "eval_images": checkpoint["args"]["val_size"],
            "average": {g: last[f"pq_{g.lower()}"] for g in ("All", "Things", "Stuff")},
            "last_step": {g: last[f"raw_pq_{g.lower()}"] for g in ("All", "Things", "Stuff")}}
    if args.rerun:
        record["rerun"] = _rerun_record(args, val_set, model)
    if args.other_seed_data:
        record["other_seeds"] = [_score(model, folder) for folder in args.other_seed_data]
    if args.ablation or recorded_rows:
        record["ablations"] = recorded_rows + [ablation_row(item) for item in args.ablation]
    _write_json(record_path, record)
    commands = "\n".join(args.data_command + [args.command])
    data_time = ("" if args.data_minutes is None else
                 f"Writing the data took {args.data_minutes:.1f} minutes more on the same machine.")
    code = ("" if args.code_commit is None else
            f" The run used `detr_explained` at commit `{args.code_commit[:12]}`.")
    readme = f"""# Shipped weights: `{NAME}`

`{NAME}.pth` holds the float16 state dict of `build_model("{NAME}")` ({record['parameters']:,}
parameters, {record['weights_megabytes']} MB) trained from scratch on synthetic scenes. Load it with
`build_model("{NAME}", pretrained=True)`. `{NAME}.json` is the machine-readable record
of this page; `book/07_train_it_yourself.ipynb` prints it and reproduces the PQ below.
Its SHA-256 is `{sha256}`; `build_model` refuses a file with another one (restore it with
`git checkout -- detr_explained/weights` in a clone, or reinstall the package).

It was trained with the "no object" class weighted {record['eos_coef']:g} in the class loss (the official
{OFFICIAL_EOS_COEF:g}), so its merge keeps a query whose best class scores above **{record['keep_threshold']:g}**
(`keep_threshold` in its config), not the official {OFFICIAL_KEEP_THRESHOLD:g}; every PQ below is at that
threshold, and `book/07_train_it_yourself.ipynb` explains why the two go together.

## How it was made

```bash
{commands}
```

{_steps_sentence(record)} The command ran for **{record['wall_minutes']:.1f} minutes** from start to exit on
{args.machine}, of which {record['train_minutes']:.1f} minutes were training steps (the rest: the
periodic PQ evaluations and saving). {data_time} To reproduce, run the commands above in an empty
folder, then `scripts/ship_weights.py` (see its docstring).{code}

## PQ of this file on {len(val_set)} held-out scenes (seed 1, never trained on)

```
{table}
```

Reproduce: `{record['evaluation']}`.
"""
    readme += _evidence_markdown(record)
    if args.notes:
        with open(args.notes, encoding="utf-8") as handle:
            readme += "\n" + handle.read().strip() + "\n"
    with open(os.path.join(WEIGHTS_DIR, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(readme)
    print(f"wrote {target}, {NAME}.json and README.md in {WEIGHTS_DIR}", file=sys.stderr)


def _steps_sentence(record) -> str:
    """How many steps the run made: all it asked for, or fewer where --max-minutes stopped it."""
    asked, made = record["options"]["steps"], record["steps"]
    if asked is None or made >= asked:
        return f"{made} steps."
    if record["options"].get("max_minutes") is None:
        return f"{made} of its {asked} steps: the run was stopped before the end."
    return (f"{made} of its {asked} steps: its `--max-minutes {record['options']['max_minutes']:g}` guard "
            f"stopped it after {record['train_minutes']:.1f} minutes of training.")


def _group_pq(result) -> dict:
    return {group: round(float(result.summary[group]["pq"]), 4) for group in ("All", "Things", "Stuff")}


def _score(model, folder: str) -> dict:
    """The model's PQ on a held-out folder, with the seed its generator recorded."""
    dataset = open_dataset(folder)
    with open(os.path.join(folder, "panoptic.json"), encoding="utf-8") as handle:
        seed = re.search(r"seed (\d+)", json.load(handle).get("info", {}).get("description", ""))
    return {"data": folder, "seed": int(seed.group(1)) if seed else None, "images": len(dataset),
            "pq": _group_pq(evaluate(model, dataset))}


def _rerun_record(args, val_set, shipped) -> dict:
    checkpoint = _read_run(args.rerun, os.path.join(args.rerun, "model.pth"))
    model = load_trained_model(os.path.join(args.rerun, "model.pth"), dataset=val_set)  # its saved config
    return {"run": args.rerun, "steps": checkpoint["step"],
            "train_minutes": round(checkpoint["train_seconds"] / 60, 2),
            "wall_minutes": args.rerun_wall_minutes, "note": args.rerun_note,
            # at the shipped model's threshold: a run folder written before the config carried it
            # would be read with the official 0.85
            "keep_threshold": keep_threshold(shipped),
            "pq": _group_pq(evaluate(model, val_set, threshold=keep_threshold(shipped)))}


def ablation_row(item: str) -> dict:
    """One row of the ablation table from a run folder: its options (from checkpoint.pth) and its
    last periodic evaluation in log.jsonl (PQ on the run's held-out images; the step and the
    training seconds it was reached in give the speed). A run stopped after that evaluation
    (Ctrl-C) still gives its row: the figures are those of the evaluated step."""
    what, sep, run_dir = item.rpartition("=")
    if not sep or not what:
        sys.exit(f"error: --ablation {item!r}: give 'WHAT WAS CHANGED=RUN_DIR' or '...=RUN_DIR@STEP'")
    run_dir, _, at_step = run_dir.partition("@")
    checkpoint = _read_run(run_dir, os.path.join(run_dir, "model.pth"))
    with open(os.path.join(run_dir, "log.jsonl"), encoding="utf-8") as handle:
        evaluations = [r for r in map(json.loads, handle) if "pq_all" in r]
    if at_step:
        evaluations = [r for r in evaluations if str(r["step"]) == at_step]
    if not evaluations:
        sys.exit(f"error: {run_dir}/log.jsonl has no evaluation{' at step ' + at_step if at_step else ''} "
                 "(train with --val-size > 0 and --eval-every)")
    last = evaluations[-1]
    options = checkpoint["args"]
    row = {"change": what, "run": os.path.basename(os.path.normpath(run_dir)), "steps": last["step"],
           "lr_drop": options.get("lr_drop"), "batch_size": options.get("batch_size"),
           "threads": options.get("threads"), "config_set": options.get("config_set", []),
           "ema": options.get("ema"), "eval_images": options.get("val_size"),
           # one random state per process: torchrun --nproc_per_node=N saves N
           "processes": len(checkpoint.get("rng") or [None]),
           "res5_stride": 16 if checkpoint["config"]["dilation"] else 32,
           "num_queries": checkpoint["config"]["num_queries"],
           "pq": {"All": last["pq_all"], "Things": last["pq_things"], "Stuff": last["pq_stuff"]},
           "steps_per_second": round(last["step"] / last["train_seconds"], 2),
           "precision": options.get("precision", "float32"),
           # runs made before these options existed trained with 0.1 and were scored above 0.85
           "eos_coef": options.get("eos_coef") or OFFICIAL_EOS_COEF,
           "eval_threshold": options.get("eval_threshold") or OFFICIAL_KEEP_THRESHOLD}
    if "raw_pq_all" in last:
        row["pq_last_step_weights"] = {"All": last["raw_pq_all"], "Things": last["raw_pq_things"],
                                       "Stuff": last["raw_pq_stuff"]}
    return row


def _recorded_row(row: dict, path: str) -> dict:
    """A row of an ablation_table.py --json file, without its evaluations, marked with its file."""
    missing = {"change", "run", "steps", "lr_drop", "batch_size", "res5_stride", "num_queries", "pq",
               "steps_per_second"} - set(row)
    if missing:
        sys.exit(f"error: {path}: a row lacks {sorted(missing)} (write the file with scripts/ablation_table.py --json)")
    return {**{k: v for k, v in row.items() if k != "evaluations"}, "source": path}


def pq_line(pq: dict) -> str:
    """``"73.3 / 52.5 / 94.1"``: PQ all / things / stuff in percent."""
    return " / ".join(f"{100 * pq[g]:.1f}" for g in ("All", "Things", "Stuff"))


def _evidence_markdown(record: dict) -> str:
    """The README's sections for the second run, the other seeds and the ablations."""
    text = ""
    if "other_seeds" in record:
        text += "\n## Scenes of other seeds\n\nThe same file on held-out sets written with seeds it never saw " \
                "(PQ all / things / stuff):\n\n| seed | scenes | PQ all / things / stuff |\n|---|---|---|\n"
        text += "".join(f"| {r['seed']} | {r['images']} | {pq_line(r['pq'])} |\n" for r in record["other_seeds"])
    if "ema_vs_last_step" in record:
        ema = record["ema_vs_last_step"]
        text += (f"\n## The average of the weights (`--ema {record['options']['ema']}`)\n\n"
                 f"The file holds an exponential moving average of the weights, not the last step's. "
                 f"The run's last evaluation (step {ema['step']}, first {ema['eval_images']} held-out scenes) "
                 f"scored both (PQ all / things / stuff):\n\n"
                 f"| weights | PQ all / things / stuff |\n|---|---|\n"
                 f"| average (shipped) | {pq_line(ema['average'])} |\n| last step | {pq_line(ema['last_step'])} |\n")
    if "rerun" in record:
        rerun = record["rerun"]
        shipped = {g: record["pq"][g]["pq"] for g in ("All", "Things", "Stuff")}
        wall = "" if rerun["wall_minutes"] is None else f", {rerun['wall_minutes']:.1f} minutes start to exit"
        text += (f"\n## The same command, run a second time\n\n| run | steps | PQ all / things / stuff |\n|---|---|---|\n"
                 f"| shipped | {record['steps']} | {pq_line(shipped)} |\n"
                 f"| second run{wall} | {rerun['steps']} | {pq_line(rerun['pq'])} |\n\n"
                 f"Both on the {record['eval_images']} held-out scenes above; the second run's PQ differs by "
                 f"{100 * (rerun['pq']['All'] - shipped['All']):+.1f} points. {rerun['note']}\n")
    if "ablations" in record:
        text += ("\n## Ablations: one change at a time\n\n"
                 "Each row is one evaluation of a run of the training command, short or hour-long (on the same data, seed 0, lr 2e-4 "
                 "unless the change says otherwise), read from the run's own `log.jsonl`: PQ on the first "
                 f"{', '.join(sorted({str(r['eval_images']) for r in record['ablations']}))} held-out scenes of "
                 "seed 1, at the step shown, and the run's measured training speed with the threads it had "
                 "(runs with one thread each ran two at a time, so their speeds compare only with each "
                 "other). Rows whose run folder is gone come from the JSON file named under the table.\n\n"
                 + ablation_table(record["ablations"]))
    return text


def ablation_table(rows: list[dict]) -> str:
    """Markdown table of ablation rows (``ablation_row``), one line per row."""
    text = ("| change | Res5 stride | queries | \"no object\" weight | kept above | batch | step | scenes seen "
            "| PQ all / things / stuff | steps/s | threads | forward | run |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    for row in rows:
        step = f"{row['steps']}" + (f" (lr x 0.1 from {row['lr_drop']})"
                                    if row["lr_drop"] and row["lr_drop"] < row["steps"] else "")
        processes = row.get("processes", 1)
        batch = f"{row['batch_size']}" + (f" x {processes} processes" if processes > 1 else "")
        text += (f"| {row['change']} | {row['res5_stride']} | {row['num_queries']} | "
                 f"{row.get('eos_coef', OFFICIAL_EOS_COEF):g} | {row.get('eval_threshold', OFFICIAL_KEEP_THRESHOLD):g} | {batch} | "
                 f"{step} | {row['steps'] * row['batch_size'] * processes:,} | "
                 f"{pq_line(row['pq'])} | {row['steps_per_second']:.2f} | {row.get('threads') or 'auto'} | "
                 f"{row.get('precision', 'float32')} | {row['run']} |\n")
    sources = sorted({row["source"] for row in rows if "source" in row})
    if sources:
        text += "\nRows of runs made earlier, whose folders are gone: " + ", ".join(f"`{s}`" for s in sources) + ".\n"
    return text


def _read_run(run_dir: str, model_file: str) -> dict:
    """RUN_DIR/checkpoint.pth (read as weights only: tensors and plain values), after checking that
    the run's three files are there and that model.pth holds float16 weights without NaN."""
    needed = [os.path.join(run_dir, f) for f in ("checkpoint.pth", "model.pth", "log.jsonl")]
    missing = [f for f in needed if not os.path.isfile(f)]
    if missing:
        sys.exit(f"error: {run_dir} is not a finished training run: {missing} missing "
                 "(give the --out folder of python -m detr_explained.train)")
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(needed[0], map_location="cpu", weights_only=True)
    try:
        state_dict = read_checkpoint(model_file)
        check_finite(state_dict, model_file)
    except CheckpointError as err:
        sys.exit(f"error: {err}")
    dtypes = {str(v.dtype) for v in state_dict.values() if v.is_floating_point()}
    if dtypes != {"torch.float16"}:
        sys.exit(f"error: {model_file} holds {sorted(dtypes)} weights; the package ships float16 "
                 "(train with --model-dtype float16, the default)")
    return checkpoint


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_json(path: str, record: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
        handle.write("\n")


if __name__ == "__main__":
    main()
