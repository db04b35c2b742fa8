#!/usr/bin/env python3
"""The link-level graph of postern's modules, read from the objects with nm.

A module is a noun: the .c file NAME and the files that extend it,
NAME_part (config_listen is the config, store_redis_worker the Redis store,
backend_imap the backend, admin_answer the admin), in one layer.  An edge
a -> b means an object of a uses a symbol an object of b defines; --files
looks at single files instead.  Prints the cycles: each strongly connected
group of modules and every pair in it that calls both ways, and exits 1 when
a pair outside ALLOWED is found.  Run after `make`:

    /usr/bin/python3 tests/tools/callgraph.py [--edges] [BUILD_DIR]
"""
import os
import subprocess
import sys

# Pairs that call each other by design, owner <-> owned: the owner creates
# and drives the owned part, which reports back to it.  Say why for each.
ALLOWED = {
    ("proxy/conn", "proxy/worker"):
        "the worker owns its connections (accepts, reaps, sweeps them); a "
        "connection tells its worker when it starts or ends a polite close",
    ("proxy/listener", "proxy/worker"):
        "the worker owns its listener_set (starts, pauses, closes it); a "
        "listener hands each accepted socket to its worker",
    ("proxy/conn", "proxy/imap_session"):
        "the connection owns its pre-auth dialog: it calls the protocol's "
        "ops, the dialog writes and closes through the connection",
    ("proxy/conn", "proxy/pop3_session"):
        "the connection owns its pre-auth dialog (as imap_session)",
    ("proxy/conn", "proxy/sieve_session"):
        "the connection owns its pre-auth dialog (as imap_session)",
    ("proxy/conn", "proxy/login"):
        "the login room is the connection's CS_BACKEND/CS_POLICY states: "
        "conn enters and cancels it, login moves conn on or closes it",
}


def nm(path, *flags):
    out = subprocess.run(["nm", *flags, path], check=True, capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-2] in ("T", "D", "B", "R", "U", "C", "W", "V"):
            syms.add((parts[-2], parts[-1]))
    return syms


def module_of(layer, name, names, by_file):
    """The longest NAME prefix (at a "_") that is a file of the layer."""
    if by_file:
        return f"{layer}/{name}"
    parts = name.split("_")
    for i in range(1, len(parts) + 1):
        if "_".join(parts[:i]) in names:
            return f"{layer}/{'_'.join(parts[:i])}"
    return f"{layer}/{name}"


def graph(build, by_file=False):
    defs, uses = {}, {}
    for layer in ("lib", "policy", "proxy"):
        d = os.path.join(build, layer)
        if not os.path.isdir(d):
            continue
        names = {f[:-2] for f in os.listdir(d) if f.endswith(".o")}
        for f in sorted(os.listdir(d)):
            if not f.endswith(".o"):
                continue
            mod = module_of(layer, f[:-2], names, by_file)
            syms = nm(os.path.join(d, f))
            for kind, name in syms:
                if kind == "U":
                    uses.setdefault(mod, set()).add(name)
                else:
                    defs[name] = mod
    edges = {}
    for mod, names in uses.items():
        for n in names:
            if n in defs and defs[n] != mod:
                edges.setdefault(mod, set()).add(defs[n])
    return edges


def sccs(edges):
    nodes = set(edges) | {b for bs in edges.values() for b in bs}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    build = args[0] if args else "build"
    edges = graph(build, by_file="--files" in sys.argv)
    if "--edges" in sys.argv:
        for a in sorted(edges):
            print(f"{a} -> {' '.join(sorted(edges[a]))}")
    bad = 0
    for group in sccs(edges):
        print("cycle: " + " ".join(group))
        for a in group:
            for b in sorted(edges.get(a, ())):
                if b in group and a < b and a in edges.get(b, ()):
                    why = ALLOWED.get((a, b)) or ALLOWED.get((b, a))
                    print(f"  {a} <-> {b}: {why or 'NOT ALLOWED'}")
                    bad += why is None
        longer = [(a, b) for a in group for b in edges.get(a, ()) if b in group
                  and a not in edges.get(b, ())]
        if longer:
            print("  (one-way edges in the cycle: " +
                  ", ".join(f"{a}->{b}" for a, b in sorted(longer)) + ")")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
