#!/bin/sh
# Runs each fuzz target fuzz_NAME for SECONDS on a scratch copy of its committed seed corpus fuzz/corpus/NAME; any crash, leak or timeout fails.
set -eu
bin=${1:?usage: fuzz.sh BIN_DIR SECONDS}
secs=${2:-30}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for kind in policy_yaml policy_json detect mesh webhook http1 request_path h2 h2h1; do
	mkdir -p "$work/$kind" "$work/artifacts-$kind"
	echo "fuzz: $kind for ${secs}s on $(ls "$top/fuzz/corpus/$kind" | wc -l) seeds"
	"$bin/fuzz_$kind" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$work/artifacts-$kind/" \
		"$work/$kind" "$top/fuzz/corpus/$kind" 2>"$work/log-$kind" || {
		tail -60 "$work/log-$kind"
		for a in "$work/artifacts-$kind"/*; do
			[ -f "$a" ] && { mkdir -p "$top/fuzz/out"; cp "$a" "$top/fuzz/out/"; echo "fuzz: crashing input kept in fuzz/out/$(basename "$a")"; }
		done
		exit 1
	}
	grep -E 'stat::number_of_executed_units|Done' "$work/log-$kind" | tr '\n' ' '
	echo
done
