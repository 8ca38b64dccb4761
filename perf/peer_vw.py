"""Vowpal Wabbit ``--ftrl`` over the generated VW text file (the ``vowpalwabbit`` wheel's native
driver: ``Workspace`` with ``-d`` runs VW's own parser and learner threads, as the ``vw`` CLI does).

Features: namespace ``I`` holds the 13 numerics (already ``log1p``-transformed in the file; nulls
and zeros omitted), namespaces ``a``..``z`` the 26 categoricals, ``-q ab -q cd -q ef`` the crosses
C1xC2, C3xC4, C5xC6; VW adds its constant feature. One shared table of ``-b total_bits`` slots (at
least as many as streamlin's per-column tables together). Online: one update per example.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from perf import common


def vw_args(spec) -> list:
    hp = spec["hparams"]
    m = common.ftrl_mcmahan(hp)
    args = ["--ftrl", "--ftrl_alpha", repr(m["alpha"]), "--ftrl_beta", repr(m["beta"]),
            "--l1", repr(m["l1"]), "--l2", repr(m["l2"]), "-b", str(common.total_bits(hp)),
            "--loss_function", "logistic", "--link", "logistic", "--quiet"]
    for a, b in common.CROSSES:
        args += ["-q", common.VW_NAMESPACES[a] + common.VW_NAMESPACES[b]]
    return args


def run(spec):
    from importlib.metadata import version

    import vowpalwabbit

    train = spec["data"]["train"]["vw"]
    test = spec["data"]["test"]["vw"]
    if len(train) != 1:
        raise SystemExit("peer_vw reads one training file (VW takes one -d)")
    tmp = tempfile.mkdtemp(prefix="perf_vw_", dir=spec.get("tmp_dir"))
    model = os.path.join(tmp, "model.vw")
    preds = os.path.join(tmp, "preds.txt")
    args = vw_args(spec)
    with common.Timer() as t:
        ws = vowpalwabbit.Workspace(arg_list=args + ["-d", train[0], "-f", model])
    with common.Timer() as t_save:
        ws.finish()
    ws = vowpalwabbit.Workspace(arg_list=["-i", model, "-t", "-d", test[0], "-p", preds, "--quiet"])
    ws.finish()
    p = np.loadtxt(preds, dtype=np.float64, ndmin=1)
    y = common.read_test_labels(spec)
    for f in (model, preds):
        os.remove(f)
    os.rmdir(tmp)
    return common.result(
        "vw --ftrl", rows=spec["rows"], train_s=t.wall, train_cpu_s=t.cpu, y=y, p=p,
        input="VW text", version=version("vowpalwabbit"),
        command="vw " + " ".join(args) + " -d TRAIN.vw -f MODEL",
        notes=[f"one shared table of 2^{common.total_bits(spec['hparams'])} slots; online "
               f"(1 example per update); model save {t_save.wall:.2f} s not counted"])


if __name__ == "__main__":
    common.peer_main(run)
