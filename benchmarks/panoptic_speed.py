"""End-to-end panoptic segmentation of one 800x1066 image: detr_explained vs the official code.

    python benchmarks/panoptic_speed.py [--repeats 3] [--threads 2]

Both run in this one process, alternating, on the same weights: a seeded random ResNet-50
panoptic model whose class head is planted (detr_explained.demo) so that 20 of 100 queries pass
the 0.85 threshold, as a trained model's do on a COCO image. "Official" is detr==0.1.4's DETRsegm
forward + PostProcessPanoptic (installed by `make oracle`); "ours" is detr_explained.segment with
stuff_merge="official", so the segments must be identical, and the script checks they are.

Memory: peak resident memory (VmHWM, reset before each call through /proc/self/clear_refs)
minus the resident memory just before the call, after glibc's malloc_trim has handed memory
freed by the previous call back to the system, so that each call's peak is its own.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

import ctypes
import io

import matplotlib.cbook  
import numpy as np  
import torch  
import torchvision.transforms.functional as TF  
from PIL import Image  

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import oracle  
from detr_explained import rgb2id, segment  
from detr_explained.demo import planted_model  
from detr_explained.preprocessing import IMAGENET_MEAN, IMAGENET_STD, load_image  


LIBC = ctypes.CDLL("libc.so.6")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(run):
    """(seconds, peak RSS MiB, peak increase over the RSS before the call MiB, result)."""
    gc.collect()
    LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return seconds, peak / 1024, (peak - before) / 1024, result


def same_segments(ours, official) -> bool:
    """Our ids are the official ids + 1 (0 is VOID); categories and areas must agree."""
    official_ids = rgb2id(np.array(Image.open(io.BytesIO(official["png_string"]))))
    if not np.array_equal(ours.id_map.numpy(), official_ids + 1):
        return False
    theirs = [(s["id"] + 1, s["category_id"], s["area"]) for s in official["segments_info"]]
    mine = [(s["id"], s["category_id"], s["area"]) for s in ours.segments_info]
    return theirs == mine


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    photo = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).resize((1066, 800), Image.BILINEAR)
    image = TF.normalize(TF.to_tensor(photo), IMAGENET_MEAN, IMAGENET_STD)  # (3, 800, 1066)
    ours_model = planted_model("detr-r50-panoptic", [image], seed=0)
    official_model = oracle.build_official()
    official_model.load_state_dict(ours_model.state_dict(), strict=True)
    postprocess = oracle.official_postprocessor()
    size = torch.as_tensor([image.shape[-2:]])

    def official():
        with torch.no_grad():
            return postprocess(official_model([image]), size)[0]

    def ours():
        return segment(ours_model, [image], stuff_merge="official")[0]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, image 3x800x1066, "
          f"{args.repeats} alternating runs each (after one warm-up)")
    official(), ours()  # warm-up: first-call allocations and lazy initialisation
    rows = {"official": [], "ours": []}
    identical = True
    for _ in range(args.repeats):
        for name, run in (("official", official), ("ours", ours)):
            seconds, peak, increase, result = measure(run)
            rows[name].append((seconds, peak, increase))
            if name == "official":
                reference = result
            else:
                identical &= same_segments(result, reference)
                kept = sum(len(s["queries"]) for s in result.segments_info)
                segments = len(result.segments_info)

    print(f"{'':10s} {'median s':>9s} {'min s':>7s} {'peak RSS MiB':>13s} {'peak increase MiB':>18s}")
    summary = {}
    for name, values in rows.items():
        times = [v[0] for v in values]
        peak = max(v[1] for v in values)
        increase = max(v[2] for v in values)
        summary[name] = (statistics.median(times), peak, increase)
        print(f"{name:10s} {statistics.median(times):9.2f} {min(times):7.2f} {peak:13.0f} {increase:18.0f}")
    speedup = summary["official"][0] / summary["ours"][0]
    memory_ratio = summary["ours"][2] / summary["official"][2]
    print(f"speed-up (official / ours, median time): {speedup:.2f}x")
    print(f"peak memory increase (ours / official): {memory_ratio:.2f}")
    print(f"queries kept: {kept} of {ours_model.config.num_queries}; segments after merge: {segments}; "
          f"identical segments in every run: {identical}")
    if not identical:
        sys.exit("the segments differ from the official ones")


if __name__ == "__main__":
    main()
