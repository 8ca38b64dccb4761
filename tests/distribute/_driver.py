"""A training driver run as its own process by test_cluster.py (so that it can be killed).

    python -m tests.distribute._driver SCHEDULER DATA_DIR MODEL_DIR [--pause-after-round N MARKER]

Trains the shared test model on DATA_DIR's training files through ``Dask(client=SCHEDULER)``,
saving a snapshot every round. With ``--pause-after-round``, it writes MARKER after round N's
snapshot and sleeps, for the test to kill it there.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import time

from streamlin.distribute import Dask
from tests.distribute import _common


class _Pause:
    def __init__(self, after_round: int, marker: str):
        self.after_round, self.marker, self.rounds = after_round, marker, 0

    def after_step(self, step, loss):
        self.rounds += 1
        if self.rounds == self.after_round:
            with open(self.marker, "w") as handle:
                handle.write(str(step))
            time.sleep(120)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("streamlin").setLevel(logging.INFO)
    parser = argparse.ArgumentParser()
    parser.add_argument("scheduler")
    parser.add_argument("data")
    parser.add_argument("model_dir")
    parser.add_argument("--pause-after-round", nargs=2)
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(args.data, "parquet", "train", "*.parquet")))
    hooks = [_Pause(int(args.pause_after_round[0]), args.pause_after_round[1])] if args.pause_after_round else []
    with Dask(client=args.scheduler, n_workers=2, sync_every_rows=_common.ROUND_ROWS) as engine:
        est = _common.estimator(args.model_dir, engine, save_checkpoints_steps=1)
        est.train(_common.train_input(paths), hooks=hooks)
    print("trained to step", est.get_variable_value("global_step"), flush=True)


if __name__ == "__main__":
    main()
