#!/bin/sh
# Component test of pillionctl inject: kinds, placement flags, determinism, idempotence, errors and exit codes.
set -u
bin=${1:?usage: test_pillionctl_inject.sh BIN_DIR}
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
lacks() { # description, needle, file
	if grep -qF -- "$2" "$3"; then echo "FAIL $1: [$2] found"; fails=$((fails + 1)); else echo "ok   $1"; fi
}

mkdir -p "$tmp/repo/apps/shop" "$tmp/repo/.git"
cat >"$tmp/repo/apps/shop/web.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {pillion.dev/skip-inbound-ports: "22,99999"}
    spec:
      containers: [{name: web, image: "web:1", env: [{name: DEBUG, value: "yes"}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {on: "off", port: "017"}
YAML
cat >"$tmp/repo/apps/shop/jobs.yml" <<'YAML'
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate: {spec: {template: {spec: {restartPolicy: OnFailure, containers: [{name: job, image: job}]}}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {hostNetwork: true, containers: [{name: agent, image: agent}]}
YAML
printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop"},"spec":{"containers":[{"name":"app","image":"app"}]}}' \
	>"$tmp/repo/apps/pod.json"
echo "not: [yaml" >"$tmp/repo/.git/ignored.yaml"
echo "not: [yaml" >"$tmp/repo/apps/README.md"

"$ctl" inject >/dev/null 2>&1; check "inject without -f exits 2" 2 $?
"$ctl" inject -f "$tmp/repo" --native-sidecar maybe >/dev/null 2>&1; check "bad --native-sidecar exits 2" 2 $?
"$ctl" inject -f "$tmp/repo" --kubernetes-version 2 >/dev/null 2>&1; check "bad --kubernetes-version exits 2" 2 $?
"$ctl" inject -f "$tmp/missing.yaml" >/dev/null 2>"$tmp/err"; check "missing file exits 2" 2 $?
contains "missing file is named" "missing.yaml" "$tmp/err"
"$ctl" inject --help >"$tmp/out" 2>&1; check "--help exits 0" 0 $?
contains "--help names the flags" "--kubernetes-version" "$tmp/out"

"$ctl" inject -f "$tmp/repo" -o "$tmp/a.yaml" 2>"$tmp/err"; check "a repository injects (exit 0)" 0 $?
check "five documents out, hidden dirs and other files ignored" 5 "$(grep -c '^kind:' "$tmp/a.yaml")"
check "Deployment, CronJob and Pod injected (three proxies)" 3 "$(grep -c 'name: pillion-proxy' "$tmp/a.yaml")"
contains "the DaemonSet on the host network is left alone, with a note" \
	"jobs.yml:2: note: DaemonSet kube-system/agent: not injected: host-network" "$tmp/err"
contains "a bad annotation is a warning naming file and document" \
	"web.yaml:1: warning: Deployment shop/web: pillion.dev/skip-inbound-ports: \"99999\" is not a port" "$tmp/err"
contains "a Job in container mode is warned about" "CronJob shop/nightly: spec.restartPolicy: OnFailure" "$tmp/err"
lacks "no id in manifests: the webhook gives each pod its own" "pillion.dev/id" "$tmp/a.yaml"
contains "per-pod volumes wait for admission" "name: pillion-awaiting-webhook" "$tmp/a.yaml"
contains "AUTO without a version is a regular container" '"sidecar":"container"' "$tmp/a.yaml"
contains "strings that would change meaning stay quoted" 'value: "yes"' "$tmp/a.yaml"
contains "ConfigMap data is kept as strings" 'port: "017"' "$tmp/a.yaml"

# Deterministic, and running it on its own output changes nothing (stable GitOps diffs).
"$ctl" inject -f "$tmp/repo" >"$tmp/b.yaml" 2>/dev/null
cmp -s "$tmp/a.yaml" "$tmp/b.yaml"; check "byte-identical across runs" 0 $?
"$ctl" inject -f "$tmp/a.yaml" >"$tmp/c.yaml" 2>"$tmp/err"; check "re-injecting exits 0" 0 $?
cmp -s "$tmp/a.yaml" "$tmp/c.yaml"; check "re-injecting the output is a no-op" 0 $?
contains "re-injecting notes already-injected" "not injected: already-injected" "$tmp/err"

# stdin, and the native sidecar from 1.29 (not 1.28, where the feature gate is off by default).
"$ctl" inject -f - --kubernetes-version 1.29 <"$tmp/repo/apps/shop/web.yaml" >"$tmp/n.yaml" 2>/dev/null
check "stdin exits 0" 0 $?
contains "1.29: native sidecar" "restartPolicy: Always" "$tmp/n.yaml"
"$ctl" inject -f - --kubernetes-version v1.28.4 <"$tmp/repo/apps/shop/web.yaml" >"$tmp/n.yaml" 2>/dev/null
lacks "1.28: regular container" "restartPolicy: Always" "$tmp/n.yaml"
"$ctl" inject -f - --native-sidecar true --proxy-image reg/proxy:9 --init-image reg/init:9 \
	<"$tmp/repo/apps/shop/web.yaml" >"$tmp/n.yaml" 2>/dev/null
contains "--native-sidecar true" "restartPolicy: Always" "$tmp/n.yaml"
contains "--proxy-image used" "image: reg/proxy:9" "$tmp/n.yaml"
contains "--init-image used" "image: reg/init:9" "$tmp/n.yaml"

# Malformed input: exit 1, the file, document and field named; every document still written out.
cat >"$tmp/bad.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken, namespace: shop}
spec: {template: {spec: {containers: {name: x}}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: notemplate}
spec: {}
YAML
"$ctl" inject -f "$tmp/bad.yaml" >"$tmp/out" 2>"$tmp/err"; check "malformed template exits 1" 1 $?
contains "malformed field named" "bad.yaml:2: Deployment shop/broken: spec.template.spec.containers: must be an array" "$tmp/err"
contains "missing template named" "bad.yaml:3: StatefulSet default/notemplate: spec.template: is required" "$tmp/err"
check "every document still written" 3 "$(grep -c '^kind:' "$tmp/out")"
printf 'kind: Pod\nmetadata:\n  name: "x\n' >"$tmp/syntax.yaml"
"$ctl" inject -f "$tmp/syntax.yaml" >/dev/null 2>"$tmp/err"; check "YAML syntax error exits 1" 1 $?
contains "syntax error names file, document and line" "syntax.yaml:1: yaml: line" "$tmp/err"

[ "$fails" -eq 0 ] && echo "pillionctl inject: all checks passed" || echo "pillionctl inject: $fails checks failed"
[ "$fails" -eq 0 ]
