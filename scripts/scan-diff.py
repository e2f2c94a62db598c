#!/usr/bin/env python3
"""Compares two `sightline-agent scan --format json` documents field by field.

Usage: scan-diff.py LINUX.json WINDOWS.json [--ignore FIELD ...]
FIELD is a dotted path (`device.hostname`) of a field that is per-platform by design.
Prints every difference and exits 1 if there is any."""
import json
import sys


def diff(x, y, path, ignore, out):
    if path.lstrip(".") in ignore:
        return
    if type(x) is not type(y):
        out.append(f"{path}: {x!r} != {y!r}")
    elif isinstance(x, dict):
        for k in sorted(set(x) | set(y)):
            diff(x.get(k), y.get(k), f"{path}.{k}", ignore, out)
    elif isinstance(x, list):
        if len(x) != len(y):
            out.append(f"{path}: {len(x)} entries != {len(y)}")
        for i, (u, v) in enumerate(zip(x, y)):
            diff(u, v, f"{path}[{i}]", ignore, out)
    elif x != y:
        out.append(f"{path}: {x!r} != {y!r}")


def main():
    args = sys.argv[1:]
    ignore = set()
    while "--ignore" in args:
        i = args.index("--ignore")
        ignore.add(args[i + 1])
        del args[i : i + 2]
    a, b = (json.load(open(p)) for p in args)
    out = []
    diff(a, b, "", ignore, out)
    for line in out:
        print("   ", line)
    if not a.get("findings"):
        print("    no findings: the comparison proves nothing")
        return 1
    return 1 if out else 0


sys.exit(main())
