"""Two client folders, random offline file-system changes on both, sync in random order: they end in step.

A seeded random walk (not hypothesis: each step is a real sync over HTTP; more seeds: PCLOUD_CLIENT_SEEDS=4,5,…)
that covers what the table tests do not combine: renames of folders with edits inside, moves across folders,
deletes of parents, re-creates.
"""

import os
import random
import shutil

import pytest

from tests.fixtures.mobile import disk_tree, server_tree

NAMES = ["a", "b", "C", "d.txt", "e.txt"]


def entries(folder):
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        if ".pcloud" in dirpath.split(os.sep):
            continue
        dirnames[:] = [d for d in dirnames if d != ".pcloud"]
        out += [(os.path.join(dirpath, d), "dir") for d in dirnames]
        out += [(os.path.join(dirpath, f), "file") for f in filenames]
    return out


def step(rng, folder):
    items = entries(folder)
    dirs = [str(folder)] + [p for p, k in items if k == "dir"]
    action = rng.choice(["mkdir", "write", "write", "edit", "rename", "move", "delete"])
    taken = lambda d: {n.casefold() for n in os.listdir(d)}  # noqa: E731 - one-liner for the walk
    if action in ("mkdir", "write"):
        parent = rng.choice(dirs)
        name = rng.choice(NAMES)
        if name.casefold() in taken(parent):
            return
        path = os.path.join(parent, name)
        if action == "mkdir":
            os.mkdir(path)
        else:
            with open(path, "wb") as f:
                f.write(os.urandom(rng.randint(0, 64)))
    elif not items:
        return
    elif action == "edit":
        files = [p for p, k in items if k == "file"]
        if files:
            with open(rng.choice(files), "ab") as f:
                f.write(b"+edit")
    elif action == "rename":
        path, _ = rng.choice(items)
        name = rng.choice(NAMES)
        if name.casefold() not in taken(os.path.dirname(path)):
            os.rename(path, os.path.join(os.path.dirname(path), name))
    elif action == "move":
        path, _ = rng.choice(items)
        target = rng.choice(dirs)
        if target == path or target.startswith(path + os.sep) or target == os.path.dirname(path):
            return
        if os.path.basename(path).casefold() not in taken(target):
            os.rename(path, os.path.join(target, os.path.basename(path)))
    elif action == "delete":
        path, kind = rng.choice(items)
        shutil.rmtree(path) if kind == "dir" else os.remove(path)


@pytest.mark.parametrize("seed", [int(s) for s in os.environ.get("PCLOUD_CLIENT_SEEDS", "1,9,10").split(",")])
def test_random_offline_changes_converge(pair, clients, settings, seed):
    laptop, phone, in_step, _, user = pair
    rng = random.Random(seed)
    for _ in range(6):  # rounds: both change offline, then sync in a random order
        for c in (laptop, phone):
            for _ in range(rng.randint(0, 4)):
                step(rng, c.folder)
        first, second = rng.sample([laptop, phone], 2)
        assert first.sync_once() and second.sync_once()
    server = in_step()
    assert disk_tree(laptop.folder) == server == disk_tree(phone.folder)
    assert server_tree(clients, settings, user.id) == server
