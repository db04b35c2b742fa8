"""Structural check of etc/docker/compose.yaml (no compose engine here):
the services, their images and build contexts, the mounts postern needs,
and that every file the stack refers to exists.  Run by test_image.py and
by hand:  /usr/bin/python3 tests/docker/check_compose.py"""

import os
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIR = os.path.join(REPO, "etc", "docker")


def problems():
    with open(os.path.join(DIR, "compose.yaml")) as f:
        c = yaml.safe_load(f)
    out = []
    svc = c.get("services") or {}
    for name in ("init", "mx1", "mx2", "redis", "postern"):
        if name not in svc:
            out.append("no service %s" % name)
    for name, s in svc.items():
        b = s.get("build")
        if isinstance(b, str):
            b = {"context": b}
        if b:
            ctx = os.path.normpath(os.path.join(DIR, b["context"]))
            df = os.path.join(ctx, b.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(df):
                out.append("%s: no %s" % (name, df))
        for v in s.get("volumes") or []:
            src = v.split(":")[0]
            if src.startswith("."):
                if not os.path.exists(os.path.join(DIR, src)):
                    out.append("%s: no %s" % (name, src))
            elif src not in (c.get("volumes") or {}):
                out.append("%s: volume %s not declared" % (name, src))
        for n in s.get("networks") or []:
            if n not in (c.get("networks") or {}):
                out.append("%s: network %s not declared" % (name, n))
        for dep in s.get("depends_on") or {}:
            if dep not in svc:
                out.append("%s: depends on unknown %s" % (name, dep))
    p = svc.get("postern", {})
    vols = p.get("volumes") or []
    if "postern-etc:/etc/postern:ro" not in vols or not any(
            v.startswith("postern-state:/var/lib/postern") for v in vols):
        out.append("postern: config directory or state volume not mounted")
    if any(v.endswith(".conf") or ".conf:" in v for v in vols):
        out.append("postern: a single-file config mount (breaks reload)")
    if sorted(x.split(":")[-1] for x in p.get("ports") or []) != \
            ["110", "143", "4190", "993", "995"]:
        out.append("postern: ports %s" % p.get("ports"))
    if p.get("depends_on", {}).get("init", {}).get("condition") != \
            "service_completed_successfully":
        out.append("postern: does not wait for init")
    if "NET_BIND_SERVICE" not in (p.get("cap_add") or []):
        out.append("postern: cap_add NET_BIND_SERVICE missing (file capability)")
    if p.get("stop_grace_period") != "15s":
        out.append("postern: stop_grace_period %r" % p.get("stop_grace_period"))
    if svc.get("redis", {}).get("profiles") != ["redis"]:
        out.append("redis: not behind the redis profile")
    return out


if __name__ == "__main__":
    p = problems()
    for x in p:
        print("compose.yaml: " + x)
    print("compose.yaml: structure ok" if not p else "")
    sys.exit(1 if p else 0)
