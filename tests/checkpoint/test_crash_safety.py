"""SIGKILL a training process at random instants (mostly mid-save): the latest listed snapshot always
loads, nothing partial is ever listed, and training resumes from it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

import streamlin as sl
from streamlin import feature_column as fc

TRAINER = textwrap.dedent("""
    import sys
    import numpy as np
    import streamlin as sl
    from streamlin import feature_column as fc

    rng = np.random.default_rng(0)
    n = 4000
    features = {f"c{i}": rng.integers(0, 100000, size=n) for i in range(4)}
    labels = rng.integers(0, 2, size=n)
    columns = [fc.categorical_column_with_hash_bucket(f"c{i}", 2**18, dtype="int64") for i in range(4)]
    warm = sl.LinearClassifier(columns, model_dir=sys.argv[2])  # compile the kernels before "ready"
    warm.train(sl.inputs.numpy_input_fn(features, labels, batch_size=500), steps=1)
    est = sl.LinearClassifier(columns, model_dir=sys.argv[1],
                              config=sl.RunConfig(save_checkpoints_steps=1, keep_checkpoint_max=3))
    print("ready", flush=True)
    while True:
        est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=500))
""")


def _columns():
    return [fc.categorical_column_with_hash_bucket(f"c{i}", 2**18, dtype="int64") for i in range(4)]


def test_sigkill_during_saves_never_breaks_the_latest_snapshot(tmp_path):
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    model_dir = tmp_path / "model"
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    seen_steps = []
    for attempt in range(8):
        process = subprocess.Popen([sys.executable, str(script), str(model_dir), str(tmp_path / f"warm{attempt}")],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait()
        snapshots = sl.checkpoints.list(model_dir)
        if not snapshots:
            continue
        latest = snapshots[-1]
        est = sl.LinearClassifier(_columns(), model_dir=str(model_dir))
        value = est.get_variable_value("linear/linear_model/c0/weights")  # loads, or raises
        assert value.shape == (2**18, 1) and np.isfinite(value).all()
        assert est.latest_checkpoint() == latest.path
        seen_steps.append(latest.step)
    assert seen_steps, "the trainer never got to save; kill later"
    assert seen_steps == sorted(seen_steps)  # progress is kept across kills
    est = sl.LinearClassifier(_columns(), model_dir=str(model_dir))
    rng_np = np.random.default_rng(0)
    features = {f"c{i}": rng_np.integers(0, 100000, size=100) for i in range(4)}
    est.train(sl.inputs.numpy_input_fn(features, rng_np.integers(0, 2, size=100), batch_size=50), steps=1)
    assert est.get_variable_value("global_step") == seen_steps[-1] + 1
    assert not any(p.name.startswith(".tmp-") for p in model_dir.iterdir())
