"""The registry layer: what kube-apiserver does to a request between decoding and storage:
defaulting, admission (built-in plugins and mutating webhooks), validation, generation,
optimistic concurrency, server-side apply and managedFields, status subresource rules,
deletion with propagation, and paginated lists."""
import base64
import copy
import json

from . import patch as pt
from . import resources as res
from . import schema as schemamod
from .errors import (ApiError, already_exists, bad_request, conflict, expired, forbidden, invalid,
                     not_found, unsupported_media_type)
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import now_ts

try:
    import yaml
except ImportError:       # python3-yaml missing: apply bodies must then be JSON
    yaml = None

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NS_KEY = ("", "namespaces")
LIST_CHUNK_EXPIRED = ("The provided continue parameter is too old to display a consistent list result. You can "
                      "start a new list without the continue parameter, or use the continue token in this response "
                      "to retrieve the remainder of the results. Continuing with the provided token results in an "
                      "inconsistent list - objects that were created, modified, or deleted between the time the "
                      "first chunk was returned and now may show up in the list.")


def _deep_eq_except(a, b, drop_top):
    a = {k: v for k, v in a.items() if k not in drop_top}
    b = {k: v for k, v in b.items() if k not in drop_top}
    return a == b


def parse_fields_v1(tree, prefix=()):
    out = set()
    for key, sub in (tree or {}).items():
        if key == ".":
            out.add(prefix)
            continue
        if key.startswith("f:"):
            seg = ("f", key[2:])
        elif key.startswith("k:"):
            seg = ("k", key[2:])
        else:                      # v: / i: entries are treated as owning the whole list
            out.add(prefix)
            continue
        p = prefix + (seg,)
        if sub:
            out |= parse_fields_v1(sub, p)
        else:
            out.add(p)
    return out


class Request:
    """What the HTTP layer parsed: verb context the registry needs."""

    def __init__(self, rt, version, namespace, name=None, subresource=None, query=None, user_agent="",
                 user="system:admin"):
        self.rt, self.version, self.namespace, self.name = rt, version, namespace, name
        self.subresource = subresource
        self.query = query or {}
        self.user_agent = user_agent
        self.user = user
        self.warnings = []

    def q(self, k, default=None):
        v = self.query.get(k)
        return v[-1] if v else default

    @property
    def dry_run(self):
        return "All" in (self.query.get("dryRun") or [])

    def manager(self):
        m = self.q("fieldManager")
        if m:
            return m
        return (self.user_agent or "unknown").split("/")[0] or "unknown"


class Api:
    def __init__(self, store, admission=None, log=None):
        self.store = store
        self.admission = admission
        self.log = log or (lambda *a: None)

    # ------------------------------------------------------------------ output

    def output(self, rt, obj, version, in_list=False):
        if in_list and not rt.is_cr():
            o = dict(obj)
            o.pop("kind", None)
            o.pop("apiVersion", None)
            return o
        av = rt.api_version(version)
        if obj.get("apiVersion") != av:
            o = dict(obj)
            o["apiVersion"] = av
            return o
        return obj

    # ------------------------------------------------------------------ decoding

    def decode(self, req, body, for_update=False):
        rt = req.rt
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized (must be of type %s): couldn't get version/kind; "
                              "json parse error" % rt.kind)
        obj = copy.deepcopy(body)
        kind = obj.get("kind")
        av = obj.get("apiVersion")
        if kind and kind != rt.kind:
            raise bad_request("the object provided is unrecognized (must be of type %s): %s" % (rt.kind, kind))
        if av and av != rt.api_version(req.version):
            if rt.is_cr() or (av.split("/")[0] if "/" in av else "") != rt.group:
                raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                                  % (av, rt.api_version(req.version)))
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        obj = dict({"apiVersion": rt.api_version(), "kind": rt.kind}, **obj)
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            bns = meta.get("namespace")
            if bns and req.namespace and bns != req.namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            meta["namespace"] = req.namespace
        else:
            meta.pop("namespace", None)
        if req.name is not None and meta.get("name") and meta["name"] != req.name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                              % (meta["name"], req.name))
        if req.name is not None and for_update:
            meta["name"] = req.name
        if rt.key == ("", "secrets"):
            res.normalize_secret(obj)
        return obj

    # ------------------------------------------------------------------ kind-specific steps

    def _default(self, rt, obj, old=None):
        if rt.is_cr():
            s = rt.schemas.get(rt.storage_version)
            if s:
                obj = schemamod.prune_and_default(obj, s)
            return obj
        k = rt.key
        if k == ("", "pods"):
            res.default_pod(obj)
        elif k == ("", "services"):
            res.default_service(obj)
            if old is not None:
                ospec, spec = old.get("spec") or {}, obj["spec"]
                for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    if not spec.get(f) and ospec.get(f):
                        spec[f] = copy.deepcopy(ospec[f])
        elif k == NS_KEY:
            obj["metadata"].setdefault("labels", {})
            if obj["metadata"].get("name"):
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        elif k == ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"):
            res.default_mwc(obj)
        elif k == CRD_KEY:
            res.default_crd(obj)
        elif k == ("", "secrets"):
            obj.setdefault("type", "Opaque")
        return obj

    def _validate(self, rt, obj, version, old=None):
        errs = res.validate_meta(rt, obj)
        k = rt.key
        if rt.is_cr():
            errs += res.validate_cr(rt, obj, version, old)
        elif k == ("", "pods"):
            errs += res.validate_pod(obj, old)
        elif k == ("", "services"):
            errs += res.validate_service(obj, old)
        elif k == ("", "secrets"):
            errs += res.validate_secret(obj, old)
        elif k == ("", "configmaps"):
            errs += res.validate_configmap(obj, old)
        elif k == ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"):
            errs += res.validate_mwc(obj, old)
            for i, w in enumerate(obj.get("webhooks") or []):
                url = (w.get("clientConfig") or {}).get("url")
                if url is not None and not url.startswith("https://"):
                    errs.append(("webhooks[%d].clientConfig.url" % i, "FieldValueInvalid",
                                 "Invalid value: \"%s\": 'https' is the only allowed URL scheme" % url))
        elif k == CRD_KEY:
            errs += res.validate_crd(obj, old)
        elif k == ("", "events"):
            errs += res.validate_event(obj, old)
        if old is not None and obj["metadata"].get("uid") not in (None, old["metadata"].get("uid")):
            errs.append(("metadata.uid", "FieldValueInvalid", "Invalid value: field is immutable"))
        if errs:
            raise invalid(rt.kind, rt.group, obj["metadata"].get("name") or "", errs)

    def _require_namespace(self, rt, ns, name):
        if not rt.namespaced:
            return
        nsobj = self.store.find(self.store.types[NS_KEY], "", ns)
        if nsobj is None:
            raise not_found(self.store.types[NS_KEY], ns)
        if nsobj["metadata"].get("deletionTimestamp"):
            raise forbidden(rt, name, "unable to create new content in namespace %s because it is being terminated"
                            % ns, [{"reason": "NamespaceTerminating",
                                    "message": "namespace %s is being terminated" % ns, "field": "metadata.namespace"}])

    def _reset_status_on_create(self, rt, obj):
        k = rt.key
        if k == ("", "pods"):
            obj["status"] = {"phase": "Pending", "qosClass": res.pod_qos(obj)}
        elif k == ("", "services"):
            obj["status"] = {"loadBalancer": {}}
        elif k == NS_KEY:
            obj["status"] = {"phase": "Active"}
        elif k == CRD_KEY:
            obj["status"] = res.crd_status(obj, now_ts())
        elif rt.status:
            obj.pop("status", None)

    # ------------------------------------------------------------------ managed fields

    def _entries(self, obj):
        out = []
        for e in obj["metadata"].get("managedFields") or []:
            out.append({"manager": e.get("manager", ""), "operation": e.get("operation", "Update"),
                        "subresource": e.get("subresource", ""), "apiVersion": e.get("apiVersion"),
                        "time": e.get("time"), "paths": parse_fields_v1(e.get("fieldsV1"))})
        return out

    def _render_entries(self, obj, entries, existing):
        mf = []
        for e in entries:
            paths = {p for p in e["paths"] if p in existing}
            if not paths:
                continue
            d = {"manager": e["manager"], "operation": e["operation"], "apiVersion": e["apiVersion"],
                 "time": e["time"], "fieldsType": "FieldsV1", "fieldsV1": pt.fields_v1(paths)}
            if e["subresource"]:
                d["subresource"] = e["subresource"]
            mf.append(d)
        if mf:
            obj["metadata"]["managedFields"] = mf
        else:
            obj["metadata"].pop("managedFields", None)

    def _all_paths(self, rt, obj):
        o = {k: v for k, v in obj.items()}
        paths = pt.field_paths(o, rt.list_keys)
        # Intermediate nodes of associative list items count as existing too.
        return paths

    def _track_update(self, rt, req, old, new, subresource):
        """Field ownership after a non-apply write: the writer owns what it changed."""
        entries = self._entries(old) if old is not None else []
        changed, removed = pt.changed_paths(old or {}, new, rt.list_keys)
        if old is None:
            changed = pt.field_paths(new, rt.list_keys)
        if changed:
            mine = None
            for e in entries:
                if (e["manager"], e["operation"], e["subresource"]) == (req.manager(), "Update", subresource or ""):
                    mine = e
            if mine is None:
                mine = {"manager": req.manager(), "operation": "Update", "subresource": subresource or "",
                        "apiVersion": rt.api_version(req.version), "time": None, "paths": set()}
                entries.append(mine)
            for e in entries:
                if e is not mine:
                    e["paths"] -= changed
            mine["paths"] |= changed
            mine["time"] = now_ts()
        self._render_entries(new, entries, pt.field_paths(new, rt.list_keys))

    # ------------------------------------------------------------------ create

    def create(self, req, body, manager_op="Update", apply_paths=None):
        rt = req.rt
        obj = self.decode(req, body)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
                  "selfLink"):
            meta.pop(f, None)
        if not meta.get("name") and not meta.get("generateName"):
            raise invalid(rt.kind, rt.group, "", [("metadata.name", "FieldValueRequired",
                                                    "Required value: name or generateName is required")])
        self._require_namespace(rt, meta.get("namespace"), meta.get("name") or "")
        obj = self._default(rt, obj)
        self._reset_status_on_create(rt, obj)
        if rt.key == ("", "pods"):
            err = res.admit_pod_builtin(obj, lambda sa: self.store.find(
                self.store.types[("", "serviceaccounts")], meta["namespace"], sa))
            if err:
                raise forbidden(rt, meta.get("name") or "", err)
        obj = self._mutate(req, "CREATE", obj, None)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = meta["generateName"] + res.gen_suffix()
        meta["creationTimestamp"] = now_ts()
        if rt.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._validate(rt, obj, req.version)
        if apply_paths is not None:
            entry = {"manager": req.manager(), "operation": "Apply", "subresource": "",
                     "apiVersion": rt.api_version(req.version), "time": now_ts(), "paths": apply_paths}
            self._render_entries(obj, [entry], pt.field_paths(obj, rt.list_keys))
        else:
            self._track_update(rt, req, None, obj, None)
        with self.store.lock:
            if self.store.find(rt, meta.get("namespace"), meta["name"]) is not None:
                raise already_exists(rt, meta["name"])
            if rt.key == ("", "services"):
                self._allocate_service_ip(rt, obj)
            if req.dry_run:
                obj["metadata"]["uid"] = obj["metadata"].get("uid") or "00000000-0000-0000-0000-000000000000"
                return obj
            if rt.key == CRD_KEY:
                self.store.register(res.type_from_crd(obj))
            self.store.insert(rt, obj)
            if rt.key == NS_KEY:
                self._namespace_controllers(meta["name"])
        return obj

    def _allocate_service_ip(self, rt, obj):
        spec = obj["spec"]
        want = spec.get("clusterIP")
        if want == "None":
            spec["clusterIPs"] = ["None"]
        else:
            ip = self.store.allocate_ip(want or None)
            if ip is None:
                raise invalid(rt.kind, rt.group, obj["metadata"]["name"], [(
                    "spec.clusterIPs", "FieldValueInvalid",
                    'Invalid value: []string{"%s"}: failed to allocate IP %s: provided IP is already allocated'
                    % (want, want))])
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    def _namespace_controllers(self, ns):
        """What the service-account and root-CA-publisher controllers do for a new namespace."""
        st = self.store
        sa_rt, cm_rt = st.types[("", "serviceaccounts")], st.types[("", "configmaps")]
        for rt, obj in ((sa_rt, {"apiVersion": "v1", "kind": "ServiceAccount",
                                 "metadata": {"name": "default", "namespace": ns}}),
                        (cm_rt, {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                                              "annotations": {"kubernetes.io/description": (
                                                  "Contains a CA bundle that can be used to verify the "
                                                  "kube-apiserver when using internal endpoints such as the "
                                                  "internal service IP or kubernetes.default.svc. No other usage "
                                                  "is guaranteed across distributions of Kubernetes clusters.")}},
                                 "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n(test double)\n"
                                                    "-----END CERTIFICATE-----\n"}})):
            if st.find(rt, ns, obj["metadata"]["name"]) is None:
                obj["metadata"]["creationTimestamp"] = now_ts()
                manager = "kube-controller-manager"
                r = Request(rt, "v1", ns, user_agent=manager)
                self._track_update(rt, r, None, obj, None)
                st.insert(rt, obj)

    # ------------------------------------------------------------------ update

    def _prepare_update(self, req, cur, new, subresource):
        """Turn the client's intended object into what is stored, as kube-apiserver's strategies do."""
        rt = req.rt
        cmeta = cur["metadata"]
        meta = new.setdefault("metadata", {})
        for f in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if f in cmeta:
                meta[f] = cmeta[f]
            else:
                meta.pop(f, None)
        meta["name"] = cmeta["name"]
        if rt.namespaced:
            meta["namespace"] = cmeta["namespace"]
        meta["resourceVersion"] = cmeta["resourceVersion"]
        if subresource == "status":
            out = copy.deepcopy(cur)
            if "status" in new:
                out["status"] = new["status"]
            else:
                out.pop("status", None)
            if not rt.is_cr():       # built-in status strategies let labels and annotations through
                for f in ("labels", "annotations"):
                    if f in meta:
                        out["metadata"][f] = meta[f]
                    else:
                        out["metadata"].pop(f, None)
            out["metadata"]["managedFields"] = meta.get("managedFields", cmeta.get("managedFields"))
            new = out
        elif rt.status:
            if "status" in cur:
                new["status"] = copy.deepcopy(cur["status"])
            else:
                new.pop("status", None)
        new = self._default(rt, new, cur)
        new = self._mutate(req, "UPDATE", new, cur)
        self._validate(rt, new, req.version, cur)
        if rt.generation and "generation" in cmeta:
            drop = {"metadata", "status"} if rt.status else {"metadata"}
            if rt.key == CRD_KEY:
                drop = {"metadata", "status"}
            if not _deep_eq_except(cur, new, drop):
                new["metadata"]["generation"] = cmeta["generation"] + 1
        return new

    def _commit(self, req, cur, new):
        """Store new in place of cur unless someone wrote in between (returns None then)."""
        rt = req.rt
        st = self.store
        with st.lock:
            live = st.find(rt, cur["metadata"].get("namespace"), cur["metadata"]["name"])
            if live is not cur:
                return None
            if _same_ignoring_mf_time(cur, new):
                return cur
            if req.dry_run:
                return new
            if rt.key == CRD_KEY:
                st.register(res.type_from_crd(new))
            out = st.replace(rt, cur, new)
            return out

    def update(self, req, body):
        rt = req.rt
        new_in = self.decode(req, body, for_update=True)
        want_rv = new_in["metadata"].get("resourceVersion")
        for _ in range(20):
            cur = self.store.find(rt, req.namespace, req.name)
            if cur is None:
                if rt.create_on_update and req.subresource is None:
                    new_in["metadata"].pop("resourceVersion", None)
                    return self.create(req, new_in), 201
                raise not_found(rt, req.name)
            if not want_rv and not rt.unconditional_update:
                raise invalid(rt.kind, rt.group, req.name, [(
                    "metadata.resourceVersion", "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update")])
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise conflict(rt, req.name)
            new = copy.deepcopy(new_in)
            new["metadata"]["managedFields"] = copy.deepcopy(cur["metadata"].get("managedFields"))
            new = self._prepare_update(req, cur, new, req.subresource)
            self._track_update(rt, req, cur, new, req.subresource)
            out = self._commit(req, cur, new)
            if out is not None:
                return out, 200
            if want_rv:
                raise conflict(rt, req.name)
        raise conflict(rt, req.name, "too many concurrent updates")

    # ------------------------------------------------------------------ patch

    def patch(self, req, ctype, raw):
        rt = req.rt
        ctype = (ctype or "").split(";")[0].strip().lower()
        force = req.q("force") in ("true", "1")
        if ctype == "application/apply-patch+yaml":
            return self._apply(req, raw, force)
        if force:
            raise invalid("PatchOptions", "meta.k8s.io", "", [(
                "force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch")])
        try:
            body = json.loads(raw or b"null")
        except ValueError as e:
            raise bad_request("error decoding patch: %s" % e)
        if ctype == "application/merge-patch+json":
            fn = lambda cur: pt.merge_patch(cur, body)          # noqa: E731
            if not isinstance(body, dict):
                raise bad_request("couldn't get version/kind; json parse error: merge patch must be an object")
        elif ctype == "application/strategic-merge-patch+json":
            if rt.is_cr():
                raise ApiError(415, "UnsupportedMediaType", "strategic merge patch is not supported for %s"
                               % rt.group_resource(), {})
            fn = lambda cur: pt.merge_patch(cur, _strip_smp(body))  # noqa: E731
        elif ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")

            def fn(cur):
                try:
                    return pt.json_patch(cur, body)
                except pt.PatchError as e:
                    raise ApiError(422, "Invalid", str(e), {})
        else:
            raise unsupported_media_type(None)
        for _ in range(20):
            cur = self.store.find(rt, req.namespace, req.name)
            if cur is None:
                raise not_found(rt, req.name)
            patched = fn(self.output(rt, cur, req.version))
            if not isinstance(patched, dict):
                raise bad_request("patched object is not a JSON object")
            prv = (patched.get("metadata") or {}).get("resourceVersion")
            if prv and prv != cur["metadata"]["resourceVersion"]:
                raise conflict(rt, req.name)
            pm = patched.get("metadata") or {}
            if pm.get("name") not in (None, req.name):
                raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (pm.get("name"), req.name))
            new = self.decode(req, patched, for_update=True)
            new["metadata"]["managedFields"] = copy.deepcopy(cur["metadata"].get("managedFields"))
            new = self._prepare_update(req, cur, new, req.subresource)
            self._track_update(rt, req, cur, new, req.subresource)
            out = self._commit(req, cur, new)
            if out is not None:
                return out, 200
        raise conflict(rt, req.name, "too many concurrent updates")

    def _apply(self, req, raw, force):
        rt = req.rt
        if not req.q("fieldManager"):
            raise invalid("PatchOptions", "meta.k8s.io", "", [(
                "fieldManager", "FieldValueRequired", "Required value: is required for apply patch")])
        try:
            text = raw.decode("utf-8") if raw else ""
            cfg = yaml.safe_load(text) if yaml is not None else json.loads(text)
        except Exception as e:
            raise bad_request("error decoding YAML: %s" % e)
        if not isinstance(cfg, dict):
            raise bad_request("couldn't get version/kind; json parse error: expected an object")
        if not cfg.get("apiVersion") or not cfg.get("kind"):
            raise bad_request("couldn't get version/kind; json parse error: Object 'Kind' is missing in '%s'"
                              % json.dumps(cfg)[:200])
        cfg = self.decode(req, cfg, for_update=True)
        if rt.is_cr():
            s = rt.schemas.get(rt.storage_version)
            if s:
                cfg = _prune_only(cfg, s)
        sub = req.subresource or ""
        if sub == "status":
            scope = {"status"}
        else:
            scope = None
        cfg_scoped = {k: v for k, v in cfg.items() if scope is None or k in scope or k in ("apiVersion", "kind",
                                                                                             "metadata")}
        if sub == "status":
            cfg_scoped["metadata"] = {k: v for k, v in cfg["metadata"].items() if k in ("name", "namespace",
                                                                                         "resourceVersion")}
        elif rt.status:
            cfg_scoped.pop("status", None)
        new_paths = pt.field_paths(cfg_scoped, rt.list_keys)
        want_rv = cfg["metadata"].get("resourceVersion")
        manager = req.manager()
        for _ in range(20):
            cur = self.store.find(rt, req.namespace, req.name)
            if cur is None:
                if sub:
                    raise not_found(rt, req.name)
                if want_rv:
                    raise conflict(rt, req.name)
                body = copy.deepcopy(cfg_scoped)
                try:
                    return self.create(req, body, apply_paths=new_paths), 201
                except ApiError as e:
                    if e.reason == "AlreadyExists":
                        continue
                    raise
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise conflict(rt, req.name)
            entries = self._entries(cur)
            mine = None
            for e in entries:
                if (e["manager"], e["operation"], e["subresource"]) == (manager, "Apply", sub):
                    mine = e
            conflicts = []
            for e in entries:
                if e is mine:
                    continue
                for p in sorted(new_paths & e["paths"]):
                    if pt.get_path(cur, p) != pt.get_path(cfg_scoped, p):
                        conflicts.append((e, p))
            if conflicts and not force:
                causes = [{"reason": "FieldManagerConflict",
                           "message": 'conflict with "%s"%s' % (e["manager"], " using " + e["apiVersion"]
                                                                  if e["operation"] == "Update" else ""),
                           "field": pt.path_to_string(p)} for e, p in conflicts]
                msg = "Apply failed with %d conflict%s: %s" % (
                    len(conflicts), "" if len(conflicts) == 1 else "s",
                    "\n".join("%s: %s" % (c["message"], c["field"]) for c in causes))
                raise ApiError(409, "Conflict", msg, {"name": req.name, "kind": rt.plural,
                                                      **({"group": rt.group} if rt.group else {}),
                                                      "causes": causes})
            for e, p in conflicts:
                e["paths"].discard(p)
            obj = copy.deepcopy(self.output(rt, cur, req.version))
            old_mine = mine["paths"] if mine else set()
            others = set()
            for e in entries:
                if e is not mine:
                    others |= e["paths"]
            for p in sorted(old_mine - new_paths - others, key=len, reverse=True):
                pt.remove_path(obj, p)
            merged = pt.apply_merge(obj, cfg_scoped, rt.list_keys)
            merged["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            if mine is None:
                mine = {"manager": manager, "operation": "Apply", "subresource": sub,
                        "apiVersion": rt.api_version(req.version), "time": None, "paths": set()}
                entries.insert(0, mine)
            mine["paths"] = set(new_paths)
            new = self.decode(req, merged, for_update=True)
            new = self._prepare_update(req, cur, new, req.subresource)
            if mine["paths"] != old_mine or conflicts or not _same_ignoring_mf_time(cur, new, check_mf=False):
                mine["time"] = now_ts()
            self._render_entries(new, entries, pt.field_paths(new, rt.list_keys))
            out = self._commit(req, cur, new)
            if out is not None:
                return out, 200
        raise conflict(rt, req.name, "too many concurrent updates")

    # ------------------------------------------------------------------ delete

    def delete(self, req, options):
        rt = req.rt
        options = options or {}
        pre = options.get("preconditions") or {}
        policy = req.q("propagationPolicy") or options.get("propagationPolicy")
        if req.q("orphanDependents") == "true" or options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise invalid("DeleteOptions", "meta.k8s.io", "", [(
                "propagationPolicy", "FieldValueNotSupported",
                'Unsupported value: "%s": supported values: "Foreground", "Background", "Orphan", "nil"' % policy)])
        st = self.store
        with st.lock:
            cur = st.find(rt, req.namespace, req.name)
            if cur is None:
                raise not_found(rt, req.name)
            if pre.get("uid") and pre["uid"] != cur["metadata"]["uid"]:
                raise conflict(rt, req.name, "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (pre["uid"], cur["metadata"]["uid"]))
            if pre.get("resourceVersion") and pre["resourceVersion"] != cur["metadata"]["resourceVersion"]:
                raise conflict(rt, req.name, "Precondition failed: ResourceVersion in precondition: %s, "
                               "ResourceVersion in object meta: %s" % (pre["resourceVersion"],
                                                                       cur["metadata"]["resourceVersion"]))
            if req.dry_run:
                return cur
            if rt.key == NS_KEY:
                if cur["metadata"].get("deletionTimestamp"):
                    return cur
                if req.name in ("default", "kube-system", "kube-public"):
                    raise forbidden(rt, req.name, "this namespace may not be deleted")
                new = copy.deepcopy(cur)
                new["metadata"]["deletionTimestamp"] = now_ts()
                new["status"] = {"phase": "Terminating"}
                out = st.replace(rt, cur, new)
                st.terminate_namespace(req.name)
                return out
            uid = cur["metadata"]["uid"]
            if policy == "Orphan":
                st.orphan_dependents(uid)
            elif policy == "Foreground":
                st.delete_dependents_now(uid)
            if rt.key == CRD_KEY:
                crt = st.types.get((cur["spec"]["group"], cur["spec"]["names"]["plural"]))
                if crt is not None:
                    for obj in list(st.objects.get(crt.key, {}).values()):
                        st.remove(crt, obj)
                    st.unregister(crt.key)
            final = st.remove(rt, cur)
            return final

    def delete_collection(self, req, options):
        items, _, _, _ = self.list(req)
        for obj in items:
            r = Request(req.rt, req.version, obj["metadata"].get("namespace") or None, obj["metadata"]["name"],
                        query={k: v for k, v in req.query.items() if k in ("propagationPolicy", "dryRun")})
            try:
                self.delete(r, options)
            except ApiError as e:
                if e.code != 404:
                    raise
        return items

    # ------------------------------------------------------------------ list

    def matcher(self, req):
        lab = parse_label_selector(req.q("labelSelector"))
        fsel = parse_field_selector(req.q("fieldSelector"), req.rt.field_selectors)
        if req.name is not None:
            fsel.append(("metadata.name", "=", req.name))

        def matches(obj):
            return labels_match(lab, obj["metadata"].get("labels")) and fields_match(fsel, obj)
        return matches

    def list(self, req):
        """Returns (items, list_rv, continue_token, remaining)."""
        rt = req.rt
        matches = self.matcher(req)
        limit = req.q("limit")
        try:
            limit = int(limit) if limit not in (None, "") else 0
        except ValueError:
            raise bad_request("invalid limit %r" % limit)
        cont = req.q("continue")
        at_rv = None
        start = None
        if cont:
            try:
                tok = json.loads(base64.b64decode(cont + "=" * (-len(cont) % 4)))
                at_rv = int(tok["rv"])
                start = tok["start"]
            except Exception:
                raise bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                  "(version meta.k8s.io/v1)")
            if req.q("resourceVersion"):
                raise bad_request("specifying resource version is not allowed when using continue")
        elif req.q("resourceVersionMatch") == "Exact":
            rvs = req.q("resourceVersion")
            if not rvs or rvs == "0":
                raise bad_request("resourceVersionMatch: Exact requires a non-zero resourceVersion")
            at_rv = int(rvs)
        with self.store.lock:
            list_rv = self.store.rv if at_rv is None else at_rv
            try:
                objs = self.store.snapshot(rt, at_rv)
            except ApiError as e:
                if cont:
                    raise expired(LIST_CHUNK_EXPIRED)
                raise e
        keys = sorted(objs)
        if req.namespace is not None:
            keys = [k for k in keys if k[0] == req.namespace]
        if start is not None:
            keys = [k for k in keys if "%s/%s" % k > start] if rt.namespaced else [k for k in keys if k[1] > start]
        items = []
        remaining = 0
        last = None
        for i, k in enumerate(keys):
            obj = objs[k]
            if not matches(obj):
                continue
            if limit and len(items) >= limit:
                remaining = sum(1 for kk in keys[i:] if matches(objs[kk]))
                break
            items.append(obj)
            last = k
        token = None
        if remaining and last is not None:
            skey = "%s/%s" % last if rt.namespaced else last[1]
            token = base64.b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": list_rv, "start": skey},
                                                separators=(",", ":")).encode()).decode().rstrip("=")
        return items, list_rv, token, remaining

    # ------------------------------------------------------------------ admission

    def _mutate(self, req, op, obj, old):
        if self.admission is None or req.rt.key in (("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),):
            return obj
        out, warnings = self.admission.mutate(req, op, obj, old)
        req.warnings += warnings
        if out is not obj:
            out = self._default(req.rt, out, old)
        return out


def _prune_only(obj, schema):
    pruned = schemamod.prune_and_default(obj, {k: v for k, v in schema.items()})
    # Defaults are applied to the stored object, not owned by the applier: strip what defaulting added.
    return _intersect(pruned, obj)


def _intersect(pruned, orig):
    if isinstance(pruned, dict) and isinstance(orig, dict):
        return {k: _intersect(v, orig[k]) for k, v in pruned.items() if k in orig}
    return pruned


def _strip_smp(p):
    """Strategic merge patch reduced to a merge patch: directives are dropped."""
    if isinstance(p, dict):
        return {k: _strip_smp(v) for k, v in p.items() if not k.startswith("$")}
    return p


def _same_ignoring_mf_time(a, b, check_mf=True):
    def norm(o):
        o = dict(o)
        m = dict(o.get("metadata") or {})
        m.pop("resourceVersion", None)
        mf = m.pop("managedFields", None)
        if check_mf and mf:
            m["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in mf]
        o["metadata"] = m
        return o
    return norm(a) == norm(b)
