#!/bin/sh
# make demo: pillionctl on the example policies, then the whole mesh on this machine (scripts/demo.py).
set -eu
bin=${1:-build/bin}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
say() { printf '\n== %s\n' "$*"; }

say "pillionctl validate -f examples/valid"
"$bin/pillionctl" validate -f examples/valid

say "pillionctl validate on three broken policies (exit 1 expected)"
set +e
"$bin/pillionctl" validate -q -f examples/invalid/tp-backend-weight-too-high.yaml \
	-f examples/invalid/tp-unknown-field-rotues.yaml -f examples/invalid/mi-renewbefore-not-less-than-ttl.yaml
rc=$?
set -e
[ "$rc" -eq 1 ] || { echo "demo: expected exit 1, got $rc" >&2; exit 1; }

exec /usr/bin/python3 "$top/scripts/demo.py" "$bin"
