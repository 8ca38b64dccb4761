"""streamlin against Vowpal Wabbit, scikit-learn and river on the same Criteo-shaped data.

    python -m perf.compare --rows 1000000    # everything (+ RSS at 10M rows), from the repo root
    python -m perf.compare --rows 200000 --only streamlin-parquet vw
    python -m perf.compare --rows 1000000 --reuse-data --skip river --scaling-rows 0

Generates the data once (``datasets/make_synthetic.py``: train + held-out test, Parquet, CSV and
VW text) into ``perf/data/``, then runs every peer as its own child process, one after the other,
and reads each child's peak RSS and CPU time from its rusage (``os.wait4``). Prints a Markdown
table and writes it, with all the figures as JSON, to ``perf/results/``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

from perf import common
from perf._datasets import DATA_DIR, ROOT, ensure_data

RESULTS_DIR = os.path.join(ROOT, "perf", "results")
TF_TIMING = os.path.join(os.path.dirname(ROOT), "shared", "tfref", "golden", "timing.json")

#: name -> (module, extra spec, formats needed, what it is)
PEERS = {
    "streamlin-parquet": ("perf.peer_streamlin", {"mode": "parquet"}, ("parquet",),
                          "streamlin, Parquet input, end to end"),
    "streamlin-csv": ("perf.peer_streamlin", {"mode": "csv"}, ("parquet", "csv"),
                      "streamlin, CSV input, end to end"),
    "streamlin-b1": ("perf.peer_streamlin", {"mode": "parquet", "batch_size": 1,
                                             "show_batch": True}, ("parquet",),
                     "streamlin, Parquet input, batch_size=1 (pure online FTRL)"),
    "streamlin-stages": ("perf.peer_streamlin", {"mode": "stages"}, ("parquet", "csv"),
                         "streamlin stage limits: read, read+transform, learn"),
    "vw": ("perf.peer_vw", {}, ("parquet", "vw"), "Vowpal Wabbit --ftrl, text input"),
    "sklearn": ("perf.peer_sklearn", {}, ("parquet",),
                "scikit-learn SGDClassifier.partial_fit + FeatureHasher"),
    "river": ("perf.peer_river", {}, ("parquet",), "river LogisticRegression + FTRLProximal"),
    "tf": ("perf.peer_tf", {}, ("parquet",),
           "TensorFlow LinearClassifier (optional; where tensorflow imports, see --tf-python)"),
}
PEER_REQUIRES = {"vw": "vowpalwabbit", "sklearn": "sklearn", "river": "river",
                 "tf": "tensorflow, tensorflow_estimator"}
STREAMLIN_PEERS = [p for p in PEERS if p.startswith("streamlin")]


# ---------------------------------------------------------------------------------------------
# Running one peer
# ---------------------------------------------------------------------------------------------
def run_peer(name, spec, work_dir, timeout, log=print, python=None) -> dict:
    module = PEERS[name][0]
    spec_path = os.path.join(work_dir, f"{name}.spec.json")
    out_path = os.path.join(work_dir, f"{name}.result.json")
    err_path = os.path.join(work_dir, f"{name}.log")
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=1)
    if os.path.exists(out_path):
        os.remove(out_path)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [python or sys.executable, "-m", module, spec_path, out_path]
    log(f"[{name}] running ...", flush=True)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(err_path, "wb") as errf:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=errf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()  # only the child this function started, by its own pid
                timed_out = True
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    res = {"peer": name, "process": {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                                     "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
                                     "peak_rss_mb": ru.ru_maxrss / 1024.0,
                                     "returncode": proc.returncode, "log": err_path,
                                     "load1_before": load_before,
                                     "load1_after": os.getloadavg()[0]}}
    if proc.returncode == 0 and os.path.exists(out_path):
        with open(out_path) as f:
            body = json.load(f)
        body["process"] = res["process"]
        body["id"] = name
        log(f"[{name}] done in {wall:.1f} s, peak RSS {res['process']['peak_rss_mb']:.0f} MB"
            + (f", {body['rows_per_s']:,.0f} rows/s" if body.get("rows_per_s") else ""))
        return body
    with open(err_path, "rb") as f:
        tail = f.read()[-3000:].decode("utf-8", "replace")
    why = f"timed out after {timeout:.0f} s" if timed_out else f"exit code {proc.returncode}"
    log(f"[{name}] FAILED ({why}); log: {err_path}\n{tail}")
    res.update({"id": name, "error": why, "log_tail": tail})
    return res


def _available(name, python=None):
    mod = PEER_REQUIRES.get(name)
    if name.startswith("streamlin"):
        probe = "import streamlin; streamlin.LinearClassifier; import streamlin.feature_column"
    elif mod:
        probe = f"import {mod}"
    else:
        return True, ""
    try:
        r = subprocess.run([python or sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                           text=True)
    except OSError as e:
        return False, str(e)
    if r.returncode == 0:
        return True, ""
    last = (r.stderr.strip().splitlines() or ["?"])[-1]
    return False, last


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------
def machine() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": model, "cores": os.cpu_count(), "usable_cores": usable,
            "memory_gb": mem, "platform": platform.platform(), "python": sys.version.split()[0]}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("streamlin", "numpy", "numba", "pyarrow", "zarr", "vowpalwabbit", "scikit-learn",
                "scipy", "river"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    if out["streamlin"] is None:
        r = subprocess.run([sys.executable, "-c",
                            "import streamlin; print(getattr(streamlin, '__version__', 'source'))"],
                           cwd=ROOT, capture_output=True, text=True)
        out["streamlin"] = r.stdout.strip() or None
        try:
            rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
            if rev and out["streamlin"]:
                out["streamlin"] += f" (git {rev})"
        except OSError:
            pass
    return out


def tf_anchor():
    """The recorded TensorFlow figures (not measured in this run), if shared/ is beside the repo."""
    try:
        with open(TF_TIMING) as f:
            t = json.load(f)
    except (OSError, ValueError):
        return None
    runs = t.get("runs", [])

    def best(prefix):
        xs = [r["examples_per_s_train_call"] for r in runs if r["input"].startswith(prefix)]
        return max(xs) if xs else None
    return {"rows": t.get("n_rows"), "tensorflow": t.get("versions", {}).get("tensorflow"),
            "optimizer": t.get("optimizer"),
            "rows_per_s_from_generator": best("in-memory, pre-batched"),
            "rows_per_s_csv": best("tf.data.experimental.make_csv_dataset"),
            "source": "shared/tfref/golden/timing.json"}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _f(x, fmt="{:,.0f}", none="–"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return none
    return fmt.format(x)


def render(report) -> str:
    res = report["results"]
    ok = {r["id"]: r for r in res if "error" not in r and r.get("rows_per_s")}
    base = ok.get("streamlin-parquet")
    meta = report["data"]
    L = []
    L.append(f"# perf.compare: {report['date']}")
    L.append("")
    L.append(f"Command: `{report['command']}`  ")
    m = report["machine"]
    L.append(f"Machine: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
             f"{m['memory_gb']} GB, {m['platform']}, Python {m['python']}  ")
    L.append("Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
             + "  ")
    L.append(f"Data: {meta['rows']:,} train rows / {meta['test_rows']:,} test rows, seed "
             f"{meta['seed']} (datasets/make_synthetic.py); train CTR {meta['ctr_train']:.4f}; "
             f"test logloss of the true model (Bayes) **{meta['bayes_logloss_test']:.4f}**, of the "
             f"constant CTR {meta['constant_logloss_test']:.4f}.  ")
    hp = report["hparams"]
    L.append(f"Features: 13 numerics log1p(max(x,0)), 26 hashed categoricals, crosses "
             f"{', '.join(a + 'x' + b for a, b in common.CROSSES)}; 2^{hp['bucket_bits']} buckets "
             f"per column (one shared table of 2^{common.total_bits(hp)} for VW and scikit-learn). "
             f"FTRL lr/alpha {hp['learning_rate']}, l1 {hp['l1']}, l2 {hp['l2']} (TF form), "
             f"initial accumulator {hp['initial_accumulator_value']}; streamlin batch "
             f"{hp['batch_size']}, loss_reduction {hp['loss_reduction']!r}. One pass, reading "
             f"from disk.")
    loads = [x for r in res for x in (r["process"].get("load1_before"),
                                      r["process"].get("load1_after")) if x is not None]
    if loads:
        before = [r["process"]["load1_before"] for r in res if "load1_before" in r["process"]]
        busy = max(before) > (m["usable_cores"] or 1) + 1
        L.append(f"Load: 1-min load average {min(loads):.1f}–{max(loads):.1f} around the peers "
                 f"(this run's own peer adds up to ~1–2)"
                 + (" — **other work was running on this machine: timings are not reliable**"
                    if busy else "") + "  ")
    L.append("")
    L.append("| peer | input | rows | rows/s | streamlin (Parquet) × | train CPU s | rows/CPU-s "
             "| compile s | peak RSS MB | test logloss | test AUC |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res:
        if r["id"] == "streamlin-stages":
            continue
        if "error" in r:
            L.append(f"| {r['id']} | | | FAILED: {r['error']} | | | | | "
                     f"{_f(r['process']['peak_rss_mb'])} | | |")
            continue
        ratio = base["rows_per_s"] / r["rows_per_s"] if base else None
        name = r["peer"] + (" ¹" if r.get("subset") else "")
        cpu = r.get("train_cpu_s")
        per_cpu = r["train_rows"] / cpu if cpu else None
        L.append(f"| {name} | {r.get('input') or ''} | {r['train_rows']:,} | "
                 f"{_f(r['rows_per_s'])} | {_f(ratio, '{:.2f}')} | "
                 f"{_f(cpu, '{:.1f}')} | {_f(per_cpu)} | {_f(r.get('compile_s'), '{:.1f}')} | "
                 f"{_f(r['process']['peak_rss_mb'])} | {_f(r.get('test_logloss'), '{:.4f}')} | "
                 f"{_f(r.get('test_auc'), '{:.4f}')} |")
    for r in report.get("skipped", []):
        L.append(f"| {r['id']} | | | skipped: {r['why']} | | | | | | | |")
    tf = report.get("tf_anchor")
    if tf:
        L.append(f"| TensorFlow {tf['tensorflow']} LinearClassifier ² | recorded, not this run | "
                 f"{tf['rows']:,} | {_f(tf['rows_per_s_from_generator'])} | "
                 f"{_f(base['rows_per_s'] / tf['rows_per_s_from_generator'] if base and tf['rows_per_s_from_generator'] else None, '{:.2f}')}"
                 f" | | | | | | |")
    L.append("")
    if any(r.get("subset") for r in res):
        L.append("¹ trained on a subset (see notes); rows/s measured on it, a full pass "
                 "extrapolated; its quality is that of the subset-trained model.  ")
    if tf:
        L.append(f"² {tf['source']}: 200k rows of a similar set without crosses, "
                 f"`{tf['optimizer']}`, in-memory `from_generator` input "
                 f"({_f(tf['rows_per_s_csv'])} rows/s from CSV); recorded on this machine class, "
                 f"not measured in this run.")
    L.append("")
    st = next((r for r in res if r["id"] == "streamlin-stages" and "stages" in r), None)
    if st:
        s = st["stages"]
        L.append("## streamlin stage limits (same training file, separate timings)")
        L.append("")
        L.append("| stage | rows | rows/s | CPU s | what |")
        L.append("|---|---:|---:|---:|---|")
        for k in ("read_parquet", "read_csv", "read_transform", "transform_public", "learn", "train_fixed_cost"):
            if k in s:
                what = s[k]["what"]
                if s[k].get("rows_per_s_net_of_fixed_cost"):
                    what += (f"; net of the fixed cost: "
                             f"{_f(s[k]['rows_per_s_net_of_fixed_cost'])} rows/s")
                if k == "train_fixed_cost":
                    L.append(f"| {k} | {s[k]['rows']:,} | {s[k]['s']:.2f} s | "
                             f"{_f(s[k]['cpu_s'], '{:.1f}')} | {what} |")
                    continue
                L.append(f"| {k} | {s[k]['rows']:,} | {_f(s[k]['rows_per_s'])} | "
                         f"{_f(s[k]['cpu_s'], '{:.1f}')} | {what} |")
        if base:
            L.append(f"| end to end (Parquet) | {base['train_rows']:,} | "
                     f"{_f(base['rows_per_s'])} | {_f(base.get('train_cpu_s'), '{:.1f}')} | "
                     f"streamlin-parquet above |")
        L.append("")
    checks = report.get("checks")
    if checks:
        L.append("## Targets of issue 5 (informative; speed is never asserted in tests)")
        L.append("")
        for c in checks:
            L.append(f"- {'PASS' if c['ok'] else 'MISS' if c['ok'] is False else 'n/a '}: "
                     f"{c['what']}: {c['value']}")
        L.append("")
    notes = [(r["id"], n) for r in res for n in r.get("notes", [])]
    if notes:
        L.append("## Notes")
        L.append("")
        for pid, n in notes:
            L.append(f"- {pid}: {n}")
        L.append("")
    return "\n".join(L)


def checks(report):
    ok = {r["id"]: r for r in report["results"] if "error" not in r}
    out = []

    def add(what, cond, value):
        out.append({"what": what, "ok": cond, "value": value})
    sp, vw = ok.get("streamlin-parquet"), ok.get("vw")
    if sp and vw:
        ratio = sp["rows_per_s"] / vw["rows_per_s"]
        add("streamlin (Parquet) rows/s >= 2.5x VW --ftrl", ratio >= 2.5, f"{ratio:.2f}x")
        d = sp["test_logloss"] - vw["test_logloss"]
        add("streamlin test logloss <= VW's + 0.002", d <= 0.002, f"{d:+.4f}")
    sc = ok.get("streamlin-csv")
    if sc and vw:
        ratio = sc["rows_per_s"] / vw["rows_per_s"]
        add("streamlin CSV rows/s >= 1.2x VW text", ratio >= 1.2, f"{ratio:.2f}x")
    st = ok.get("streamlin-stages", {}).get("stages")
    if sp and st and "read_transform" in st and "learn" in st:
        bound = min(st["read_transform"]["rows_per_s"], st["learn"]["rows_per_s"])
        f = sp["rows_per_s"] / bound
        add("end to end >= 80% of min(read+transform, learn)", f >= 0.8, f"{100 * f:.0f}%")
    b1 = ok.get("streamlin-b1")
    if sp and b1:
        f = b1["rows_per_s"] / sp["rows_per_s"]
        add("batch_size=1 within 25% of batch_size=1024 rows/s", f >= 0.75, f"{100 * f:.0f}%")
    sc10 = ok.get("streamlin-parquet@scaling")
    if sp and sc10:
        f = sc10["process"]["peak_rss_mb"] / sp["process"]["peak_rss_mb"]
        add(f"peak RSS at {sc10['train_rows']:,} rows within 10% of {sp['train_rows']:,} rows",
            f <= 1.10, f"{sc10['process']['peak_rss_mb']:.0f} MB vs "
            f"{sp['process']['peak_rss_mb']:.0f} MB ({100 * (f - 1):+.1f}%)")
    return out


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m perf.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="training rows (default 1,000,000)")
    ap.add_argument("--test-rows", type=int, default=100_000, help="held-out rows (default 100,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="+", choices=list(PEERS), metavar="PEER",
                    help=f"run only these peers ({', '.join(PEERS)})")
    ap.add_argument("--skip", nargs="+", choices=list(PEERS), metavar="PEER", default=[],
                    help="skip these peers")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="streamlin's batch size (optimizer step), default 1024")
    ap.add_argument("--reuse-data", action="store_true",
                    help="reuse perf/data/ when it already holds this rows/test-rows/seed set")
    ap.add_argument("--river-rows", type=int, default=100_000,
                    help="river trains on this many rows (0: all); default 100,000")
    ap.add_argument("--b1-rows", type=int, default=0,
                    help="streamlin-b1 trains on this many rows (default 0: all)")
    ap.add_argument("--tf-python", default=None, metavar="PYTHON",
                    help="interpreter with tensorflow + tensorflow_estimator for the optional 'tf' "
                         "peer (default: this one; the peer is skipped where TF does not import)")
    ap.add_argument("--tf-rows", type=int, default=0,
                    help="the tf peer trains on this many rows (default 0: all)")
    ap.add_argument("--scaling-rows", type=int, default=None,
                    help="also run streamlin-parquet on a set of this many rows to compare its peak "
                         "RSS (default: 10 x --rows, unless --only is given; its data is generated once; 0 skips it)")
    ap.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                    help=f"override a hyper-parameter ({', '.join(common.DEFAULT_HPARAMS)})")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per peer (default 3600)")
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--results-dir", default=RESULTS_DIR)
    return ap.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    hp = dict(common.DEFAULT_HPARAMS)
    for kv in a.hparam:
        k, _, v = kv.partition("=")
        if k not in hp:
            raise SystemExit(f"unknown hyper-parameter {k!r}; known: {', '.join(hp)}")
        hp[k] = type(hp[k])(v) if not isinstance(hp[k], str) else v
    if a.batch_size:
        hp["batch_size"] = a.batch_size

    names = [n for n in (a.only or PEERS) if n not in a.skip]
    skipped, run_names = [], []
    for n in names:
        ok, why = _available(n, a.tf_python if n == "tf" else None)
        if ok:
            run_names.append(n)
        else:
            print(f"[{n}] skipped: cannot import {PEER_REQUIRES.get(n, n)} ({why})")
            skipped.append({"id": n, "why": f"{PEER_REQUIRES.get(n, n)} not importable"})
    # all formats, whichever peers run, so that --reuse-data serves any later selection
    meta = ensure_data(a.rows, a.test_rows, a.seed, formats=("parquet", "csv", "vw"),
                       reuse=a.reuse_data, base=a.data_dir)

    os.makedirs(a.results_dir, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = tempfile.mkdtemp(prefix=f"run-{stamp}-", dir=a.results_dir)
    base_spec = {"data": meta["paths"], "rows": a.rows, "test_rows": a.test_rows, "hparams": hp,
                 "river_rows": a.river_rows or None, "tmp_dir": None}
    results = []
    for n in run_names:
        spec = dict(base_spec, **PEERS[n][1])
        if n == "streamlin-b1" and a.b1_rows:
            spec["max_rows"] = a.b1_rows
        if n == "tf" and a.tf_rows:
            spec["max_rows"] = a.tf_rows
        if n == "streamlin-stages":
            spec["stage_rows"] = min(a.rows, 2_000_000)
        results.append(run_peer(n, spec, work, a.timeout,
                                python=a.tf_python if n == "tf" else None))
    if a.scaling_rows is None:
        a.scaling_rows = 0 if a.only else 10 * a.rows
    if a.scaling_rows and "streamlin-parquet" in run_names:
        big = ensure_data(a.scaling_rows, a.test_rows, a.seed, formats=("parquet",),
                          reuse=True, base=a.data_dir)
        spec = dict(base_spec, data=big["paths"], rows=a.scaling_rows, mode="parquet")
        r = run_peer("streamlin-parquet", spec, work, a.timeout)
        r["id"] = "streamlin-parquet@scaling"
        if "error" not in r:
            r["peer"] += f" @ {a.scaling_rows:,} rows"
            r["notes"] = [f"scaling run on {a.scaling_rows:,} rows (its own data; test metrics on "
                          f"its own test set)"]
        results.append(r)

    report = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": "python -m perf.compare " + " ".join(shlex.quote(x) for x in argv),
        "machine": machine(), "versions": versions(), "hparams": hp,
        "data": {k: meta[k] for k in ("rows", "test_rows", "seed", "ctr_train", "ctr_test",
                                      "bayes_logloss_test", "constant_logloss_test",
                                      "expected_bayes_logloss", "reused")},
        "results": results, "skipped": skipped, "tf_anchor": tf_anchor(),
        "work_dir": work,
    }
    report["checks"] = checks(report)
    md = render(report)
    for name in (f"compare-{stamp}", "latest"):
        with open(os.path.join(a.results_dir, name + ".json"), "w") as f:
            json.dump(report, f, indent=1, default=str)
            f.write("\n")
        with open(os.path.join(a.results_dir, name + ".md"), "w") as f:
            f.write(md + "\n")
    print()
    print(md)
    print(f"(written to {os.path.join(a.results_dir, 'compare-' + stamp)}.{{json,md}})")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
