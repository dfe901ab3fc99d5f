"""Resource types served by the double: the built-in ones Pillion uses and those CRDs declare,
with the per-kind defaulting, admission plugins and validation of kube-apiserver 1.26 that a
controller can observe."""
import base64
import binascii
import copy
import json
import random
import re

from . import schema as schemamod
from .errors import bad_request
from .selectors import valid_label_key, valid_label_value

_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

META_FIELDS = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
               "annotations", "ownerReferences", "finalizers", "managedFields"}

POD_FIELDS = {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
              "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"}
EVENT_FIELDS = {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}

# Associative lists of built-in kinds (patchMergeKey / listMapKeys), by field-name path.
BUILTIN_LIST_KEYS = {
    ("metadata", "ownerReferences"): ["uid"],
    ("spec", "containers"): ["name"],
    ("spec", "initContainers"): ["name"],
    ("spec", "ephemeralContainers"): ["name"],
    ("spec", "volumes"): ["name"],
    ("spec", "containers", "env"): ["name"],
    ("spec", "initContainers", "env"): ["name"],
    ("spec", "containers", "ports"): ["containerPort", "protocol"],
    ("spec", "initContainers", "ports"): ["containerPort", "protocol"],
    ("spec", "containers", "volumeMounts"): ["mountPath"],
    ("spec", "initContainers", "volumeMounts"): ["mountPath"],
    ("spec", "ports"): ["port", "protocol"],
    ("status", "conditions"): ["type"],
    ("webhooks",): ["name"],
}


def gen_suffix(n=5):
    return "".join(random.choice(_GEN_ALPHABET) for _ in range(n))


class ResourceType:
    def __init__(self, group, versions, plural, kind, namespaced, singular=None, short_names=(),
                 status=False, generation=False, create_on_update=False, unconditional_update=True,
                 fields=(), name_rule="subdomain", crd=None, categories=()):
        self.group = group
        self.versions = list(versions)          # served versions, storage version first
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.singular = singular or kind.lower()
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.status = status
        self.generation = generation
        self.create_on_update = create_on_update
        self.unconditional_update = unconditional_update
        self.field_selectors = {"metadata.name", "metadata.namespace"} | set(fields)
        self.name_rule = name_rule
        self.crd = crd                           # CRD name for custom resources
        self.schemas = {}                        # version -> openAPIV3Schema

    @property
    def key(self):
        return (self.group, self.plural)

    @property
    def storage_version(self):
        return self.versions[0]

    def api_version(self, version=None):
        v = version or self.storage_version
        return "%s/%s" % (self.group, v) if self.group else v

    def group_resource(self):
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    def is_cr(self):
        return self.crd is not None

    def list_keys(self, path):
        names = tuple(n for k, n in path if k == "f")
        if names == ("metadata", "ownerReferences"):
            return ["uid"]
        if self.is_cr():
            return schemamod.list_map_keys(self.schemas.get(self.storage_version), path)
        return BUILTIN_LIST_KEYS.get(names)


# ---------------------------------------------------------------------------------------- registry

def builtin_types():
    return [
        ResourceType("", ["v1"], "namespaces", "Namespace", False, short_names=["ns"], status=True,
                     fields=["status.phase"], name_rule="label"),
        ResourceType("", ["v1"], "pods", "Pod", True, short_names=["po"], status=True, fields=POD_FIELDS,
                     categories=["all"]),
        ResourceType("", ["v1"], "services", "Service", True, short_names=["svc"], status=True,
                     name_rule="dns1035", categories=["all"]),
        ResourceType("", ["v1"], "configmaps", "ConfigMap", True, short_names=["cm"]),
        ResourceType("", ["v1"], "secrets", "Secret", True, fields=["type"]),
        ResourceType("", ["v1"], "serviceaccounts", "ServiceAccount", True, short_names=["sa"]),
        ResourceType("", ["v1"], "events", "Event", True, short_names=["ev"], fields=EVENT_FIELDS,
                     create_on_update=True),
        ResourceType("coordination.k8s.io", ["v1"], "leases", "Lease", True, create_on_update=True),
        ResourceType("admissionregistration.k8s.io", ["v1"], "mutatingwebhookconfigurations",
                     "MutatingWebhookConfiguration", False, generation=True, categories=["api-extensions"]),
        ResourceType("apiextensions.k8s.io", ["v1"], "customresourcedefinitions", "CustomResourceDefinition",
                     False, short_names=["crd", "crds"], status=True, generation=True,
                     unconditional_update=False, categories=["api-extensions"]),
    ]


def type_from_crd(crd):
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    served = [v for v in spec.get("versions") or [] if v.get("served", True)]
    storage = [v for v in served if v.get("storage")] or served
    order = [storage[0]["name"]] + [v["name"] for v in served if v["name"] != storage[0]["name"]]
    st = any((v.get("subresources") or {}).get("status") is not None for v in storage[:1])
    rt = ResourceType(spec.get("group", ""), order, names.get("plural"), names.get("kind"),
                      spec.get("scope", "Namespaced") == "Namespaced", singular=names.get("singular"),
                      short_names=names.get("shortNames") or [], status=st, generation=True,
                      unconditional_update=False, crd=crd["metadata"]["name"],
                      categories=names.get("categories") or [])
    for v in served:
        rt.schemas[v["name"]] = ((v.get("schema") or {}).get("openAPIV3Schema"))
    return rt


# ---------------------------------------------------------------------------------------- metadata

def validate_name(rt, name, field="metadata.name"):
    if rt.name_rule == "label":
        rx, n, what = _DNS1123_LABEL, 63, ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                                          "characters or '-', and must start and end with an alphanumeric "
                                          "character (e.g. 'my-name',  or '123-abc', regex used for validation "
                                          "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    elif rt.name_rule == "dns1035":
        rx, n, what = _DNS1035_LABEL, 63, ("a DNS-1035 label must consist of lower case alphanumeric characters "
                                          "or '-', start with an alphabetic character, and end with an "
                                          "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                                          "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
    else:
        rx, n, what = _DNS1123_SUB, 253, ("a lowercase RFC 1123 subdomain must consist of lower case "
                                         "alphanumeric characters, '-' or '.', and must start and end with an "
                                         "alphanumeric character (e.g. 'example.com', regex used for validation "
                                         "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    errs = []
    if len(name) > n:
        errs.append((field, "FieldValueInvalid", 'Invalid value: "%s": must be no more than %d characters' % (name, n)))
    if not rx.match(name):
        errs.append((field, "FieldValueInvalid", 'Invalid value: "%s": %s' % (name, what)))
    return errs


def validate_meta(rt, obj):
    meta = obj.get("metadata") or {}
    errs = []
    name = meta.get("name") or ""
    if not name:
        errs.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
    else:
        errs += validate_name(rt, name)
    for k, v in (meta.get("labels") or {}).items():
        if not valid_label_key(k):
            errs.append(("metadata.labels", "FieldValueInvalid", 'Invalid value: "%s": name part must consist of '
                         "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                         "character" % k))
        if not valid_label_value(v):
            errs.append(("metadata.labels", "FieldValueInvalid", 'Invalid value: "%s": a valid label must be an '
                         "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
                         "and end with an alphanumeric character" % v))
    ann = meta.get("annotations") or {}
    for k, v in ann.items():
        if not valid_label_key(k):
            errs.append(("metadata.annotations", "FieldValueInvalid", 'Invalid value: "%s": name part must consist'
                         " of alphanumeric characters, '-', '_' or '.'" % k))
        if not isinstance(v, str):
            errs.append(("metadata.annotations", "FieldValueTypeInvalid", "annotation values must be strings"))
    if sum(len(k) + len(v) for k, v in ann.items() if isinstance(v, str)) > 256 * 1024:
        errs.append(("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes"))
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for f in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(f):
                errs.append(("metadata.ownerReferences[%d].%s" % (i, f), "FieldValueRequired", "Required value"))
    if sum(1 for r in meta.get("ownerReferences") or [] if r.get("controller")) > 1:
        errs.append(("metadata.ownerReferences", "FieldValueInvalid",
                     "Invalid value: only one reference can have Controller set to true"))
    return errs


# ---------------------------------------------------------------------------------------- per kind

def _pull_policy(image):
    last = (image or "").split("/")[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod(pod):
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            c.setdefault("imagePullPolicy", _pull_policy(c.get("image")))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")
            for e in c.get("env") or []:
                fr = (e.get("valueFrom") or {}).get("fieldRef")
                if fr is not None:
                    fr.setdefault("apiVersion", "v1")
    for v in spec.get("volumes") or []:
        if "configMap" in v:
            v["configMap"].setdefault("defaultMode", 420)
        if "secret" in v:
            v["secret"].setdefault("defaultMode", 420)
    return pod


def admit_pod_builtin(pod, sa_exists):
    """The ServiceAccount and DefaultTolerationSeconds admission plugins. Returns an error string
    when the service account does not exist."""
    spec = pod["spec"]
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    sa_obj = sa_exists(sa)
    if sa_obj is None:
        return 'error looking up service account %s/%s: serviceaccount "%s" not found' % (
            pod["metadata"].get("namespace"), sa, sa)
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = sa_obj.get("automountServiceAccountToken", True)
    mount_path = "/var/run/secrets/kubernetes.io/serviceaccount"
    already = any(m.get("mountPath") == mount_path for c in spec.get("containers") or []
                  for m in c.get("volumeMounts") or [])
    if automount and not already:
        vname = "kube-api-access-" + gen_suffix()
        spec.setdefault("volumes", []).append({"name": vname, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}})
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or []:
                c.setdefault("volumeMounts", []).append({"name": vname, "readOnly": True, "mountPath": mount_path})
    tol = spec.setdefault("tolerations", [])
    for t in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(x.get("key") == t and x.get("effect") in ("NoExecute", None, "") for x in tol):
            tol.append({"key": t, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    return None


def pod_qos(pod):
    cs = (pod.get("spec") or {}).get("containers") or []
    reqs = [((c.get("resources") or {}).get("requests") or {}, (c.get("resources") or {}).get("limits") or {})
            for c in cs]
    if all(not r and not lim for r, lim in reqs):
        return "BestEffort"
    if all(lim.get("cpu") and lim.get("memory") and r.get("cpu", lim["cpu"]) == lim["cpu"]
           and r.get("memory", lim["memory"]) == lim["memory"] for r, lim in reqs):
        return "Guaranteed"
    return "Burstable"


def validate_pod(pod, old=None):
    spec = pod.get("spec") or {}
    errs = []
    if not spec.get("containers"):
        errs.append(("spec.containers", "FieldValueRequired", "Required value"))
    names = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            f = "spec.%s[%d]" % (key, i)
            if not isinstance(c, dict):
                errs.append((f, "FieldValueTypeInvalid", "Invalid value: must be an object"))
                continue
            if not c.get("name"):
                errs.append((f + ".name", "FieldValueRequired", "Required value"))
            elif c["name"] in names:
                errs.append((f + ".name", "FieldValueDuplicate", 'Duplicate value: "%s"' % c["name"]))
            else:
                names.add(c["name"])
            if not c.get("image") and old is None:
                errs.append((f + ".image", "FieldValueRequired", "Required value"))
            if key == "initContainers" and c.get("restartPolicy") is not None:
                errs.append((f + ".restartPolicy", "FieldValueForbidden",
                             "Forbidden: may not be set for init containers"))  # SidecarContainers is 1.28+
    vnames = set()
    for i, v in enumerate(spec.get("volumes") or []):
        if v.get("name") in vnames:
            errs.append(("spec.volumes[%d].name" % i, "FieldValueDuplicate", 'Duplicate value: "%s"' % v.get("name")))
        vnames.add(v.get("name"))
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            for j, m in enumerate(c.get("volumeMounts") or [] if isinstance(c, dict) else []):
                if m.get("name") not in vnames:
                    errs.append(("spec.%s[%d].volumeMounts[%d].name" % (key, i, j), "FieldValueNotFound",
                                 'Not found: "%s"' % m.get("name")))
    if old is not None:
        def strip(s):
            s = copy.deepcopy(s)
            for key in ("containers", "initContainers"):
                for c in s.get(key) or []:
                    c.pop("image", None)
            s.pop("activeDeadlineSeconds", None)
            s.pop("tolerations", None)
            return s
        if strip(spec) != strip(old.get("spec") or {}):
            errs.append(("spec", "FieldValueForbidden", "Forbidden: pod updates may not change fields other than "
                         "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                         "`spec.tolerations` (only additions to existing tolerations),"
                         "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"))
    return errs


def default_service(svc):
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p.get("port"))
    return svc


def validate_service(svc, old=None):
    spec = svc.get("spec") or {}
    errs = []
    headless = spec.get("clusterIP") == "None"
    if not spec.get("ports") and not headless and spec.get("type") != "ExternalName":
        errs.append(("spec.ports", "FieldValueRequired", "Required value"))
    seen = set()
    for i, p in enumerate(spec.get("ports") or []):
        port = p.get("port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            errs.append(("spec.ports[%d].port" % i, "FieldValueInvalid",
                         "Invalid value: %s: must be between 1 and 65535, inclusive" % json.dumps(port)))
        if len(spec.get("ports")) > 1 and not p.get("name"):
            errs.append(("spec.ports[%d].name" % i, "FieldValueRequired", "Required value"))
        k = (port, p.get("protocol"))
        if k in seen:
            errs.append(("spec.ports[%d]" % i, "FieldValueDuplicate", "Duplicate value: %s" % json.dumps(
                {"port": port, "protocol": p.get("protocol")})))
        seen.add(k)
    if spec.get("type") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        errs.append(("spec.type", "FieldValueNotSupported", 'Unsupported value: "%s": supported values: '
                     '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"' % spec.get("type")))
    if old is not None:
        oip = (old.get("spec") or {}).get("clusterIP")
        if spec.get("clusterIP") != oip:
            errs.append(("spec.clusterIPs[0]", "FieldValueInvalid",
                         'Invalid value: []string{"%s"}: may not change once set' % spec.get("clusterIP")))
    return errs


def normalize_secret(sec):
    data = sec.get("data")
    if data is not None and not isinstance(data, dict):
        raise bad_request('Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal into '
                          'Go struct field Secret.data of type map[string][]uint8')
    for k, v in (data or {}).items():
        if not isinstance(v, str):
            raise bad_request('Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal '
                              'into Go struct field Secret.data of type []uint8')
        try:
            base64.b64decode(v.encode(), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request('Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input')
    sd = sec.pop("stringData", None)
    if sd:
        data = sec.setdefault("data", {}) if sec.get("data") is not None else sec.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
    sec.setdefault("type", "Opaque")
    return sec


def _validate_keys(obj, fields, total_raw):
    errs = []
    size = 0
    for f in fields:
        for k, v in (obj.get(f) or {}).items():
            if not _CONFIG_KEY.match(k) or len(k) > 253:
                errs.append(("%s[%s]" % (f, k), "FieldValueInvalid", 'Invalid value: "%s": a valid config key must '
                             "consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
                             "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')" % k))
            size += total_raw(f, v)
    if size > 1048576:
        errs.append(("data" if fields[0] == "data" else fields[0], "FieldValueTooLong",
                     "Too long: must have at most 1048576 bytes"))
    return errs


def validate_secret(sec, old=None):
    errs = _validate_keys(sec, ["data"], lambda f, v: len(base64.b64decode(v)))
    data = sec.get("data") or {}
    if sec.get("type") == "kubernetes.io/tls":
        for k in ("tls.crt", "tls.key"):
            if k not in data:
                errs.append(("data[%s]" % k, "FieldValueRequired", "Required value"))
    if old is not None:
        if sec.get("type") != old.get("type"):
            errs.append(("type", "FieldValueInvalid", 'Invalid value: "%s": field is immutable' % sec.get("type")))
        if old.get("immutable") and (sec.get("data") != old.get("data")):
            errs.append(("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"))
    return errs


def validate_configmap(cm, old=None):
    errs = _validate_keys(cm, ["data", "binaryData"],
                          lambda f, v: len(v.encode()) if f == "data" else len(base64.b64decode(v)))
    for k in (cm.get("data") or {}):
        if k in (cm.get("binaryData") or {}):
            errs.append(("data[%s]" % k, "FieldValueInvalid", "Invalid value: duplicate of key present in binaryData"))
    for k, v in (cm.get("data") or {}).items():
        if not isinstance(v, str):
            raise bad_request('ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
                              'into Go struct field ConfigMap.data of type string')
    if old is not None and old.get("immutable"):
        if cm.get("data") != old.get("data") or cm.get("binaryData") != old.get("binaryData"):
            errs.append(("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"))
    return errs


def default_mwc(mwc):
    for w in mwc.get("webhooks") or []:
        w.setdefault("failurePolicy", "Fail")
        w.setdefault("matchPolicy", "Equivalent")
        w.setdefault("namespaceSelector", {})
        w.setdefault("objectSelector", {})
        w.setdefault("timeoutSeconds", 10)
        w.setdefault("reinvocationPolicy", "Never")
        for r in w.get("rules") or []:
            r.setdefault("scope", "*")
        svc = (w.get("clientConfig") or {}).get("service")
        if svc is not None:
            svc.setdefault("port", 443)
    return mwc


def validate_mwc(mwc, old=None):
    errs = []
    names = set()
    for i, w in enumerate(mwc.get("webhooks") or []):
        f = "webhooks[%d]" % i
        n = w.get("name") or ""
        if not n:
            errs.append((f + ".name", "FieldValueRequired", "Required value"))
        elif len(n.split(".")) < 3 or not _DNS1123_SUB.match(n):
            errs.append((f + ".name", "FieldValueInvalid", 'Invalid value: "%s": should be a domain with at least '
                         "three segments separated by dots" % n))
        if n in names:
            errs.append((f + ".name", "FieldValueDuplicate", 'Duplicate value: "%s"' % n))
        names.add(n)
        if not w.get("sideEffects"):
            errs.append((f + ".sideEffects", "FieldValueRequired", "Required value: must specify one of None, NoneOnDryRun"))
        if not w.get("admissionReviewVersions"):
            errs.append((f + ".admissionReviewVersions", "FieldValueRequired",
                         "Required value: must specify one of v1, v1beta1"))
        cc = w.get("clientConfig") or {}
        if ("url" in cc) == ("service" in cc):
            errs.append((f + ".clientConfig", "FieldValueRequired",
                         "Required value: exactly one of url or service is required"))
        if w.get("failurePolicy") not in ("Fail", "Ignore"):
            errs.append((f + ".failurePolicy", "FieldValueNotSupported", 'Unsupported value: "%s": supported values: '
                         '"Fail", "Ignore"' % w.get("failurePolicy")))
        if not 1 <= int(w.get("timeoutSeconds") or 0) <= 30:
            errs.append((f + ".timeoutSeconds", "FieldValueInvalid",
                         "Invalid value: %s: the timeout value must be between 1 and 30 seconds" % w.get("timeoutSeconds")))
    return errs


def validate_crd(crd, old=None):
    errs = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    want = "%s.%s" % (names.get("plural"), spec.get("group"))
    if crd["metadata"].get("name") != want:
        errs.append(("metadata.name", "FieldValueInvalid", 'Invalid value: "%s": must be spec.names.plural+"."+spec.group'
                     % crd["metadata"].get("name")))
    if not spec.get("group") or "." not in spec.get("group", ""):
        errs.append(("spec.group", "FieldValueInvalid", 'Invalid value: "%s": should be a domain with at least one dot'
                     % spec.get("group")))
    for f in ("plural", "kind"):
        if not names.get(f):
            errs.append(("spec.names." + f, "FieldValueRequired", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(("spec.scope", "FieldValueNotSupported", 'Unsupported value: "%s": supported values: "Cluster", '
                     '"Namespaced"' % spec.get("scope")))
    vs = spec.get("versions") or []
    if not vs:
        errs.append(("spec.versions", "FieldValueInvalid", "Invalid value: must have exactly one version marked as storage version"))
    elif sum(1 for v in vs if v.get("storage")) != 1:
        errs.append(("spec.versions", "FieldValueInvalid", "Invalid value: must have exactly one version marked as storage version"))
    for i, v in enumerate(vs):
        if not (v.get("schema") or {}).get("openAPIV3Schema"):
            errs.append(("spec.versions[%d].schema.openAPIV3Schema" % i, "FieldValueRequired",
                         "Required value: schemas are required"))
    if old is not None:
        if spec.get("group") != (old.get("spec") or {}).get("group"):
            errs.append(("spec.group", "FieldValueInvalid", "Invalid value: field is immutable"))
        if names.get("plural") != ((old.get("spec") or {}).get("names") or {}).get("plural"):
            errs.append(("spec.names.plural", "FieldValueInvalid", "Invalid value: field is immutable"))
    return errs


def crd_status(crd, now):
    spec = crd.get("spec") or {}
    names = copy.deepcopy(spec.get("names") or {})
    names.setdefault("singular", (names.get("kind") or "").lower())
    names.setdefault("listKind", (names.get("kind") or "") + "List")
    stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    old = crd.get("status") or {}
    storedv = list(dict.fromkeys((old.get("storedVersions") or []) + stored))
    return {"conditions": [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
         "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": now}],
        "acceptedNames": names, "storedVersions": storedv}


def default_crd(crd):
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    for v in spec.get("versions") or []:
        v.setdefault("served", True)
    return crd


def validate_event(ev, old=None):
    errs = []
    io = ev.get("involvedObject") or {}
    ns = (ev.get("metadata") or {}).get("namespace")
    if io.get("namespace") and io.get("namespace") != ns:
        errs.append(("involvedObject.namespace", "FieldValueInvalid",
                     'Invalid value: "%s": does not match event.namespace' % io.get("namespace")))
    return errs


def validate_cr(rt, obj, version, old=None):
    schema = rt.schemas.get(version) or rt.schemas.get(rt.storage_version)
    if schema is None:
        return []
    return schemamod.validate(obj, schema)
