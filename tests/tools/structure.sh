#!/bin/sh
# The tree's shape, checked after a build (make check-structure, part of
# make test): no source file over 900 lines, no weak symbol, and no cycle
# between modules in the link-level call graph but the owner <-> owned pairs
# tests/tools/callgraph.py names with their reasons.
set -eu
build=${1:-build}
fail=0
big=$(find lib policy proxy -name '*.[ch]' | xargs wc -l | awk '$2 != "total" && $1 > 900 {print "  " $2 " (" $1 " lines)"}')
if [ -n "$big" ]; then
	echo "structure: files over 900 lines:"; echo "$big"; fail=1
fi
weak=$(grep -rlE '__attribute__ *\(\(weak|#pragma +weak' lib policy proxy || true)
if [ -n "$weak" ]; then
	echo "structure: weak symbols in: $weak"; fail=1
fi
if ! ${PYTHON:-/usr/bin/python3} tests/tools/callgraph.py "$build"; then
	echo "structure: a cycle between modules that is not owner <-> owned (tests/tools/callgraph.py)"; fail=1
fi
[ "$fail" = 0 ] && echo "structure: ok"
exit $fail
