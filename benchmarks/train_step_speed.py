"""Training-step speed of detr-tiny-synthetic: masks for every query vs for the matched ones only.

    python benchmarks/train_step_speed.py [--steps 20] [--threads 2] [--batch-size 8] [--boxes-only] [--bfloat16]
        [--channels-last] [--set FIELD=VALUE ...]

The official DETRsegm computes the mask of every query in training, though the mask losses only
look at the matched ones; ``train.train_step`` passes ``select=criterion.match_for(targets)`` so
that the model computes the matched queries' masks only. Both ways run here in one process,
alternating step by step, on two copies of the same model and the same batches of 128 x 128
generated scenes (written to a temporary folder and read with the real COCO panoptic loader).
It prints the mean time of a step (forward, losses, backward, AdamW update; batch loading not
included), the steps per second, the ratio, and checks on the first step that both ways give
the same losses.

``--boxes-only`` adds a third way, which does change the losses: the detector alone (backbone,
transformer, class and box heads, with their losses), the first stage of the official two-stage
recipe, which trains the mask head afterwards on the frozen detector. Its time is what a step of
that first stage would cost. ``--set`` changes fields of the preset, as the training command's
option does (e.g. ``--set dilation=true --set num_queries=12``).

``--bfloat16`` adds the matched-masks step with its forward under ``torch.autocast`` in bfloat16
(``python -m detr_explained.train --precision bfloat16``): the same losses, computed in float32
from bfloat16 activations. It prints that step's first loss beside the float32 one.
``--channels-last`` adds the same bfloat16 step with the model's weights in channels-last memory
format (the layout oneDNN's convolutions prefer); the training command has no such option, since
it measured only about 5 % faster (benchmarks/stronger_model.md).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from detr_explained import build_model, synthetic  # noqa: E402
from detr_explained.coco_panoptic import collate, open_dataset  # noqa: E402
from detr_explained.losses import SetCriterion, float32_outputs  # noqa: E402
from detr_explained.train import build_optimizer, parse_config_assignment  # noqa: E402

WARMUP_STEPS = 3


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each kind")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--boxes-only", action="store_true",
                        help="also time the detector alone (no mask head, no mask losses)")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also time the matched-masks step with its forward in bfloat16 (autocast)")
    parser.add_argument("--channels-last", action="store_true",
                        help="also time the bfloat16 step with the model's weights in channels-last memory format")
    parser.add_argument("--set", dest="config_set", action="append", default=[], type=parse_config_assignment,
                        metavar="FIELD=VALUE", help="change a field of the preset")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    total = WARMUP_STEPS + args.steps
    with tempfile.TemporaryDirectory() as root:
        synthetic.write_dataset(root, num_images=total * args.batch_size, seed=0, min_side=128, max_side=128)
        dataset = open_dataset(root)
        batches = [collate([dataset[i] for i in range(k * args.batch_size, (k + 1) * args.batch_size)])
                   for k in range(total)]

    torch.manual_seed(0)
    # dropout 0: the two ways must see the same numbers for the loss check
    models = {"all masks (official)": build_model("detr-tiny-synthetic", dropout=0.0,
                                                  **dict(args.config_set)).train()}
    models["matched masks only"] = copy.deepcopy(models["all masks (official)"])
    if args.boxes_only:
        models["boxes only (stage 1)"] = copy.deepcopy(models["all masks (official)"])
    if args.bfloat16:
        models["matched, bfloat16"] = copy.deepcopy(models["all masks (official)"])
    if args.channels_last:
        models["bfloat16, channels-last"] = copy.deepcopy(models["all masks (official)"]).to(
            memory_format=torch.channels_last)
    criterion = SetCriterion(models["matched masks only"].config.num_classes)
    optimizers = {}
    for name, model in models.items():
        model.detr.aux_loss = True
        optimizers[name] = build_optimizer(model, 2e-4, 2e-4, 1e-4)

    times: dict[str, list[float]] = {name: [] for name in models}
    for step, (images, targets) in enumerate(batches):
        losses = {}
        for name, model in models.items():
            start = time.perf_counter()
            if name == "boxes only (stage 1)":
                outputs = model.detr(images)  # no mask head: SetCriterion leaves out the mask losses
            else:
                select = criterion.match_for(targets) if name != "all masks (official)" else None
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bfloat16" in name):
                    outputs = model(images, select=select)
                outputs = float32_outputs(outputs)
            loss = criterion(outputs, targets)
            optimizers[name].zero_grad(set_to_none=True)
            loss["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optimizers[name].step()
            if step >= WARMUP_STEPS:
                times[name].append(time.perf_counter() - start)
            losses[name] = loss["loss"].item()
        if step == 0:
            a, b = list(losses.values())[:2]
            same = abs(a - b) <= 1e-4 * abs(a)
            print(f"first step's loss: {a:.5f} (all masks), {b:.5f} (matched only): "
                  f"{'the same' if same else 'DIFFERENT'}")
            if "matched, bfloat16" in losses:
                print(f"first step's loss in bfloat16: {losses['matched, bfloat16']:.5f}")

    config = models["matched masks only"].config
    print(f"\n{args.steps} timed steps each, batch {args.batch_size} of 128 x 128 scenes, "
          f"{args.threads} thread(s), torch {torch.__version__}; Res5 stride "
          f"{16 if config.dilation else 32}, {config.num_queries} queries")
    means = {}
    for name, values in times.items():
        means[name] = statistics.mean(values)
        print(f"{name:<22} {1000 * means[name]:7.1f} ms per step  ({1 / means[name]:.2f} steps/s; "
              f"median {1000 * statistics.median(values):.1f} ms)")
    full, fast = means["all masks (official)"], means["matched masks only"]
    print(f"ratio: matched-only steps are {full / fast:.2f}x as fast")
    if args.boxes_only:
        print(f"ratio: a boxes-only step (stage 1 of the two-stage recipe) is "
              f"{fast / means['boxes only (stage 1)']:.2f}x as fast as a matched-masks step")
    if args.bfloat16:
        print(f"ratio: a bfloat16 step is {fast / means['matched, bfloat16']:.2f}x as fast as a "
              f"float32 matched-masks step")
    if args.channels_last:
        print(f"ratio: a bfloat16 channels-last step is {fast / means['bfloat16, channels-last']:.2f}x as fast "
              f"as a float32 matched-masks step")


if __name__ == "__main__":
    main()
