"""Load ``datasets/make_synthetic.py`` (not a package) by its path, and make the benchmark data."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATOR_PATH = os.path.join(ROOT, "datasets", "make_synthetic.py")
DATA_DIR = os.path.join(ROOT, "perf", "data")
_MODULE_NAME = "streamlin_datasets_make_synthetic"


def load_generator():
    """The ``datasets/make_synthetic.py`` module, imported from its file path (cached)."""
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, GENERATOR_PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = mod
    spec.loader.exec_module(mod)
    return mod


def data_dir_for(rows, test_rows, seed, base=DATA_DIR) -> str:
    return os.path.join(base, f"synth-s{seed}-r{rows}-t{test_rows}")


def _complete(meta, formats) -> bool:
    try:
        for split in ("train", "test"):
            for f in formats:
                paths = meta["paths"][split][f]
                if not paths or not all(os.path.exists(p) for p in paths):
                    return False
    except KeyError:
        return False
    return True


def ensure_data(rows, test_rows, seed=0, formats=("parquet", "csv", "vw"), reuse=False,
                base=DATA_DIR, log=print) -> dict:
    """Generate (or, with ``reuse``, reuse when complete) the train + test set; returns its meta."""
    gen = load_generator()
    out = data_dir_for(rows, test_rows, seed, base)
    meta_path = os.path.join(out, "meta.json")
    if reuse and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if (meta.get("format_version") == gen.FORMAT_VERSION and meta.get("rows") == rows
                and meta.get("test_rows") == test_rows and meta.get("seed") == seed
                and _complete(meta, formats)):
            log(f"reusing data in {out}")
            meta["reused"] = True
            return meta
    if os.path.exists(out):
        shutil.rmtree(out)
    log(f"generating {rows:,} train + {test_rows:,} test rows ({', '.join(formats)}) into {out} ...")
    meta = gen.generate(out, rows, seed=seed, formats=tuple(formats), files=1, test_rows=test_rows)
    log(f"  done in {meta['seconds']:.1f} s; CTR {meta['ctr_train']:.3f}, "
        f"Bayes test logloss {meta['bayes_logloss_test']:.4f}")
    meta["reused"] = False
    return meta
