#!/bin/sh
# The main job for now: validate the example policies, show what bad policy looks like, render two pods' proxy configs.
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

for pod in web-pod frontend-pod; do
	say "pillionctl render --pod examples/pods/$pod.yaml -f examples/valid"
	"$bin/pillionctl" render --pod "examples/pods/$pod.yaml" -f examples/valid 2>/dev/null
done

say "the local mesh: scripts/demo-mesh.sh"
"$top/scripts/demo-mesh.sh" "$bin"

say "demo done: the operator and webhook (which do this on a cluster) arrive in later releases; see README.md"
