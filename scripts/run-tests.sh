#!/bin/sh
# Runs every ctest test of BUILD_DIR under the sanitizers' options, with TMPDIR an empty folder of its
# own; whatever a test leaves there (or a test's crash leaves) fails the run: tests leave nothing behind.
# usage: run-tests.sh BUILD_DIR [JOBS]
set -eu
build=${1:?usage: run-tests.sh BUILD_DIR [JOBS]}
jobs=${2:-2}
tmp=$(cd "$build" && pwd)/test-tmp
rm -rf "$tmp"
mkdir -p "$tmp"
chmod 1777 "$tmp" # tests run some processes as other users (the proxy's UID 1407)
rc=0
TMPDIR=$tmp ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 300 || rc=$?
left=$(find "$tmp" -mindepth 1 -maxdepth 1 | head -20)
if [ -n "$left" ]; then
	echo "run-tests: FAIL: the tests left these behind in TMPDIR:" >&2
	echo "$left" >&2
	rm -rf "$tmp"
	exit 1
fi
rmdir "$tmp"
exit "$rc"
