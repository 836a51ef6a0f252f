"""Nothing lost, nothing silently wrong in the commands (book/07_train_it_yourself.ipynb): bad
options are one clear line and exit 2, an old run survives a failed --overwrite, Ctrl-C and
SIGTERM save and say how to resume, a full disk keeps the last good checkpoint, a model is
never evaluated or resumed on other classes, and the thread count follows the free cores."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detr_explained import cli, evaluate, runs, threads, train
from detr_explained.synthetic import write_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_args(data_dir, out, *extra):
    """The training command on conftest's ``data_dir``, one thread, no evaluation."""
    return ["--data", data_dir, "--out", str(out), "--batch-size", "4", "--val-size", "0",
            "--threads", "1", "--progress", "lines", *map(str, extra)]


def run_train(data_dir, out, *extra):
    return train.main(train_args(data_dir, out, *extra))


def fails_with(capsys, function, *args):
    """function(*args) ends with SystemExit 2 and one error line; returns that stderr."""
    with pytest.raises(SystemExit) as exit_info:
        function(*args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    return err


def snapshot(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, says", [
    ("--steps", "-3", "not a positive whole number"),
    ("--steps", "0", "not a positive whole number"),
    ("--batch-size", "0", "not a positive whole number"),
    ("--log-every", "0", "not a positive whole number"),
    ("--eval-threshold", "5", "not a score threshold"),
    ("--eval-threshold", "nan", "not a finite number"),
    ("--eval-threshold", "1", "not a score threshold"),
    ("--lr", "-0.5", "not a positive number"),
    ("--lr", "inf", "not a finite number"),
    ("--hflip", "1.5", "not a probability"),
    ("--seed", "-1", "negative"),
    ("--threads", "0", "give 1 or more"),
    ("--threads", "many", "neither 'auto' nor a whole number"),
    ("--config", "detr-huge", "invalid choice"),
    ("--max-minutes", "0", "not a positive number"),
])
def test_train_refuses_a_bad_option_before_anything_is_written(data_dir, tmp_path, capsys, option, value, says):
    err = fails_with(capsys, run_train, data_dir, tmp_path / "run", "--steps", 1, option, value)
    assert says in err and option in err
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("option, value", [("--num-images", "-1"), ("--num-images", "0"),
                                           ("--threshold", "1.5"), ("--threshold", "nan"),
                                           ("--batch-size", "0")])
def test_evaluate_refuses_a_bad_option(data_dir, capsys, option, value):
    err = fails_with(capsys, evaluate.main, ["--data", data_dir, "--checkpoint", "x.pth", option, value])
    assert option in err


def test_errors_are_one_line_and_traceback_is_a_flag(tmp_path, capsys):
    err = fails_with(capsys, train.main, ["--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert "no panoptic.json" in err
    with pytest.raises(cli.UsageError):  # --traceback: the exception itself, for a bug report
        train.main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--traceback"])


OPTIONS = {  # option -> values a user might type, good and bad
    "--steps": ["1", "2", "0", "-3", "x", "1.5"],
    "--batch-size": ["1", "4", "0", "-2"],
    "--lr": ["1e-4", "0", "-1", "nan", "inf", "abc"],
    "--eval-threshold": ["0", "0.5", "0.85", "0.999", "1", "5", "-0.1", "nan"],
    "--hflip": ["0", "0.5", "1", "1.01", "-1", "nan"],
    "--log-every": ["1", "10", "0", "-1"],
    "--val-size": ["0", "3", "-1"],
    "--clip": ["0", "0.1", "-0.1"],
    "--threads": ["auto", "1", "2", "0", "x"],
    "--seed": ["0", "7", "-1", "1e3"],
    "--lr-drop": ["1", "0", "-5"],
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.integers(0, 7), max_size=5))
def test_any_options_parse_to_valid_values_or_one_clear_error(capsys, chosen):
    """Property: the parser gives values inside their documented ranges, or exit 2 with one
    error line naming the option (never a traceback, never a silently accepted bad number)."""
    argv = ["--data", "d", "--out", "o"]
    for option, index in chosen.items():
        argv += [option, OPTIONS[option][index % len(OPTIONS[option])]]
    try:
        args = train.build_parser().parse_args(argv)
    except SystemExit as exit_info:
        assert exit_info.code == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and "Traceback" not in err
        assert any(option in err for option in chosen)
        return
    assert args.steps is None or args.steps >= 1
    assert args.batch_size >= 1 and args.log_every >= 1 and args.lr > 0
    assert (args.eval_threshold is None or 0 <= args.eval_threshold < 1) and 0 <= args.hflip <= 1
    assert args.val_size is None or args.val_size >= 0
    assert args.threads is None or args.threads >= 1
    assert args.seed >= 0 and args.clip >= 0 and (args.lr_drop is None or args.lr_drop >= 1)


# ----------------------------------------------------------------------------------------------
# The run folder: --overwrite, failures, a full disk
# ----------------------------------------------------------------------------------------------

def test_a_failed_overwrite_leaves_the_old_run_as_it_was(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    run_train(data_dir, out, "--steps", 1)
    before = snapshot(out)
    # refused at parse time, by the dataset check, and by a dataset that fails only when read
    fails_with(capsys, run_train, data_dir, out, "--steps", 1, "--overwrite", "--batch-size", "0")
    fails_with(capsys, run_train, str(tmp_path / "nowhere"), out, "--steps", 1, "--overwrite")
    broken = tmp_path / "broken"
    write_dataset(str(broken), num_images=4, seed=0, min_side=64, max_side=96)
    first_image = sorted(os.listdir(broken / "images"))[0]
    with open(broken / "images" / first_image, "r+b") as handle:
        handle.truncate(200)  # a truncated JPEG: found only when the first batch is read
    with pytest.raises(SystemExit):
        run_train(str(broken), out, "--steps", 1, "--overwrite", "--val-size", "1")
    capsys.readouterr()
    assert snapshot(out) == before  # same files, same bytes, no log.jsonl.new left over


def test_overwrite_replaces_the_old_run_once_the_new_one_has_saved(data_dir, tmp_path):
    out = tmp_path / "run"
    run_train(data_dir, out, "--steps", 3, "--log-every", 1)
    run_train(data_dir, out, "--steps", 1, "--overwrite", "--log-every", 1)
    assert sorted(os.listdir(out)) == sorted(runs.RUN_FILES)
    log = [json.loads(line) for line in open(out / runs.LOG_FILE)]
    assert [r["step"] for r in log] == [1]  # the old run's lines are gone with it
    assert train.load_training_checkpoint(out)["step"] == 1


def test_a_full_disk_keeps_the_last_good_checkpoint_and_no_partial_file(data_dir, tmp_path, capsys):
    """/dev/full fails every write with ENOSPC, as a full disk does: the checkpoint's temporary
    file is pointed there, so the save of step 2 fails for real."""
    out = tmp_path / "run"
    run_train(data_dir, out, "--steps", 1)
    good = snapshot(out)
    os.symlink("/dev/full", out / (runs.CHECKPOINT_FILE + runs.TMP_SUFFIX))
    err = fails_with(capsys, run_train, data_dir, out, "--steps", 2, "--resume")
    assert "No space left on device" in err and "step 1" in err and "--resume" in err
    assert sorted(os.listdir(out)) == sorted(runs.RUN_FILES)  # no .tmp left
    assert {k: v for k, v in snapshot(out).items() if k != runs.LOG_FILE} == \
           {k: v for k, v in good.items() if k != runs.LOG_FILE}
    assert train.load_training_checkpoint(out)["step"] == 1
    run_train(data_dir, out, "--steps", 2, "--resume")  # space again: the printed advice works
    assert train.load_training_checkpoint(out)["step"] == 2


def test_a_diverging_run_stops_with_a_clear_message(data_dir, tmp_path, capsys):
    err = fails_with(capsys, run_train, data_dir, tmp_path / "run", "--steps", 4, "--lr", "1e30", "--clip", "0")
    assert "diverged" in err and "--lr" in err
    assert not os.path.exists(tmp_path / "run")  # nothing was saved, so nothing is left


def test_resume_command_repeats_the_options():
    argv = ["--data", "my data", "--out", "r", "--steps", "9", "--overwrite"]
    assert shlex.split(runs.resume_command(argv)) == [
        "python", "-m", "detr_explained.train", "--data", "my data", "--out", "r", "--steps", "9", "--resume"]
    assert runs.resume_command(argv, world_size=2).startswith("torchrun --nproc_per_node=2 -m detr_explained.train")


# ----------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM, in a real process
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_saves_and_prints_the_command_that_resumes(data_dir, tmp_path, signum, status):
    out = tmp_path / "run"
    argv = train_args(data_dir, out, "--steps", 100000)
    env = {**os.environ, "PYTHONPATH": REPO}
    process = subprocess.Popen([sys.executable, "-m", "detr_explained.train", *argv], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    log = out / runs.LOG_FILE
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
        time.sleep(0.2)  # wait until it is training (a line is logged every 10 steps)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"{signal.Signals(signum).name}: stopped at step" in stdout
    command = stdout.strip().splitlines()[-1].strip()
    saved = train.load_training_checkpoint(out)
    assert saved["step"] >= 10 and f"stopped at step {saved['step']} of 100000" in stdout
    # the printed command, run as printed but shorter, continues from that step
    resumed = shlex.split(command)
    assert resumed[:3] == ["python", "-m", "detr_explained.train"] and resumed[-1] == "--resume"
    resumed[resumed.index("--steps") + 1] = str(saved["step"] + 1)
    completed = subprocess.run([sys.executable, *resumed[1:]], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert train.load_training_checkpoint(out)["step"] == saved["step"] + 1


# ----------------------------------------------------------------------------------------------
# Classes: a model is evaluated and resumed only on the classes it learnt
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def renamed_data(tmp_path_factory, data_dir):
    """The same scenes, with category 3 called 'pyramid' instead of 'triangle'."""
    root = tmp_path_factory.mktemp("renamed")
    write_dataset(str(root), num_images=8, seed=0, min_side=64, max_side=96)
    path = root / "panoptic.json"
    data = json.loads(path.read_text())
    for category in data["categories"]:
        if category["id"] == 3:
            category["name"] = "pyramid"
    path.write_text(json.dumps(data))
    return str(root)


def test_evaluate_and_resume_refuse_other_classes(data_dir, renamed_data, tmp_path, capsys):
    out = tmp_path / "run"
    run_train(data_dir, out, "--steps", 1)
    for name in (runs.MODEL_FILE, runs.CHECKPOINT_FILE):
        err = fails_with(capsys, evaluate.main, ["--data", renamed_data, "--checkpoint", str(out / name)])
        assert "3: triangle" in err and "3: pyramid" in err  # both class lists, named
    err = fails_with(capsys, run_train, renamed_data, out, "--steps", 2, "--resume")
    assert "3: triangle" in err and "3: pyramid" in err
    assert train.load_training_checkpoint(out)["step"] == 1
    evaluate.main(["--data", data_dir, "--checkpoint", str(out / runs.MODEL_FILE), "--num-images", "1"])


def test_a_file_without_categories_is_checked_by_its_number_of_classes(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    run_train(data_dir, out, "--steps", 1)
    shipped = torch.load(out / runs.MODEL_FILE, weights_only=True)
    classes = shipped["model"]["detr.class_embed.weight"]
    shipped["model"]["detr.class_embed.weight"] = torch.cat([classes, classes[:2]])  # 7 + 2 classes, + no object
    shipped["model"]["detr.class_embed.bias"] = torch.cat([shipped["model"]["detr.class_embed.bias"]] * 2)[:10]
    del shipped["categories"]  # as files written before categories were saved
    torch.save(shipped, tmp_path / "old.pth")
    err = fails_with(capsys, evaluate.main, ["--data", data_dir, "--checkpoint", str(tmp_path / "old.pth")])
    assert "predicts 9 classes" in err and "need 7" in err


# ----------------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------------

def test_free_cores_leaves_the_busy_ones():
    assert threads.free_cores(0.0, cores=2) == 2
    assert threads.free_cores(threads.IGNORED_LOAD, cores=2) == 2   # a shell or a browser tab
    assert threads.free_cores(0.9, cores=2) == 1
    assert threads.free_cores(2.0, cores=2) == 1                    # never fewer than one
    assert threads.free_cores(1.0, cores=8) == 7
    for bad in (-1, float("nan"), "1"):
        with pytest.raises(ValueError):
            threads.free_cores(bad, cores=2)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the load is measured from /proc/stat")
def test_the_load_meter_sees_another_busy_process():
    """A real busy process for a second: the meter counts about one core of other work, and
    nothing of this process's own (which sleeps meanwhile)."""
    meter = threads.LoadMeter()
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"])
    time.sleep(0.3)
    meter.others()
    time.sleep(1.0)
    others = meter.others()
    busy.wait()
    assert 0.6 <= others <= threads.usable_cores()
    governor = threads.ThreadGovernor(fixed=1)
    before = torch.get_num_threads()
    try:
        assert governor.start() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_training_gives_back_the_thread_count_it_found(data_dir, tmp_path):
    before = torch.get_num_threads()
    run_train(data_dir, tmp_path / "run", "--steps", 1)  # --threads 1
    assert torch.get_num_threads() == before


def test_nan_weights_are_refused_at_evaluate_and_resume(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    run_train(data_dir, out, "--steps", 1)
    for name in (runs.MODEL_FILE, runs.CHECKPOINT_FILE):
        saved = torch.load(out / name, weights_only=True)
        saved["model"]["detr.class_embed.bias"][0] = float("nan")
        torch.save(saved, out / name)
    err = fails_with(capsys, evaluate.main, ["--data", data_dir, "--checkpoint", str(out / runs.MODEL_FILE)])
    assert "detr.class_embed.bias" in err
    err = fails_with(capsys, run_train, data_dir, out, "--steps", 2, "--resume")
    assert "detr.class_embed.bias" in err
    assert train.load_training_checkpoint(out)["step"] == 1  # the refused resume changed nothing


def test_a_checkpoint_saved_from_ddp_evaluates(data_dir, tmp_path, capsys):
    """Every key with DistributedDataParallel's 'module.' prefix: recognised and loaded."""
    out = tmp_path / "run"
    run_train(data_dir, out, "--steps", 1)
    saved = torch.load(out / runs.MODEL_FILE, weights_only=True)
    saved["model"] = {f"module.{k}": v for k, v in saved["model"].items()}
    torch.save(saved, tmp_path / "ddp.pth")
    evaluate.main(["--data", data_dir, "--checkpoint", str(tmp_path / "ddp.pth"), "--num-images", "1"])
    assert "PQ" in capsys.readouterr().out


def test_ctrl_c_in_evaluate_is_one_line_and_status_130(data_dir, tmp_path):
    """evaluate writes nothing, so Ctrl-C simply stops it: one line, no traceback."""
    out = tmp_path / "run"
    run_train(data_dir, out, "--steps", 1)
    env = {**os.environ, "PYTHONPATH": REPO}
    code = ("import signal, detr_explained.evaluate as e\n"
            "def interrupted(*a, **k):\n"
            "    signal.raise_signal(signal.SIGINT)\n"
            "e.evaluate = interrupted\n"
            f"e.main(['--data', {data_dir!r}, '--checkpoint', {str(out / runs.MODEL_FILE)!r}])\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 130
    assert "interrupted (Ctrl-C)" in completed.stderr and "Traceback" not in completed.stderr


def test_use_free_cores_sets_and_returns_a_count_within_the_cores():
    before = torch.get_num_threads()
    try:
        chosen = threads.use_free_cores(sample_seconds=0.2)
        assert 1 <= chosen <= threads.usable_cores() and torch.get_num_threads() == chosen
    finally:
        torch.set_num_threads(before)
