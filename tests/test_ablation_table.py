"""scripts/ablation_table.py and ship_weights.py's ablation rows: every figure of a row comes from the
run folder's own files (config and options from checkpoint.pth, PQ and speed from log.jsonl)."""
import json
import os
import subprocess
import sys

import pytest

from detr_explained import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import ship_weights  # noqa: E402


@pytest.fixture(scope="module")
def short_run(data_dir, tmp_path_factory):
    """Two steps with an evaluation after each, on a stride-16 model with 12 queries and --ema."""
    out = tmp_path_factory.mktemp("runs") / "dc5_q12"
    train.main(["--data", data_dir, "--out", str(out), "--batch-size", "4", "--val-size", "2",
                "--threads", "1", "--steps", "2", "--eval-every", "1", "--ema", "0.9",
                "--set", "dilation=true", "--set", "num_queries=12"])
    return out


def evaluations(run_dir):
    with open(run_dir / "log.jsonl") as handle:
        return [r for r in map(json.loads, handle) if "pq_all" in r]


def test_row_comes_from_the_run_files(short_run):
    row = ship_weights.ablation_row(f"stride 16, 12 queries={short_run}")
    last = evaluations(short_run)[-1]
    assert (row["change"], row["run"], row["steps"]) == ("stride 16, 12 queries", "dc5_q12", 2)
    assert (row["res5_stride"], row["num_queries"], row["batch_size"], row["ema"]) == (16, 12, 4, 0.9)
    assert row["pq"] == {"All": last["pq_all"], "Things": last["pq_things"], "Stuff": last["pq_stuff"]}
    assert row["steps_per_second"] == round(2 / last["train_seconds"], 2)
    assert "pq_last_step_weights" in row  # --ema: the last evaluation scored both
    assert row["processes"] == 1
    assert (row["eos_coef"], row["eval_threshold"]) == (1.0, 0.4)   # the preset's, as the run used them


def test_rows_of_data_parallel_runs_count_every_process():
    """torchrun --nproc_per_node=2 with --batch-size 8: 16 scenes per step."""
    row = {"change": "two processes", "run": "E", "steps": 10, "lr_drop": None, "batch_size": 8,
           "processes": 2, "res5_stride": 16, "num_queries": 12, "steps_per_second": 3.5, "threads": 1,
           "precision": "bfloat16", "pq": {"All": 0.5, "Things": 0.25, "Stuff": 0.75}}
    line = ship_weights.ablation_table([row]).splitlines()[2]
    # a row recorded before the "no object" weight and the threshold were columns: the official ones
    assert line.startswith("| two processes | 16 | 12 | 0.1 | 0.85 | 8 x 2 processes | 10 | 160 | 50.0 / 25.0 / 75.0 |")


def test_row_at_a_chosen_step_and_a_missing_one(short_run):
    assert ship_weights.ablation_row(f"first step={short_run}@1")["steps"] == 1
    with pytest.raises(SystemExit, match="no evaluation at step 7"):
        ship_weights.ablation_row(f"x={short_run}@7")
    with pytest.raises(SystemExit, match="give 'WHAT WAS CHANGED=RUN_DIR'"):
        ship_weights.ablation_row(str(short_run))


def test_script_prints_the_table_and_writes_json(short_run, tmp_path):
    out = tmp_path / "rows.json"
    printed = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "ablation_table.py"),
                              "--json", str(out), f"stride 16={short_run}@1", f"stride 16={short_run}"],
                             capture_output=True, text=True, check=True).stdout
    lines = printed.splitlines()
    assert lines[0].startswith("| change | Res5 stride | queries |") and len(lines) == 4
    # the run trained detr-tiny-synthetic's preset: "no object" weighted 1, kept above 0.4
    assert lines[2].startswith("| stride 16 | 16 | 12 | 1 | 0.4 | 4 | 1 | 4 |")
    rows = json.loads(out.read_text())["rows"]
    assert [r["steps"] for r in rows] == [1, 2]
    assert [e["step"] for e in rows[0]["evaluations"]] == [1, 2]


def test_rows_recorded_earlier_keep_their_file(short_run, tmp_path):
    """--ablation-json: rows written by ablation_table.py --json from runs whose folders are gone
    are shown as they were, named with their file; threads and the forward's precision are columns."""
    rows_file = tmp_path / "rows.json"
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "ablation_table.py"),
                    "--json", str(rows_file), f"stride 16={short_run}"], capture_output=True, check=True)
    rows = [ship_weights._recorded_row(r, str(rows_file)) for r in json.loads(rows_file.read_text())["rows"]]
    assert "evaluations" not in rows[0] and rows[0]["source"] == str(rows_file)
    table = ship_weights.ablation_table(rows).splitlines()
    assert table[0].endswith("| steps/s | threads | forward | run |")
    assert table[2].endswith("| 1 | float32 | dc5_q12 |")
    assert table[-1] == f"Rows of runs made earlier, whose folders are gone: `{rows_file}`."
    with pytest.raises(SystemExit, match=r"lacks \['batch_size'"):
        ship_weights._recorded_row({"change": "x", "run": "r", "steps": 1}, "f.json")


def test_append_keeps_the_rows_already_recorded(short_run, tmp_path):
    out = tmp_path / "rows.json"
    script = os.path.join(REPO, "scripts", "ablation_table.py")
    subprocess.run([sys.executable, script, "--json", str(out), f"first={short_run}@1"], capture_output=True, check=True)
    subprocess.run([sys.executable, script, "--json", str(out), "--append", f"second={short_run}"],
                   capture_output=True, check=True)
    assert [r["change"] for r in json.loads(out.read_text())["rows"]] == ["first", "second"]
    failed = subprocess.run([sys.executable, script, "--append", f"x={short_run}"], capture_output=True, text=True)
    assert failed.returncode == 2 and "--append needs --json FILE" in failed.stderr


def test_ship_weights_refuses_a_missing_rows_file(tmp_path):
    """Checked before anything is copied into the package."""
    with pytest.raises(SystemExit, match="no such file"):
        ship_weights.main([str(tmp_path / "run"), "--val-data", "val", "--command", "c", "--machine", "m",
                           "--wall-minutes", "1", "--ablation-json", str(tmp_path / "missing.json")])


def test_readme_says_when_the_time_guard_stopped_the_run():
    record = {"options": {"steps": 12000, "max_minutes": 55.0}, "steps": 11443, "train_minutes": 55.0}
    assert ship_weights._steps_sentence(record) == (
        "11443 of its 12000 steps: its `--max-minutes 55` guard stopped it after 55.0 minutes of training.")
    record.update(steps=12000)
    assert ship_weights._steps_sentence(record) == "12000 steps."
    assert ship_weights._steps_sentence({"options": {"steps": None}, "steps": 800}) == "800 steps."
