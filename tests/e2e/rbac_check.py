#!/usr/bin/python3
"""Checks that the RBAC in a set of manifests grants every request a client made.

usage: rbac_check.py MANIFEST_DIR_OR_FILE SERVICEACCOUNT_NS/NAME REQUESTS_JSON [AGENT_PREFIX]
       rbac_check.py --self-test

MANIFEST_DIR_OR_FILE: a YAML file, or a directory: through its kustomization's resources when
it has one (kustomization.yaml, kustomization.yml or Kustomization), else its *.yaml, *.yml and
*.json files. Every ClusterRole, Role, ClusterRoleBinding and RoleBinding in it is read.

REQUESTS_JSON: the test API server's GET /_fake/requests answer; its byAgent entries
("METHOD /path[?query]": count) of every User-Agent starting with AGENT_PREFIX (default
"pillion-operator") are checked.

Each request becomes the authorization attributes kube-apiserver's request-info resolver
(k8s.io/apiserver/pkg/endpoints/request/requestinfo.go) gives it: verb (get, list, watch,
create, update, patch, delete, deletecollection; watch from ?watch= or a /watch/ prefix),
API group, resource, subresource, namespace and name (a list or watch's fieldSelector
metadata.name=... names it). A server-side apply (a PATCH carrying force=, which only applies
accept) to an object, not a subresource, creates the object when it is absent and is then
also authorized as create (k8s.io/apiserver handlers/patch.go), so it is checked for both.
Each is then checked as the RBAC authorizer does: the rules of the roles bound to the service
account (ServiceAccount, User system:serviceaccount:NS:NAME, or one of its groups), a Role's
or RoleBinding's only in its namespace; apiGroups, resources (with "res/sub" and "*/sub"),
verbs and resourceNames; non-resource URLs only through ClusterRoleBindings.

Prints each request as allowed (with the rule that allowed it) or DENIED, then, as information,
each grant no request used ("unused"). Exits 0 when everything was allowed, 1 when a request
was denied, 2 on a usage or input error.
"""
import json
import os
import sys
import tempfile
import urllib.parse

import yaml

KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
RBAC_KINDS = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")


class InputError(Exception):
    pass


# ---------------------------------------------------------------- manifests

def _docs(path):
    try:
        with open(path) as f:
            docs = list(yaml.safe_load_all(f))
    except (OSError, yaml.YAMLError) as e:
        raise InputError("%s: %s" % (path, e))
    out = []
    for d in docs:
        if isinstance(d, dict) and d.get("kind") == "List":
            out += [i for i in d.get("items") or [] if isinstance(i, dict)]
        elif isinstance(d, dict):
            out.append(d)
    return out


def _kustomization(directory):
    for n in KUSTOMIZATIONS:
        p = os.path.join(directory, n)
        if os.path.isfile(p):
            return p
    return None


def load_objects(path, seen=None):
    """Every object in a file or directory (see the module doc), as (source, object)."""
    seen = set() if seen is None else seen
    real = os.path.realpath(path)
    if real in seen:
        raise InputError("%s: included twice (a kustomization cycle?)" % path)
    seen.add(real)
    if os.path.isfile(path):
        return [(path, d) for d in _docs(path)]
    if not os.path.isdir(path):
        raise InputError("%s: no such file or directory" % path)
    k = _kustomization(path)
    out = []
    if k:
        kd = (_docs(k) or [{}])[0]
        for r in kd.get("resources") or []:
            out += load_objects(os.path.join(path, r), seen)
        return out
    for n in sorted(os.listdir(path)):
        p = os.path.join(path, n)
        if os.path.isfile(p) and n.endswith((".yaml", ".yml", ".json")):
            out += load_objects(p, seen)
    return out


class Rule:
    def __init__(self, owner, index, r):
        self.owner, self.index = owner, index   # "ClusterRole/x", 0-based
        self.groups = list(r.get("apiGroups") or [])
        self.resources = list(r.get("resources") or [])
        self.verbs = list(r.get("verbs") or [])
        self.names = list(r.get("resourceNames") or [])
        self.urls = list(r.get("nonResourceURLs") or [])

    def describe(self):
        if self.urls:
            return "nonResourceURLs %s verbs %s" % (",".join(self.urls), ",".join(self.verbs))
        s = "%s %s %s" % (",".join(self.verbs), ",".join(g or '""' for g in self.groups), ",".join(self.resources))
        if self.names:
            s += " names " + ",".join(self.names)
        return s


class Grant:
    """A role's rules as one binding grants them: namespace None means cluster-wide."""

    def __init__(self, binding, role, rules, namespace):
        self.binding, self.role, self.rules, self.namespace = binding, role, rules, namespace


def _label_selector_matches(sel, labels):
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def subject_matches(subject, binding_ns, sa_ns, sa_name):
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        # As the authorizer: a RoleBinding's subject without namespace means the binding's.
        ns = subject.get("namespace") or binding_ns or ""
        return name == sa_name and ns == sa_ns
    if kind == "User":
        return name == "system:serviceaccount:%s:%s" % (sa_ns, sa_name)
    if kind == "Group":
        return name in ("system:serviceaccounts", "system:serviceaccounts:" + sa_ns, "system:authenticated")
    return False


def grants_for(objects, sa_ns, sa_name):
    """The Grants bound to the service account, and warnings (bindings to roles not in the manifests)."""
    roles, bindings, warnings = {}, [], []
    for src, o in objects:
        kind = o.get("kind")
        if kind not in RBAC_KINDS or not str(o.get("apiVersion", "")).startswith("rbac.authorization.k8s.io/"):
            continue
        md = o.get("metadata") or {}
        name, ns = md.get("name"), md.get("namespace")
        if not name:
            raise InputError("%s: a %s without metadata.name" % (src, kind))
        if kind in ("Role", "RoleBinding") and not ns:
            raise InputError("%s: %s %s has no metadata.namespace" % (src, kind, name))
        key = (kind, ns if kind in ("Role", "RoleBinding") else None, name)
        if kind in ("ClusterRole", "Role"):
            if key in roles and roles[key] != o:
                raise InputError("%s: %s %s is defined twice, differently" % (src, kind, name))
            roles[key] = o
        else:
            bindings.append((key, o))
    cluster_roles = {k[2]: o for k, o in roles.items() if k[0] == "ClusterRole"}

    def rules_of(kind, ns, name):
        o = roles.get((kind, ns if kind == "Role" else None, name))
        if o is None:
            return None
        owner = "%s/%s" % (kind, name) if kind == "ClusterRole" else "Role/%s/%s" % (ns, name)
        rules = [Rule(owner, i, r) for i, r in enumerate(o.get("rules") or [])]
        agg = o.get("aggregationRule")
        if kind == "ClusterRole" and agg:
            # The controller fills an aggregated role's rules from the roles its selectors pick.
            for other, oo in sorted(cluster_roles.items()):
                if other != name and any(_label_selector_matches(s, (oo.get("metadata") or {}).get("labels") or {})
                                         for s in agg.get("clusterRoleSelectors") or []):
                    rules += [Rule("ClusterRole/%s" % other, i, r) for i, r in enumerate(oo.get("rules") or [])]
        return rules

    grants, done = [], set()
    for (kind, ns, name), b in bindings:
        if (kind, ns, name) in done:
            continue
        done.add((kind, ns, name))
        if not any(subject_matches(s, ns, sa_ns, sa_name) for s in b.get("subjects") or []):
            continue
        ref = b.get("roleRef") or {}
        rkind, rname = ref.get("kind"), ref.get("name")
        bname = "%s/%s" % (kind, name) if kind == "ClusterRoleBinding" else "RoleBinding/%s/%s" % (ns, name)
        if kind == "ClusterRoleBinding" and rkind != "ClusterRole":
            raise InputError("%s: a ClusterRoleBinding can only refer to a ClusterRole" % bname)
        rules = rules_of(rkind, ns, rname)
        if rules is None:
            warnings.append("%s refers to %s %s, which the manifests do not define: its rules are not counted"
                            % (bname, rkind, rname))
            continue
        grants.append(Grant(bname, "%s/%s" % (rkind, rname), rules, ns if kind == "RoleBinding" else None))
    return grants, warnings


# ---------------------------------------------------------------- requests

class Attrs:
    def __init__(self, verb, path, resource_request=True, group="", version="", resource="", sub="", ns="", name="",
                 note=""):
        self.verb, self.path, self.resource_request = verb, path, resource_request
        self.group, self.version, self.resource, self.sub = group, version, resource, sub
        self.ns, self.name, self.note = ns, name, note

    def describe(self):
        if not self.resource_request:
            return "%s %s (non-resource)" % (self.verb, self.path)
        what = (self.group + "/" if self.group else "") + self.resource + ("/" + self.sub if self.sub else "")
        s = "%s %s" % (self.verb, what)
        if self.name:
            s += " %r" % self.name
        s += " in %s" % self.ns if self.ns else " (cluster-wide)"
        return s + (" [%s]" % self.note if self.note else "")


def _query_bool(values):
    # k8s.io/apimachinery runtime.Convert_Slice_string_To_bool: anything but "0"/"false" is true.
    return bool(values) and not (values[0] == "0" or values[0].lower() == "false")


def _field_selector_name(values):
    if not values:
        return ""
    terms = [t.strip() for t in values[0].split(",") if t.strip()]
    for t in terms:
        for op in ("==", "="):
            if op in t and "!=" not in t:
                k, v = t.split(op, 1)
                if k.strip() == "metadata.name" and v.strip() and not set(v) & set("/%") and v.strip() not in (".", ".."):
                    return v.strip()
                break
    return ""


def resolve(method, target):
    """The authorization attributes kube-apiserver derives from one request (RequestInfoFactory)."""
    u = urllib.parse.urlsplit(target)
    path = urllib.parse.unquote(u.path)
    query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    nonres = Attrs(method.lower(), path, resource_request=False)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return nonres
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return nonres
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    special = False
    if parts[0] in ("proxy", "watch"):
        if len(parts) < 2:
            raise InputError("%s %s: cannot determine kind and namespace from the URL" % (method, target))
        verb, parts, special = parts[0], parts[1:], True
    else:
        verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(method, "")
    ns = ""
    if parts[0] == "namespaces":
        if len(parts) > 1:
            ns = parts[1]
            if len(parts) > 2 and parts[2] not in ("status", "finalize"):
                parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    sub = parts[2] if len(parts) >= 3 and not special else ""
    if not name and verb == "get":
        verb = "watch" if _query_bool(query.get("watch")) else "list"
        name = _field_selector_name(query.get("fieldSelector"))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attrs(verb, path, group=group, version=version, resource=resource, sub=sub, ns=ns, name=name)


def checks_for(method, target):
    """The attribute sets one request is authorized against: one, or two for a creating apply."""
    a = resolve(method, target)
    out = [a]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query, keep_blank_values=True)
    if a.resource_request and a.verb == "patch" and not a.sub and a.name and "force" in query:
        out.append(Attrs("create", a.path, group=a.group, version=a.version, resource=a.resource, ns=a.ns,
                         name=a.name, note="server-side apply, when it creates the object"))
    return out


# ---------------------------------------------------------------- the authorizer

def _first(items, want, wildcard_ok=True):
    if want in items:
        return want
    if wildcard_ok and "*" in items:
        return "*"
    return None


def rule_allows(rule, a):
    """The (group, resource, verb) elements of rule that grant a, or None."""
    v = _first(rule.verbs, a.verb)
    if v is None:
        return None
    if not a.resource_request:
        for u in rule.urls:
            if u == "*" or u == a.path or (u.endswith("*") and a.path.startswith(u[:-1])):
                return ("", u, v)
        return None
    if rule.urls and not rule.resources:
        return None
    g = _first(rule.groups, a.group)
    if g is None:
        return None
    combined = a.resource + "/" + a.sub if a.sub else a.resource
    r = None
    for res in rule.resources:
        if res == combined:
            r = res
            break
    if r is None:
        for res in rule.resources:
            if res == "*" or (a.sub and res == "*/" + a.sub):
                r = res
                break
    if r is None:
        return None
    if rule.names and a.name not in rule.names:
        return None
    return (g, r, v)


def authorize(grants, a):
    """Every (grant, rule, elements) that allows a; empty when denied."""
    out = []
    for gr in grants:
        if gr.namespace is not None and (not a.resource_request or a.ns != gr.namespace):
            continue
        for rule in gr.rules:
            m = rule_allows(rule, a)
            if m:
                out.append((gr, rule, m))
    return out


# ---------------------------------------------------------------- the check

def run(manifests, sa, requests_path, prefix="pillion-operator", out=sys.stdout):
    if "/" not in sa or sa.count("/") != 1 or not all(sa.split("/")):
        raise InputError("SERVICEACCOUNT must be NAMESPACE/NAME, not %r" % sa)
    sa_ns, sa_name = sa.split("/")
    grants, warnings = grants_for(load_objects(manifests), sa_ns, sa_name)
    try:
        with open(requests_path) as f:
            log = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError("%s: %s" % (requests_path, e))
    by_agent = log.get("byAgent") if isinstance(log, dict) else None
    if not isinstance(by_agent, dict):
        raise InputError("%s: no byAgent map (is it the test API server's /_fake/requests answer?)" % requests_path)
    agents = sorted(a for a in by_agent if a.startswith(prefix))
    if not agents:
        raise InputError("%s: no requests from a User-Agent starting with %r (agents: %s)"
                         % (requests_path, prefix, ", ".join(sorted(by_agent)) or "none"))

    def p(s=""):
        print(s, file=out)

    p("service account %s: %d binding(s) grant it rules: %s" % (sa, len(grants), ", ".join(
        "%s -> %s%s" % (g.binding, g.role, "" if g.namespace is None else " (in %s only)" % g.namespace)
        for g in grants) or "none"))
    for w in warnings:
        p("warning: " + w)
    used = set()
    denied = total = distinct = 0
    for agent in agents:
        p()
        p("requests from %s:" % agent)
        for key in sorted(by_agent[agent]):
            count = by_agent[agent][key]
            method, _, target = key.partition(" ")
            if not target.startswith("/"):
                raise InputError("%s: %r is not \"METHOD /path\"" % (requests_path, key))
            distinct += 1
            total += count
            try:
                checks = checks_for(method, target)
            except InputError as e:
                p("DENIED   %s (%dx): %s" % (key, count, e))
                denied += 1
                continue
            for a in checks:
                ok = authorize(grants, a)
                for gr, rule, m in ok:
                    used.add((id(gr), id(rule), m))
                if ok:
                    gr, rule, _ = ok[0]
                    p("allowed  %s (%dx): %s\n           by %s rules[%d] (%s) via %s"
                      % (key, count, a.describe(), rule.owner, rule.index, rule.describe(), gr.binding))
                else:
                    denied += 1
                    p("DENIED   %s (%dx): %s" % (key, count, a.describe()))
    p()
    unused = []
    for gr in grants:
        for rule in gr.rules:
            if rule.urls:
                elems = [("", u, v) for u in rule.urls for v in rule.verbs]
            else:
                elems = [(g, r, v) for g in rule.groups for r in rule.resources for v in rule.verbs]
            for g, r, v in elems:
                if (id(gr), id(rule), (g, r, v)) not in used:
                    what = r if rule.urls else (g + "/" if g else "") + r
                    names = " names " + ",".join(rule.names) if rule.names else ""
                    unused.append("unused   %s %s%s: %s rules[%d] via %s" % (v, what, names, rule.owner, rule.index,
                                                                          gr.binding))
    if unused:
        p("granted but used by no request (information, not an error):")
        for u in unused:
            p(u)
    else:
        p("every grant was used")
    p()
    if denied:
        p("FAIL: %d of the checks were DENIED (%d distinct requests, %d in all)" % (denied, distinct, total))
        return 1
    p("ok: every request allowed (%d distinct requests, %d in all)" % (distinct, total))
    return 0


def main(argv, out=sys.stdout, err=sys.stderr):
    if argv == ["--self-test"]:
        return self_test(out)
    if len(argv) not in (3, 4) or any(a.startswith("-") for a in argv):
        print("usage: rbac_check.py MANIFEST_DIR_OR_FILE SERVICEACCOUNT_NS/NAME REQUESTS_JSON [AGENT_PREFIX]\n"
              "       rbac_check.py --self-test", file=err)
        return 2
    try:
        return run(*argv, out=out)
    except InputError as e:
        print("rbac_check.py: %s" % e, file=err)
        return 2


# ---------------------------------------------------------------- self-test

SELF_TEST_MANIFESTS = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: op, namespace: sys}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: op}
rules:
- apiGroups: [""]
  resources: [pods, namespaces]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [services]
  verbs: [watch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, patch, create]
- apiGroups: [""]
  resources: [secrets]
  verbs: [patch]
- apiGroups: [example.dev]
  resources: [widgets/status]
  verbs: [patch]
- apiGroups: [example.dev]
  resources: ["*/scale"]
  verbs: [update]
- nonResourceURLs: [/healthz, "/debug/*"]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: op}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: op}
subjects:
- {kind: ServiceAccount, name: op, namespace: sys}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: op, namespace: sys}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [op-lock]
  verbs: [get, update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, deletecollection]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: op, namespace: sys}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: op}
subjects:
- {kind: ServiceAccount, name: op}
---
# A ClusterRole bound in one namespace only, to a group the service account is in.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
- {kind: Group, name: "system:serviceaccounts:sys"}
---
# Bound to someone else: grants op nothing.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: other}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
- {kind: ServiceAccount, name: other, namespace: sys}
"""

# (request, expected attributes, allowed?)
SELF_TEST_CASES = [
    ("GET /api/v1/pods", "list pods (cluster-wide)", True),
    ("GET /api/v1/pods?watch=1", "watch pods (cluster-wide)", True),
    ("GET /api/v1/pods?watch=true&resourceVersion=5", "watch pods (cluster-wide)", True),
    ("GET /api/v1/watch/pods", "watch pods (cluster-wide)", True),
    ("GET /api/v1/watch/namespaces/app/pods/p", "watch pods 'p' in app", True),
    ("GET /api/v1/services?watch=0", "list services (cluster-wide)", False),          # by verb: only watch
    ("GET /api/v1/services?watch=false", "list services (cluster-wide)", False),
    ("GET /api/v1/services?watch=", "watch services (cluster-wide)", True),           # "" is true to the API
    ("GET /api/v1/pods/x", "get pods 'x' (cluster-wide)", False),
    ("GET /api/v1/namespaces", "list namespaces (cluster-wide)", True),
    ("GET /api/v1/namespaces/app", "get namespaces 'app' in app", False),
    ("DELETE /api/v1/namespaces/app/configmaps/c", "delete configmaps 'c' in app", False),  # by verb
    ("DELETE /api/v1/namespaces/sys/events", "deletecollection events in sys", True),
    ("DELETE /api/v1/namespaces/app/events", "deletecollection events in app", False),  # by namespace
    ("POST /api/v1/namespaces/sys/events", "create events in sys", True),
    ("POST /api/v1/namespaces/app/events", "create events in app", False),              # by namespace
    ("POST /api/v1/events", "create events (cluster-wide)", False),                      # a Role never covers these
    ("GET /apis/coordination.k8s.io/v1/namespaces/sys/leases/op-lock",
     "get coordination.k8s.io/leases 'op-lock' in sys", True),
    ("PUT /apis/coordination.k8s.io/v1/namespaces/sys/leases/op-lock",
     "update coordination.k8s.io/leases 'op-lock' in sys", True),
    ("GET /apis/coordination.k8s.io/v1/namespaces/sys/leases/other", "get coordination.k8s.io/leases 'other' in sys", False),
    ("GET /apis/coordination.k8s.io/v1/namespaces/sys/leases", "list coordination.k8s.io/leases in sys", False),
    ("GET /apis/coordination.k8s.io/v1/namespaces/sys/leases?fieldSelector=metadata.name%3Dop-lock",
     "list coordination.k8s.io/leases 'op-lock' in sys", False),                        # names it, but list is not granted
    ("PATCH /apis/example.dev/v1/namespaces/app/widgets/w/status", "patch example.dev/widgets/status 'w' in app", True),
    ("PATCH /apis/example.dev/v1/namespaces/app/widgets/w/status?force=true",
     "patch example.dev/widgets/status 'w' in app", True),                               # status never creates
    ("PATCH /apis/example.dev/v1/namespaces/app/widgets/w", "patch example.dev/widgets 'w' in app", False),
    ("PUT /apis/example.dev/v1/namespaces/app/widgets/w/scale", "update example.dev/widgets/scale 'w' in app", True),
    ("PATCH /api/v1/namespaces/app/configmaps/c?force=true", "patch configmaps 'c' in app", True),
    ("PATCH /api/v1/namespaces/app/secrets/s?force=true", "patch secrets 's' in app", True),  # ...but see below
    ("GET /api/v1/namespaces/app/secrets/s", "get secrets 's' in app", True),
    ("GET /api/v1/namespaces/other/secrets/s", "get secrets 's' in other", False),       # by namespace
    ("GET /api/v1/secrets", "list secrets (cluster-wide)", False),
    ("GET /api/v1/namespaces/app/secrets", "list secrets in app", True),
    ("GET /api/v1/namespaces/app/pods/p%2Dx", "get pods 'p-x' in app", False),
    ("GET /healthz", "get /healthz (non-resource)", True),
    ("GET /debug/pprof/heap", "get /debug/pprof/heap (non-resource)", True),
    ("POST /healthz", "post /healthz (non-resource)", False),
    ("GET /apis/example.dev", "get /apis/example.dev (non-resource)", False),
]


def self_test(out=sys.stdout):
    with tempfile.TemporaryDirectory(prefix="rbac-check-selftest.") as tmp:
        return self_test_in(tmp, out)


def self_test_in(tmp, out):
    fails = []

    def expect(name, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": %s" % detail), file=out)
        if not ok:
            fails.append(name)

    mdir = os.path.join(tmp, "manifests")
    os.mkdir(mdir)
    with open(os.path.join(mdir, "rbac.yaml"), "w") as f:
        f.write(SELF_TEST_MANIFESTS)
    grants, warnings = grants_for(load_objects(mdir), "sys", "op")
    expect("three bindings reach the service account (not the one for another)",
           sorted(g.binding for g in grants) == ["ClusterRoleBinding/op", "RoleBinding/app/reader", "RoleBinding/sys/op"],
           [g.binding for g in grants])

    for req, attrs, allowed in SELF_TEST_CASES:
        method, _, target = req.partition(" ")
        a = resolve(method, target)
        got = bool(authorize(grants, a))
        expect("%-70s -> %s: %s" % (req, attrs, "allowed" if allowed else "denied"),
               a.describe() == attrs and got == allowed,
               "resolved to %r, %s" % (a.describe(), "allowed" if got else "denied"))

    # A server-side apply may create: it needs create as well (configmaps have it, secrets do not).
    for req, want in (("PATCH /api/v1/namespaces/app/configmaps/c?force=true", [True, True]),
                      ("PATCH /api/v1/namespaces/app/secrets/s?force=true", [True, False]),
                      ("PATCH /api/v1/namespaces/app/secrets/s", [True])):
        cs = checks_for(*req.split(" ", 1))
        got = [bool(authorize(grants, a)) for a in cs]
        expect("%s is checked as %s" % (req, " and ".join(a.verb for a in cs)), got == want, got)

    def log(reqs, agent="op/1.0"):
        p = os.path.join(tmp, "requests-%d.json" % len(os.listdir(tmp)))
        with open(p, "w") as f:
            json.dump({"total": len(reqs), "byAgent": {agent: {r: 1 for r in reqs},
                                                       "kubectl/1.30": {"DELETE /api/v1/nodes/n": 1}}}, f)
        return p

    def cli(argv):
        import io
        o, e = io.StringIO(), io.StringIO()
        rc = main(argv, o, e)
        return rc, o.getvalue() + e.getvalue()

    good = log(["GET /api/v1/pods?watch=true", "GET /api/v1/pods", "POST /api/v1/namespaces/sys/events",
                "PATCH /api/v1/namespaces/app/configmaps/c?force=true"])
    rc, text = cli([mdir, "sys/op", good, "op/"])
    expect("everything granted: exit 0", rc == 0, text)
    expect("... each request printed with the rule that allowed it",
           "allowed  GET /api/v1/pods?watch=true (1x): watch pods (cluster-wide)\n"
           "           by ClusterRole/op rules[0]" in text,
           text)
    expect("... and unused grants listed as information", "unused   get configmaps: ClusterRole/op rules[2]" in text
           and "unused   update coordination.k8s.io/leases names op-lock" in text
           and "list pods" not in text.split("granted but")[1],
           text)
    expect("... another agent's requests are not checked", "nodes" not in text, text)
    rc, text = cli([os.path.join(mdir, "rbac.yaml"), "sys/op", good, "op/"])
    expect("a manifest file works as well as a directory", rc == 0, text)

    for reqs, why in ((["GET /api/v1/pods", "DELETE /api/v1/namespaces/app/configmaps/c"], "denied by verb"),
                      (["POST /api/v1/namespaces/app/events"], "denied by namespace"),
                      (["GET /apis/coordination.k8s.io/v1/namespaces/sys/leases/other"], "denied by resourceNames"),
                      (["POST /apis/coordination.k8s.io/v1/namespaces/sys/leases"],
                       "a create is not matched by resourceNames"),
                      (["PATCH /apis/example.dev/v1/namespaces/app/widgets/w"], "a subresource grant is not the object's"),
                      (["GET /api/v1/services?watch=false"], "watch=false is a list"),
                      (["PATCH /api/v1/namespaces/app/secrets/s?force=true"], "an apply needs create")):
        rc, text = cli([mdir, "sys/op", log(reqs), "op/"])
        expect("%s: exit 1 and DENIED printed" % why, rc == 1 and "DENIED   " + reqs[-1] in text, text)
    rc, text = cli([mdir, "elsewhere/op", good, "op/"])
    expect("a service account nothing is bound to: everything DENIED", rc == 1 and text.count("\nDENIED   ") == 5, text)
    rc, text = cli([mdir, "sys/nobody", good, "op/"])
    expect("another service account of namespace sys gets only the group's grant",
           rc == 1 and "RoleBinding/app/reader" in text and "RoleBinding/sys/op" not in text, text)

    # kustomization directories are followed; install.yaml-style duplicates beside them are not read twice
    kdir = os.path.join(tmp, "kust")
    os.mkdir(kdir)
    with open(os.path.join(kdir, "kustomization.yaml"), "w") as f:
        f.write("resources:\n  - ../manifests/rbac.yaml\n")
    with open(os.path.join(kdir, "ignored.yaml"), "w") as f:
        f.write("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: all}\n"
                "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: op}\n"
                "subjects: [{kind: Group, name: system:authenticated}]\n")
    rc, text = cli([kdir, "elsewhere/op", good, "op/"])
    expect("a kustomization's resources are read, and only they", rc == 1, text)

    for argv, why in (([], "no arguments"), ([mdir, "op", good], "a service account without namespace"),
                      ([mdir, "sys/op", os.path.join(tmp, "nope.json")], "no requests file"),
                      ([mdir, "sys/op", good, "nobody-"], "no request from the agent"),
                      ([os.path.join(tmp, "nope"), "sys/op", good], "no manifests"),
                      (["--bogus", "sys/op", good], "an unknown option")):
        rc, text = cli(argv)
        expect("usage error (%s): exit 2" % why, rc == 2, (rc, text))

    print("%s: %d failure(s)" % ("self-test FAILED" if fails else "self-test ok", len(fails)), file=out)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
