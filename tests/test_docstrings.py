"""Every public function and class of the package names the chapter that explains it (d2l-style)."""
import importlib
import inspect
import pkgutil
import re

import detr_explained

CHAPTER = re.compile(r"book/(intro|appendix_[a-z_]+|\d\d_[a-z_]+)\.ipynb")


def public_members():
    for info in pkgutil.iter_modules(detr_explained.__path__):
        module = importlib.import_module(f"detr_explained.{info.name}")
        for name, member in vars(module).items():
            if name.startswith("_") or not (inspect.isfunction(member) or inspect.isclass(member)):
                continue
            if member.__module__ != module.__name__:
                continue  # imported from elsewhere
            yield f"{module.__name__}.{name}", member


def test_every_public_function_and_class_names_its_chapter():
    missing = [name for name, member in public_members() if not CHAPTER.search(inspect.getdoc(member) or "")]
    assert not missing, "docstrings without a chapter (book/NN_name.ipynb):\n" + "\n".join(missing)


def test_named_chapters_are_planned_ones():
    planned = {"intro", "00_meet_the_model", "01_backbone", "02_transformer", "03_attention_maps", "04_mask_head",
               "05_argmax_merge", "06_checking_the_brief", "07_train_it_yourself",
               "08_published_model", "09_your_own_dataset", "appendix_side_topics"}
    named = {match for _, member in public_members() for match in CHAPTER.findall(inspect.getdoc(member) or "")}
    assert named <= planned, named - planned
