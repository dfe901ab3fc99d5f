#!/bin/sh
# Component test of pillionctl: exit codes, error line format, stdin, directories, skipped kinds, render determinism.
set -u
bin=${1:?usage: test_pillionctl.sh BIN_DIR SOURCE_DIR}
src=${2:?}
ctl="$bin/pillionctl"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

check() { # description, expected, actual
	if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: want [$2], got [$3]"; fails=$((fails + 1)); fi
}
contains() { # description, needle, file
	if grep -qF -- "$2" "$3"; then echo "ok   $1"; else echo "FAIL $1: [$2] not in:"; sed 's/^/     /' "$3"; fails=$((fails + 1)); fi
}

"$ctl" >/dev/null 2>&1; check "no command exits 2" 2 $?
"$ctl" frobnicate >/dev/null 2>&1; check "unknown command exits 2" 2 $?
"$ctl" validate >/dev/null 2>&1; check "validate without -f exits 2" 2 $?
"$ctl" validate -f "$tmp/missing.yaml" >/dev/null 2>"$tmp/err"; check "missing file exits 2" 2 $?
contains "missing file is named" "missing.yaml" "$tmp/err"
"$ctl" validate -f "$src/examples/valid" >/dev/null 2>&1; check "valid directory exits 0" 0 $?
"$ctl" validate -f "$src/examples/valid" -f "$tmp/missing.yaml" >/dev/null 2>&1
check "an I/O error wins over valid input (2)" 2 $?

# Error line format PATH:DOC: Kind namespace/name: field.path: message, every error of a document reported.
cat > "$tmp/multi.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  targetRef: {name: web}
  routes:
  - backends:
    - {name: web, weight: 1500}
    timeout: 5 sec
YAML
"$ctl" validate -f "$tmp/multi.yaml" >"$tmp/out" 2>"$tmp/err"; check "invalid exits 1" 1 $?
contains "weight error line" "$tmp/multi.yaml:2: TrafficPolicy shop/web: spec.routes[0].backends[0].weight: must be between 0 and 1000, got 1500" "$tmp/out"
contains "timeout error line" "$tmp/multi.yaml:2: TrafficPolicy shop/web: spec.routes[0].timeout: must be a duration such as 250ms or 1m30s, got \"5 sec\"" "$tmp/out"
check "exactly two errors" 2 "$(wc -l <"$tmp/out" | tr -d ' ')"
contains "other kinds are skipped with a note" "$tmp/multi.yaml:1: note: skipping v1 ConfigMap default/unrelated" "$tmp/err"

# stdin, as YAML and as JSON.
"$ctl" validate -f - <"$tmp/multi.yaml" >"$tmp/out" 2>/dev/null; check "stdin YAML invalid exits 1" 1 $?
contains "stdin is named -" "-:2: TrafficPolicy shop/web" "$tmp/out"
printf '{"apiVersion":"pillion.dev/v1alpha1","kind":"MeshIdentity","metadata":{"name":"m"},"spec":{"mtls":{"mode":"STRICT"}}}' |
	"$ctl" validate -f - >/dev/null 2>&1; check "stdin JSON valid exits 0" 0 $?

# A directory is searched recursively for *.yaml, *.yml and *.json only.
mkdir -p "$tmp/repo/apps/shop" "$tmp/repo/.git"
cp "$tmp/multi.yaml" "$tmp/repo/apps/shop/policy.yml"
echo "not: [yaml" >"$tmp/repo/apps/README.md"
echo "not: [yaml" >"$tmp/repo/.git/config.yaml"
"$ctl" validate -f "$tmp/repo" >"$tmp/out" 2>/dev/null; check "nested .yml found, hidden dirs and other files ignored (exit 1)" 1 $?
contains "nested file reported" "$tmp/repo/apps/shop/policy.yml:2:" "$tmp/out"

# A symlink back up the tree is not followed (it would loop), and nothing is read twice.
ln -s .. "$tmp/repo/apps/shop/up"
"$ctl" validate -f "$tmp/repo" >"$tmp/out" 2>"$tmp/err"; check "symlink loop: exit 1 as before" 1 $?
check "symlink loop: each error once" 2 "$(wc -l <"$tmp/out" | tr -d ' ')"
contains "symlinked directory noted" "not following a symlinked directory" "$tmp/err"
rm "$tmp/repo/apps/shop/up"

# The same object twice is an error (kubectl apply would keep only the last); render uses the last.
"$ctl" validate -f "$src/examples/valid/minimal.yaml" -f "$src/examples/valid/minimal.yaml" >"$tmp/out" 2>/dev/null
check "duplicate objects exit 1" 1 $?
contains "duplicate object named" "TrafficPolicy default/minimal: metadata.name: duplicate object, also at $src/examples/valid/minimal.yaml:1" "$tmp/out"
printf 'apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w, namespace: shop}\nspec: {targetRef: {name: web}, routes: [{timeout: 1s}]}\n' >"$tmp/d1.yaml"
printf 'apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w, namespace: shop}\nspec: {targetRef: {name: web}, routes: [{timeout: 9s}]}\n' >"$tmp/d2.yaml"
"$ctl" render --pod "$src/examples/pods/web-pod.yaml" -f "$tmp/d1.yaml" -f "$tmp/d2.yaml" >"$tmp/out" 2>"$tmp/err"
contains "render: the later duplicate is used" '"timeoutMs": 9000' "$tmp/out"
contains "render: the earlier duplicate is noted" "is defined again later" "$tmp/err"
# A duplicate never hides the object's own errors.
printf 'apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w, namespace: shop}\nspec: {targetRef: {name: web}, rotues: []}\n' >"$tmp/d3.yaml"
"$ctl" validate -q -f "$tmp/d1.yaml" -f "$tmp/d3.yaml" >"$tmp/out" 2>/dev/null
check "a duplicate with its own error exits 1" 1 $?
contains "... the duplicate is named" "$tmp/d3.yaml:1: TrafficPolicy shop/w: metadata.name: duplicate object, also at $tmp/d1.yaml:1" "$tmp/out"
contains "... and its own error too" "$tmp/d3.yaml:1: TrafficPolicy shop/w: spec.rotues: unknown field" "$tmp/out"
# make demo's broken examples give their own errors, not a collision with each other.
"$ctl" validate -q -f "$src/examples/invalid" >"$tmp/out" 2>/dev/null
check "examples/invalid as one directory exits 1" 1 $?
if grep -q "duplicate object" "$tmp/out"; then
	check "examples/invalid: no two examples collide" "" "$(grep 'duplicate object' "$tmp/out" | head -3)"
else
	check "examples/invalid: no two examples collide" "" ""
fi
contains "examples/invalid: rotues gives its own error" "tp-unknown-field-rotues.yaml:1: TrafficPolicy shop/tp-unknown-field-rotues: spec.rotues: unknown field" "$tmp/out"

# A typo in a Pillion kind is an error, not a skipped object.
printf 'apiVersion: pillion.dev/v1alpha1\nkind: TraficPolicy\nmetadata: {name: w}\n' >"$tmp/typo.yaml"
"$ctl" validate -f "$tmp/typo.yaml" >"$tmp/out" 2>/dev/null; check "kind typo in pillion.dev exits 1" 1 $?
contains "kind typo named" 'kind: must be TrafficPolicy or MeshIdentity in group pillion.dev, got "TraficPolicy"' "$tmp/out"

# Bytes that are not UTF-8 are reported by byte offset.
printf 'a: 1\nb: "\377\376"\n' >"$tmp/enc.yaml"
"$ctl" validate -f "$tmp/enc.yaml" >"$tmp/out" 2>/dev/null; check "bad encoding exits 1" 1 $?
contains "bad encoding names the byte offset" "yaml: byte offset 9:" "$tmp/out"

# YAML syntax errors name the line and count as invalid.
printf 'apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: "web\n' >"$tmp/broken.yaml"
"$ctl" validate -f "$tmp/broken.yaml" >"$tmp/out" 2>/dev/null; check "syntax error exits 1" 1 $?
contains "syntax error has a line" "$tmp/broken.yaml:1: yaml: line" "$tmp/out"

# render: byte-identical across runs and whatever the order of the inputs.
ex="$src/examples/valid"
"$ctl" render --pod "$src/examples/pods/web-pod.yaml" -f "$ex" >"$tmp/r1" 2>/dev/null; check "render exits 0" 0 $?
"$ctl" render --pod "$src/examples/pods/web-pod.yaml" -f "$ex" >"$tmp/r2" 2>/dev/null
cmp -s "$tmp/r1" "$tmp/r2"; check "render is byte-identical across runs" 0 $?
set --
for f in $(ls "$ex" | sort -r); do set -- "$@" -f "$ex/$f"; done
"$ctl" render --pod "$src/examples/pods/web-pod.yaml" "$@" >"$tmp/r3" 2>/dev/null
cmp -s "$tmp/r1" "$tmp/r3"; check "render does not depend on input order" 0 $?
contains "render has a content hash" '"hash": "sha256:' "$tmp/r1"
contains "render names the pod's SPIFFE ID" '"spiffeId": "spiffe://' "$tmp/r1"
"$ctl" render --pod "$src/examples/pods/frontend-pod.yaml" -f "$ex" >"$tmp/r4" 2>/dev/null
cmp -s "$tmp/r1" "$tmp/r4"; check "different pods get different configs" 1 $?
"$ctl" render -f "$ex" >/dev/null 2>&1; check "render without --pod exits 2" 2 $?
"$ctl" render --pod "$tmp/multi.yaml" -f "$ex" >/dev/null 2>&1; check "render with no Pod in --pod exits 1" 1 $?

# The README's examples are valid as written.
awk '/^```yaml$/{on=1; print "---"; next} /^```$/{on=0} on' "$src/README.md" >"$tmp/readme.yaml"
check "README has YAML examples" 1 "$([ "$(grep -c '^kind:' "$tmp/readme.yaml")" -ge 2 ] && echo 1 || echo 0)"
"$ctl" validate -f "$tmp/readme.yaml" >"$tmp/out" 2>&1; check "README examples validate" 0 $?
[ -s "$tmp/out" ] && grep -v 'valid,' "$tmp/out"

# A Pod whose id annotation cannot be part of an object name is refused, and the reason named.
printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n  annotations: {pillion.dev/id: Not_An-ID}\n' >"$tmp/badpod.yaml"
"$ctl" render --pod "$tmp/badpod.yaml" -f "$ex" >/dev/null 2>"$tmp/err"; check "render refuses a bad pod id (1)" 1 $?
contains "bad pod id is named" "metadata.annotations[pillion.dev/id]: must match" "$tmp/err"

# render --mesh: a namespace's mesh directory, from pods with IPs and the Services selecting them.
cat >"$tmp/running.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: "w0"}}
spec: {serviceAccountName: web, containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 198.18.2.2}
YAML
"$ctl" render --mesh shop -f "$tmp/running.yaml" -f "$ex" >"$tmp/mesh.json" 2>/dev/null; check "render --mesh exits 0" 0 $?
contains "render --mesh lists the web Service by its cluster IP" '"198.18.10.20"' "$tmp/mesh.json"
contains "render --mesh lists the pod" '"web-0"' "$tmp/mesh.json"
"$ctl" render --mesh shop --pod "$tmp/running.yaml" -f "$ex" >/dev/null 2>&1; check "render with both --pod and --mesh is a usage error" 2 $?

# Errors a user meets get a hint.
"$ctl" validate -q -f "$src/examples/invalid/tp-unknown-field-rotues.yaml" >"$tmp/out" 2>&1
contains "a typo'd field: did you mean" 'spec.rotues: unknown field, did you mean "routes"?' "$tmp/out"
"$ctl" validate -q -f "$src/examples/invalid/mi-unknown-field-renewbefore-case.yaml" >"$tmp/out" 2>&1
contains "a field in the wrong case: did you mean" 'did you mean "renewBefore"?' "$tmp/out"
printf 'apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w, namespace: shop}\nspec: {targetRef: {name: web}, colour: blue}\n' >"$tmp/far.yaml"
"$ctl" validate -q -f "$tmp/far.yaml" >"$tmp/out" 2>&1
if grep -q "did you mean" "$tmp/out"; then check "no suggestion for a name close to none" "" "$(cat "$tmp/out")"; else check "no suggestion for a name close to none" "" ""; fi
printf 'apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata:\n\tname: web\n' >"$tmp/tab.yaml"
"$ctl" validate -q -f "$tmp/tab.yaml" >"$tmp/out" 2>&1; check "a tab: exit 1" 1 $?
contains "a YAML tab error says tab" "yaml: line 4 column 1: found character that cannot start any token while scanning for the next token (a tab character: YAML indents with spaces only)" "$tmp/out"
cat >"$tmp/tgt.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: other}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec: {targetRef: {name: web}}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: other}
spec: {targetRef: {name: web}}
YAML
"$ctl" validate -f "$tmp/tgt.yaml" >"$tmp/out" 2>"$tmp/err"; check "a target found only in another namespace: exit 0 (a warning)" 0 $?
contains "... the target is named as not found, with where it is" "$tmp/tgt.yaml:2: warning: TrafficPolicy shop/web: spec.targetRef.name: Service \"web\" not found in namespace shop (the inputs hold one in namespace other" "$tmp/out"
check "... and only that policy" 1 "$(grep -c warning "$tmp/out")"
contains "... counted in the summary" "2 valid, 0 invalid, 1 skipped, 1 warning(s)" "$tmp/err"
cat >"$tmp/deploy.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]
YAML
"$ctl" render --pod "$tmp/deploy.yaml" -f "$src/examples/valid" >"$tmp/out" 2>"$tmp/err"; check "render --pod on a Deployment renders its template (exit 0)" 0 $?
contains "... saying so" "note: rendering the pod template of Deployment shop/web" "$tmp/err"
contains "... with the template's service account" '"spiffe://cluster.local/ns/shop/sa/web"' "$tmp/out"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: shop}\n' >"$tmp/cm.yaml"
"$ctl" render --pod "$tmp/cm.yaml" -f "$src/examples/valid" >/dev/null 2>"$tmp/err"; check "render --pod on a ConfigMap exits 1" 1 $?
contains "... naming what it got" "v1 ConfigMap shop/x is not a Pod, nor a workload with a pod template" "$tmp/err"
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop, annotations: {pillion.dev/id: 0123456789abcdef0123456789abcdef}}\nspec: {containers: [{name: a, image: a}]}\n' >"$tmp/noip.yaml"
"$ctl" render --mesh shop -f "$tmp/noip.yaml" >/dev/null 2>"$tmp/err"
contains "render --mesh says why a pod without status.podIPs is missing" "note: pod shop/p has no status.podIPs" "$tmp/err"
"$ctl" --help >"$tmp/out"
contains "--help lists render --mesh" "render --mesh NS" "$tmp/out"

[ "$fails" -eq 0 ] && echo "pillionctl: all checks passed" || echo "pillionctl: $fails checks failed"
[ "$fails" -eq 0 ]
