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
    assert lines[2].startswith("| stride 16 | 16 | 12 | 4 | 1 | 4 |")
    rows = json.loads(out.read_text())["rows"]
    assert [r["steps"] for r in rows] == [1, 2]
    assert [e["step"] for e in rows[0]["evaluations"]] == [1, 2]
