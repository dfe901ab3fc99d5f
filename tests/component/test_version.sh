#!/bin/sh
# Every binary prints its release and commit with --version, the same for all five, exit 0.
# usage: test_version.sh BIN_DIR SOURCE_DIR
set -u
bin=${1:?usage: test_version.sh BIN_DIR SOURCE_DIR}
src=${2:?usage: test_version.sh BIN_DIR SOURCE_DIR}
fails=0
want=$(sed -n 's/^project(pillion VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ -n "$want" ] || { echo "FAIL: no VERSION in CMakeLists.txt"; exit 1; }
commits=""
for b in pillion-operator pillion-webhook pillion-proxy pillion-init pillionctl; do
	out=$("$bin/$b" --version 2>&1)
	rc=$?
	if [ "$rc" = 0 ] && echo "$out" | grep -Eqx "$b $want \(commit [0-9a-f]{12}(-dirty)?\)|$b $want \(commit unknown\)"; then
		echo "ok   $b --version: $out"
		commits="$commits $(echo "$out" | sed 's/.*(commit \(.*\))/\1/')"
	else
		echo "FAIL $b --version: exit $rc: $out"
		fails=$((fails + 1))
	fi
done
n=$(echo $commits | tr ' ' '\n' | sort -u | wc -l)
[ "$n" = 1 ] && echo "ok   one commit for all: $commits" || { echo "FAIL commits differ: $commits"; fails=$((fails + 1)); }
out=$("$bin/pillionctl" version)
[ "$out" = "$("$bin/pillionctl" --version)" ] && echo "ok   pillionctl version" || { echo "FAIL pillionctl version: $out"; fails=$((fails + 1)); }
# Inside a git checkout the commit is HEAD's.
if head=$(git -C "$src" rev-parse --short=12 HEAD 2>/dev/null); then
	case " $commits" in
	*" $head"*) echo "ok   the commit is HEAD ($head)" ;;
	*) echo "FAIL commit is not HEAD ($head): $commits"; fails=$((fails + 1)) ;;
	esac
fi
[ "$fails" = 0 ] && echo "all version checks passed" || { echo "$fails check(s) failed"; exit 1; }
