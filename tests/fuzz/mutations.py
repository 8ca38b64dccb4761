"""Hypothesis strategies that damage files inside a directory: truncate, flip, overwrite, delete, and
edit JSON structurally. ``apply`` performs a drawn mutation on a copy and returns its description."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

# Small numbers only: a declared shape of 2**31 rows would really be allocated by zarr (see
# test_fuzz_regressions.py for the huge-size case in a subprocess).
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 1000), st.floats(-1e3, 1e3, allow_nan=False),
                      st.text(max_size=5), st.sampled_from(["", "model.ckpt-8", "../x", "float32", "int8", "abc"]))
json_values = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                              st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                           max_leaves=6)


@dataclass
class Mutation:
    file: str  # relative to the root
    op: str
    detail: tuple

    def __str__(self) -> str:
        return f"{self.op} {self.file} {self.detail}"


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


@st.composite
def mutations(draw, root: Path, files: list[str], json_weight: int = 2) -> Mutation:
    """A mutation of one of ``files`` (paths relative to ``root``; a directory is deleted); .json files also
    get structural edits."""
    name = draw(st.sampled_from(files))
    if (root / name).is_dir():
        return Mutation(name, "delete", ())
    size = (root / name).stat().st_size
    document = None
    if name.endswith(".json") and json_weight:
        try:
            document = json.loads((root / name).read_text(encoding="utf-8"))
        except ValueError:  # already damaged by an earlier mutation
            pass
    ops = ["truncate", "flip", "set", "delete"] + (["json"] * json_weight if document is not None else [])
    op = draw(st.sampled_from(ops))
    if op == "truncate":
        return Mutation(name, op, (draw(st.integers(0, max(size - 1, 0))),))
    if op in ("flip", "set"):
        if size == 0:
            return Mutation(name, "delete", ())
        position = draw(st.integers(0, size - 1))
        value = draw(st.integers(0, 7)) if op == "flip" else draw(st.sampled_from([0, 0xFF, 0x20, 0x30, 0x7F]))
        return Mutation(name, op, (position, value))
    if op == "delete":
        return Mutation(name, op, ())
    paths = [p for p in _paths(document) if p]
    if not paths:
        return Mutation(name, "json-replace", ((), draw(json_values)))
    path = draw(st.sampled_from(paths))
    if draw(st.booleans()):
        return Mutation(name, "json-delete", (path,))
    return Mutation(name, "json-replace", (path, draw(json_values)))


def linked_copy(source: Path, target: Path) -> Path:
    """A copy of the tree ``source`` made of hard links (fast); ``apply`` never writes through a link."""
    shutil.copytree(source, target, copy_function=os.link)
    return target


def _rewrite(path: Path, data: bytes) -> None:
    path.unlink()  # break a hard link to the undamaged original
    path.write_bytes(data)


def apply(root: Path, mutation: Mutation) -> None:
    """Damage ``root / mutation.file`` (replaced, not written in place)."""
    path = root / mutation.file
    if mutation.op == "delete":
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        return
    if mutation.op == "truncate":
        _rewrite(path, path.read_bytes()[:mutation.detail[0]])
        return
    if mutation.op in ("flip", "set"):
        data = bytearray(path.read_bytes())
        position, value = mutation.detail
        data[position] = data[position] ^ (1 << value) if mutation.op == "flip" else value
        _rewrite(path, bytes(data))
        return
    document = json.loads(path.read_text(encoding="utf-8"))
    keys = mutation.detail[0]
    if not keys:
        document = mutation.detail[1]
    else:
        parent = document
        for key in keys[:-1]:
            parent = parent[key]
        if mutation.op == "json-delete":
            del parent[keys[-1]]
        else:
            parent[keys[-1]] = mutation.detail[1]
    _rewrite(path, json.dumps(document).encode())


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def damage(data, root: Path, targets: list[str], max_mutations: int = 2, json_weight: int = 2) -> list[Mutation]:
    """Draw and apply 1..max_mutations mutations in turn (each of a target that still exists)."""
    done: list[Mutation] = []
    for _ in range(data.draw(st.integers(1, max_mutations))):
        existing = [t for t in targets if (root / t).exists()]
        if not existing:
            break
        mutation = data.draw(mutations(root, existing, json_weight))
        apply(root, mutation)
        done.append(mutation)
    return done


def reseal(root: Path) -> bool:
    """Rewrite ``root``'s integrity manifest over its current files, as whoever edits a model file by hand
    (or on purpose) can; False when this streamlin writes no manifests."""
    from streamlin.checkpoint import store

    write = getattr(store, "write_manifest", None)
    name = getattr(store, "MANIFEST_FILE", None)
    if write is None or name is None or not root.is_dir():
        return False
    (root / name).unlink(missing_ok=True)
    write(root)
    return True
