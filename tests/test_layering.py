#!/usr/bin/env python3
"""test_layering.py — the rooms of runtime/ keep their order.

Reads the rule from the ```layering block of docs/architecture.md (the block CMake reads too:
cmake/cldpLayers.cmake) and checks every #include "..." of every .c and .h file under runtime/:
a file may include headers of its own room and of the rooms its line names; a file directly in
runtime/ may include any. A header named in two rooms, or a room on disk the block does not name,
fails too. Then it proves it can fail: it plants an upward include (model/ including train/'s
trainer.h) and a sibling include (serve/ including train/) in a copy of the tree and expects both
to be reported.

Usage: test_layering.py [SOURCE_DIR] [--graph]   (--graph prints every arrow between rooms)
Exit status 0 when the rule holds and the plants were caught, 1 otherwise."""
import os
import re
import shutil
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def read_rules(root):
    """{room: set of rooms it may include}, in the block's order."""
    path = os.path.join(root, "docs", "architecture.md")
    rules, inside = {}, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```layering"):
                inside = True
            elif inside and line.startswith("```"):
                break
            elif inside and re.match(r"^[a-z]+:", line):
                room, deps = line.split(":", 1)
                rules[room] = set(deps.split())
    if not rules:
        sys.exit(f"test_layering: {path} has no ```layering block")
    for room, deps in rules.items():
        unknown = deps - set(rules)
        if unknown:
            sys.exit(f"test_layering: room {room} may include {sorted(unknown)}, which the block does not define")
    return rules


def scan(runtime):
    """[(room or None for runtime/ itself, relative path, [(line, header)])] and {header: room}."""
    files, owner = [], {}
    for dirpath, _, names in os.walk(runtime):
        rel = os.path.relpath(dirpath, runtime)
        room = None if rel == "." else rel.split(os.sep)[0]
        for name in sorted(names):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, name)
            incs = []
            with open(path, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if m:
                        incs.append((n, os.path.basename(m.group(1))))
            files.append((room, os.path.relpath(path, runtime), incs))
            if name.endswith(".h"):
                if name in owner and owner[name] != room:
                    owner[name] = "?"  # reported below
                else:
                    owner.setdefault(name, room)
    return files, owner


def check(root, graph=False):
    """Problems found under root/runtime, as messages."""
    rules = read_rules(root)
    files, owner = scan(os.path.join(root, "runtime"))
    problems, arrows = [], {}
    for header, room in owner.items():
        if room == "?":
            problems.append(f"header {header} exists in two rooms: include paths would be ambiguous")
    for room, path, incs in files:
        if room is not None and room not in rules and room != "data":
            problems.append(f"runtime/{path}: room runtime/{room} is not in docs/architecture.md's layering block")
            continue
        for n, header in incs:
            other = owner.get(header)
            if other is None or other == "?" or other == room:
                continue  # a system or public header (cldp.h, clblast_c.h), or the file's own room
            arrows.setdefault((room or "runtime", other), []).append(f"{path}:{n}")
            if room is None:
                continue  # runtime/*.c sits above every room
            if other not in rules.get(room, set()):
                problems.append(f"runtime/{path}:{n}: includes {header} of room {other}, "
                                f"which room {room} may not include (it may include: "
                                f"{' '.join(sorted(rules[room])) or 'nothing'})")
    if graph:
        for (a, b), where in sorted(arrows.items()):
            print(f"  {a} -> {b}: {len(where)} include(s), e.g. {where[0]}")
    return problems


def plant(root, room, header, into):
    """A copy of the tree's runtime/ and docs/ with `#include "header"` added to room/into."""
    tmp = tempfile.mkdtemp(prefix="cldp-layering-")
    shutil.copytree(os.path.join(root, "runtime"), os.path.join(tmp, "runtime"),
                    ignore=shutil.ignore_patterns("*.gz", "*.txt"))
    shutil.copytree(os.path.join(root, "docs"), os.path.join(tmp, "docs"), ignore=shutil.ignore_patterns("*.png"))
    path = os.path.join(tmp, "runtime", room, into)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'#include "{header}"\n' + text)
    return tmp


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    problems = check(root, graph="--graph" in sys.argv)
    for p in problems:
        print("FAIL", p)
    print(f"layering: {len(problems)} include(s) against the rule of docs/architecture.md")
    ok = not problems
    for room, header, into, what in (("model", "trainer.h", "model.c", "an upward include"),
                                     ("serve", "trainer.h", "server.c", "a sibling include")):
        tmp = plant(root, room, header, into)
        try:
            found = [p for p in check(tmp) if f"runtime/{room}/{into}:1:" in p and header in p]
        finally:
            shutil.rmtree(tmp)
        print(f"{'ok' if found else 'FAIL'}: {what} planted in runtime/{room}/{into} is "
              f"{'reported' if found else 'NOT reported'}")
        ok = ok and bool(found)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
