#!/usr/bin/env python3
"""Redis memory for a fleet's state: 100k users with sticky locks and 10k
live sessions (the records postern writes, in its own formats and key
layout), measured with INFO memory and MEMORY USAGE on a redis-server of its
own (a unix socket in a temporary directory, stopped by its PID).

    python3 tests/bench/fleet_memory.py [USERS [SESSIONS]]
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

USERS = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
SESSIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
PREFIX = "postern:"
PROXIES = ["%016x" % (0x9e3779b97f4a7c15 * (i + 1) & (2**64 - 1)) for i in range(4)]


def cli(sock, *args, stdin=None):
    return subprocess.run(["redis-cli", "-s", sock, *args], input=stdin, capture_output=True,
                          text=True, timeout=120).stdout


def used(sock):
    for line in cli(sock, "INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise SystemExit("no used_memory in INFO")


def main():
    d = tempfile.mkdtemp(prefix="postern-bench-redis-")
    sock = os.path.join(d, "redis.sock")
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock,
                             "--save", "", "--appendonly", "no", "--dir", d,
                             "--logfile", os.path.join(d, "log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if cli(sock, "PING").strip() == "PONG":
                break
            time.sleep(0.05)
        base = used(sock)
        now = int(time.time() * 1000)
        # locks: what the claim script writes (HSET v proto origin created used; PEXPIRE)
        lines = []
        for i in range(USERS):
            k = "%s{user%06d@example.org}:lock" % (PREFIX, i)
            lines.append("HSET %s v 1 proto %s origin login created %d used %d"
                         % (k, "imap" if i % 3 else "pop3", now, now))
            lines.append("PEXPIRE %s 7776000000" % k)
        cli(sock, "--pipe", stdin="\n".join(lines) + "\n")
        locks = used(sock)
        sample = int(cli(sock, "MEMORY", "USAGE", "%s{user000001@example.org}:lock" % PREFIX))
        # sessions: what sreg writes (one hash per user; field SID, value
        # "PROXY PROTO BACKEND SINCE"; PEXPIRE 24 h) + proxy keys (a hash, one
        # field per worker, PEXPIRE 3 heartbeats)
        lines = []
        for i in range(SESSIONS):
            k = "%s{user%06d@example.org}:sess" % (PREFIX, i)
            lines.append("HSET %s %016x \"%s imap mx1 %d\"" % (k, (i * 2654435761) & (2**64 - 1),
                                                             PROXIES[i % 4], now))
            lines.append("PEXPIRE %s 86400000" % k)
        for p in PROXIES:
            lines.append("HSET %sproxy:%s 0 1 1 1" % (PREFIX, p))
            lines.append("PEXPIRE %sproxy:%s 30000" % (PREFIX, p))
        cli(sock, "--pipe", stdin="\n".join(lines) + "\n")
        sess = used(sock)
        ssample = int(cli(sock, "MEMORY", "USAGE", "%s{user000001@example.org}:sess" % PREFIX))
        print("users with locks:      %d: %.1f MB, %.0f bytes/user (MEMORY USAGE of one: %d)"
              % (USERS, (locks - base) / 1e6, (locks - base) / USERS, sample))
        print("live sessions:         %d: %.1f MB, %.0f bytes/session (MEMORY USAGE of one "
              "user's key: %d)" % (SESSIONS, (sess - locks) / 1e6, (sess - locks) / SESSIONS,
                                   ssample))
        print("total used_memory:     %.1f MB (empty server: %.1f MB)" % (sess / 1e6, base / 1e6))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
