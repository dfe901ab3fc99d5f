"""Structural OpenAPI v3 schemas of CRDs: pruning of unknown fields, defaulting, and validation of
the keywords Pillion's CRDs use (type, properties, items, required, enum, minimum/maximum,
minLength/maxLength, pattern, minItems/maxItems, additionalProperties, oneOf/anyOf of required
sets, nullable, x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string).  CEL rules
(x-kubernetes-validations) are not evaluated."""
import copy
import json
import re

_re_cache = {}


def _q(v):
    return json.dumps(v)


def prune_and_default(obj, schema, top=True):
    """Returns obj pruned of fields the schema does not know, with defaults filled in."""
    if schema is None:
        return obj
    if isinstance(obj, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
            return obj
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        out = {}
        for k, v in obj.items():
            if top and k in ("apiVersion", "kind", "metadata"):
                out[k] = v
            elif props is not None and k in props:
                out[k] = prune_and_default(v, props[k], False)
            elif isinstance(addl, dict):
                out[k] = prune_and_default(v, addl, False)
            elif addl is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[k] = v
            elif props is None and addl is None and schema.get("type") != "object":
                out[k] = v
        for k, sub in (props or {}).items():
            if k not in out and "default" in sub:
                out[k] = prune_and_default(copy.deepcopy(sub["default"]), sub, False)
        return out
    if isinstance(obj, list):
        items = schema.get("items")
        return [prune_and_default(i, items, False) for i in obj] if isinstance(items, dict) else obj
    return obj


def validate(obj, schema, path=""):
    """Returns causes: list of (field, reasonType, message)."""
    errs = []
    _validate(obj, schema, path, errs, top=True)
    return errs


def _type_ok(v, t, schema):
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(v, (int, str)) and not isinstance(v, bool)
    if t is None:
        return True
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "boolean":
        return isinstance(v, bool)
    return True


def _jtype(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _validate(v, s, path, errs, top=False):
    if s is None:
        return
    name = path or "<root>"
    if v is None:
        if not s.get("nullable"):
            errs.append((path, "FieldValueTypeInvalid",
                         'Invalid value: "null": %s in body must be of type %s: "null"' % (name, s.get("type"))))
        return
    t = s.get("type")
    if not _type_ok(v, t, s):
        errs.append((path, "FieldValueTypeInvalid", 'Invalid value: "%s": %s in body must be of type %s: "%s"'
                     % (_jtype(v), name, t, _jtype(v))))
        return
    if "enum" in s and v not in s["enum"]:
        errs.append((path, "FieldValueNotSupported", "Unsupported value: %s: supported values: %s"
                     % (_q(v), ", ".join(_q(e) for e in s["enum"]))))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s and (v < s["minimum"] or (s.get("exclusiveMinimum") and v == s["minimum"])):
            errs.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be greater than or "
                         "equal to %s" % (_q(v), name, s["minimum"])))
        if "maximum" in s and (v > s["maximum"] or (s.get("exclusiveMaximum") and v == s["maximum"])):
            errs.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be less than or "
                         "equal to %s" % (_q(v), name, s["maximum"])))
    if isinstance(v, str):
        if "maxLength" in s and len(v) > s["maxLength"]:
            errs.append((path, "FieldValueTooLong", "Too long: may not be longer than %d" % s["maxLength"]))
        if "minLength" in s and len(v) < s["minLength"]:
            errs.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be at least %d chars long"
                         % (_q(v), name, s["minLength"])))
        if "pattern" in s:
            rx = _re_cache.get(s["pattern"])
            if rx is None:
                rx = _re_cache[s["pattern"]] = re.compile(s["pattern"])
            if not rx.search(v):
                errs.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should match '%s'"
                             % (_q(v), name, s["pattern"])))
    if isinstance(v, list):
        if "maxItems" in s and len(v) > s["maxItems"]:
            errs.append((path, "FieldValueTooMany", "Too many: %d: must have at most %d items" % (len(v), s["maxItems"])))
        if "minItems" in s and len(v) < s["minItems"]:
            errs.append((path, "FieldValueInvalid", "Invalid value: %d: %s in body should have at least %d items"
                         % (len(v), name, s["minItems"])))
        lt = s.get("x-kubernetes-list-type")
        if lt == "set" and len({json.dumps(i, sort_keys=True) for i in v}) != len(v):
            errs.append((path, "FieldValueDuplicate", "Duplicate value: %s" % _q(v)))
        if lt == "map":
            keys = s.get("x-kubernetes-list-map-keys") or []
            seen = set()
            for i, item in enumerate(v):
                k = json.dumps([item.get(x) for x in keys]) if isinstance(item, dict) else None
                if k in seen:
                    errs.append(("%s[%d]" % (path, i), "FieldValueDuplicate", "Duplicate value: %s" % _q(
                        {x: item.get(x) for x in keys})))
                seen.add(k)
        for i, item in enumerate(v):
            _validate(item, s.get("items"), "%s[%d]" % (path, i), errs)
    if isinstance(v, dict):
        props = s.get("properties") or {}
        for r in s.get("required") or []:
            if r not in v:
                errs.append((_join(path, r), "FieldValueRequired", "Required value"))
        for k, sub in v.items():
            if top and k in ("apiVersion", "kind", "metadata"):
                continue
            if k in props:
                _validate(sub, props[k], _join(path, k), errs)
            elif isinstance(s.get("additionalProperties"), dict):
                _validate(sub, s["additionalProperties"], _join(path, k), errs)
        for comb in ("oneOf", "anyOf"):
            if comb in s:
                ok = 0
                for alt in s[comb]:
                    sub_errs = []
                    _validate(v, alt, path, sub_errs)
                    ok += not sub_errs
                if (comb == "oneOf" and ok != 1) or (comb == "anyOf" and ok < 1):
                    what = "must validate one and only one schema (oneOf)" if comb == "oneOf" else \
                        "must validate at least one schema (anyOf)"
                    errs.append((path, "FieldValueInvalid", "Invalid value: %s: %s" % (_q(v), what)))


def _join(path, k):
    return k if not path else path + "." + k


def list_map_keys(schema, path):
    """x-kubernetes-list-map-keys at a field path (tuple of ("f", name)/("k", ...) segments)."""
    s = schema
    for kind, name in path:
        if s is None:
            return None
        if kind == "f":
            s = (s.get("properties") or {}).get(name) or (
                s.get("additionalProperties") if isinstance(s.get("additionalProperties"), dict) else None)
        else:
            s = s.get("items")
    if s and s.get("x-kubernetes-list-type") == "map":
        return s.get("x-kubernetes-list-map-keys")
    return None
