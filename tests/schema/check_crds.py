#!/usr/bin/env python3
"""Schema test: checks the CustomResourceDefinitions in crds/ and the example policies.

    check_crds.py --crds DIR --examples DIR [-v]

1. Every CRD must be one the Kubernetes API server accepts: a structural schema
   (the rules of apiextensions-apiserver), defaults that validate, patterns that
   compile, exactly one storage version, a status subresource.
2. Every Pillion object in EXAMPLES/valid/*.yaml must pass its CRD's
   openAPIV3Schema, validated the way the API server does with kubectl's strict
   field validation: nulls pruned, defaults applied, unknown and duplicate fields
   rejected, x-kubernetes-list-type set/map items unique, patterns with Go RE2
   semantics.
3. Every file in EXAMPLES/invalid/ carries a `# schema: reject|accept|n/a` comment
   line: `reject` - at least one Pillion object in it fails the schema; `accept` -
   all of its Pillion objects pass (the rule is enforced by the operator only);
   `n/a` - outside the CRD schema (YAML syntax, metadata, apiVersion): only counted.

Exits 0 when every check passes, 1 otherwise (2 on a usage error). Prints one line
per failure and a summary line. Needs only python3-yaml and python3-jsonschema.
"""

import argparse
import copy
import json
import os
import re
import sys

import jsonschema
import yaml

PILLION_EXTS = (".yaml", ".yml", ".json")
OPENAPI_TYPES = {"string", "number", "integer", "boolean", "array", "object"}
# Fields of apiextensions.k8s.io/v1 JSONSchemaProps.
SCHEMA_KEYS = {
    "id", "$schema", "$ref", "description", "type", "format", "title", "default",
    "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength",
    "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf",
    "enum", "maxProperties", "minProperties", "required", "items", "allOf", "oneOf",
    "anyOf", "not", "properties", "additionalProperties", "patternProperties",
    "dependencies", "additionalItems", "definitions", "externalDocs", "example",
    "nullable", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
# Not supported by the API server in a CRD schema.
FORBIDDEN_KEYS = {
    "id": "id is not supported",
    "$ref": "$ref is not supported",
    "definitions": "definitions is not supported",
    "dependencies": "dependencies is not supported",
    "patternProperties": "patternProperties is not supported",
    "additionalItems": "additionalItems is not supported",
    "x-kubernetes-validations": "CEL validation rules are not used by Pillion (kube-apiserver 1.26 baseline)",
}
# Not allowed inside allOf/anyOf/oneOf/not (value validations only).
JUNCTOR_FORBIDDEN = ("type", "default", "description", "nullable", "additionalProperties",
                     "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                     "x-kubernetes-int-or-string", "x-kubernetes-list-type",
                     "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
                     "x-kubernetes-validations")
JUNCTORS = ("allOf", "anyOf", "oneOf")
PRINTER_COLUMN_TYPES = {"integer", "number", "string", "boolean", "date"}
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
MARKER = re.compile(r"#\s*schema:\s*(reject|accept|n/a)(\s|$)")


# ---------------------------------------------------------------------------
# YAML loading: YAML 1.1 as Kubernetes tooling reads it, except that timestamps
# stay strings (they are strings in JSON), keys become strings, and duplicate keys
# are recorded (strict field validation rejects duplicate fields).


class Loader(yaml.SafeLoader):
    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates = []


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _key_string(key):
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return key if isinstance(key, str) else str(key)


def _construct_mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (list, dict)):
            raise yaml.constructor.ConstructorError(
                None, None, "found unhashable key", key_node.start_mark)
        key = _key_string(key)
        if key in mapping:
            loader.duplicates.append((key, key_node.start_mark.line + 1))
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_documents(path):
    """Returns [(doc_number, value, duplicates)], raising on a syntax error."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        # A JSON file holds one object, or a stream of them, like kubectl reads.
        dups = []

        def pairs(items):
            obj = {}
            for key, value in items:
                if key in obj:
                    dups.append((key, text.count("\n", 0, pos) + 1))
                obj[key] = value
            return obj

        decoder, docs, pos = json.JSONDecoder(object_pairs_hook=pairs), [], 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                break
            value, pos = decoder.raw_decode(text, pos)
            docs.append((len(docs) + 1, value, dups))
            dups = []
        return docs
    loader = Loader(text)
    docs = []
    try:
        while loader.check_data():
            value = loader.get_data()
            docs.append((len(docs) + 1, value, loader.duplicates))
            loader.duplicates = []
    finally:
        loader.dispose()
    return docs


def list_files(directory):
    return sorted(os.path.join(directory, n) for n in os.listdir(directory)
                  if n.endswith(PILLION_EXTS) and os.path.isfile(os.path.join(directory, n)))


# ---------------------------------------------------------------------------
# Go RE2 patterns run with Python's re: translate the few places where the two
# differ so a pattern means here what it means in the API server.

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_PERL_CLASSES = {"d": "0-9", "s": "\\t\\n\\f\\r ", "w": "0-9A-Za-z_"}


def re2_to_python(pattern):
    """Returns (python_pattern, problems): RE2 semantics in Python re syntax."""
    out, problems = [], []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                problems.append("trailing backslash")
                break
            e = pattern[i + 1]
            i += 2
            if e in "dsw":
                out.append(_PERL_CLASSES[e] if in_class else "[" + _PERL_CLASSES[e] + "]")
            elif e in "DSW":
                if in_class:
                    problems.append("\\%s inside a character class is not supported by this checker" % e)
                out.append("[^" + _PERL_CLASSES[e.lower()] + "]")
            elif e == "z":
                out.append("\\Z")
            elif e == "Z":
                problems.append("\\Z is not RE2 syntax")
            elif e.isdigit() and e != "0":
                problems.append("backreferences are not RE2 syntax")
            elif e in "pP":
                problems.append("\\%s{...} Unicode classes are not supported by this checker" % e)
            elif e == "x" and i < n and pattern[i] == "{":
                end = pattern.find("}", i)
                if end < 0:
                    problems.append("unterminated \\x{")
                    break
                out.append("\\U%08x" % int(pattern[i + 1:end] or "0", 16))
                i = end + 1
            else:
                out.append("\\" + e)
            continue
        if in_class:
            if c == "]":
                in_class = False
                out.append(c)
            elif c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2:end] if end > 0 else ""
                negated = name.startswith("^")
                if end < 0 or name.lstrip("^") not in _POSIX_CLASSES or negated:
                    problems.append("unsupported POSIX class %r" % pattern[i:end + 2])
                    out.append("\\[")
                    i += 1
                    continue
                out.append(_POSIX_CLASSES[name])
                i = end + 2
                continue
            elif c == "[":
                out.append("\\[")
            else:
                out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if c == "$":
            out.append("\\Z")  # RE2's $ matches only at the end of the text
        elif c == "(" and pattern.startswith("(?", i):
            rest = pattern[i + 2:i + 4]
            if rest[:1] in ("=", "!", ">") or rest in ("<=", "<!") or rest[:2] == "P=":
                problems.append("lookaround, atomic groups and named backreferences are not RE2 syntax")
            out.append(c)
        elif c == "{":
            m = re.match(r"\{(\d+)(,(\d*))?\}", pattern[i:])
            if m and any(int(x) > 1000 for x in (m.group(1), m.group(3)) if x):
                problems.append("repetition count above 1000 is not RE2 syntax")
            out.append(c)
        else:
            out.append(c)
        i += 1
    if in_class:
        problems.append("missing closing ]")
    return "".join(out), problems


# ---------------------------------------------------------------------------
# Validation of a value against a CRD schema node, the way the API server does.


PATTERN_ORIGIN = {}  # translated pattern -> the RE2 pattern in the CRD, for messages


def to_draft4(node):
    """A Draft 4 schema that behaves like the Kubernetes schema node."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format"):
            continue
        if key == "properties":
            out[key] = {k: to_draft4(v) for k, v in value.items()}
        elif key in ("items", "not", "additionalProperties") and isinstance(value, dict):
            out[key] = to_draft4(value)
        elif key in JUNCTORS:
            out[key] = [to_draft4(v) for v in value]
        elif key == "pattern" and isinstance(value, str):
            out[key] = re2_to_python(value)[0]
            PATTERN_ORIGIN[out[key]] = value
        else:
            out[key] = copy.deepcopy(value)
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and not preserve:
        out["additionalProperties"] = False  # kubectl strict field validation
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if node.get("x-kubernetes-int-or-string") is True and "type" not in node:
        out["type"] = ["integer", "string"]
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = (out["type"] if isinstance(out["type"], list) else [out["type"]]) + ["null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    return out


def decode_like_apiserver(node, value):
    """Applies defaults and prunes nulls of non-nullable fields, in place.

    The API server does this on decoding, before validation: a null in a field
    that is not nullable becomes the field's default, or is dropped.
    """
    if not isinstance(node, dict):
        return value
    if isinstance(value, dict):
        props = node.get("properties") or {}
        addl = node.get("additionalProperties")
        known = {}
        for key in list(value):
            sub = props.get(key) if key in props else (addl if isinstance(addl, dict) else None)
            if not isinstance(sub, dict):
                continue
            if value[key] is None and not sub.get("nullable"):
                if "default" not in sub:
                    del value[key]
                    continue
                value[key] = copy.deepcopy(sub["default"])
            known[key] = sub
        for key, sub in props.items():
            if key not in value and isinstance(sub, dict) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
                known[key] = sub
        for key, sub in known.items():
            value[key] = decode_like_apiserver(sub, value[key])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for idx, item in enumerate(value):
            value[idx] = decode_like_apiserver(node["items"], item)
    return value


def format_path(parts):
    s = ""
    for p in parts:
        if isinstance(p, int):
            s += "[%d]" % p
        else:
            s += ("." if s else "") + str(p)
    return s or "(root)"


def list_map_errors(node, value, path):
    """x-kubernetes-list-type: map items must be unique by their map keys."""
    errors = []
    if not isinstance(node, dict):
        return errors
    if isinstance(value, dict):
        props = node.get("properties") or {}
        addl = node.get("additionalProperties")
        for key, sub in value.items():
            schema = props.get(key) if key in props else (addl if isinstance(addl, dict) else None)
            if schema is not None:
                errors += list_map_errors(schema, sub, path + [key])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        items = node["items"]
        if node.get("x-kubernetes-list-type") == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            seen = {}
            for idx, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                ident = tuple(json.dumps(item.get(k, (items.get("properties", {}).get(k) or {}).get("default")),
                                         sort_keys=True) for k in keys)
                if ident in seen:
                    desc = ",".join("%s=%s" % (k, v) for k, v in zip(keys, ident))
                    errors.append("%s: duplicate entry with key %s (same as item %d)"
                                  % (format_path(path + [idx]), desc, seen[ident]))
                else:
                    seen[ident] = idx
        for idx, item in enumerate(value):
            errors += list_map_errors(items, item, path + [idx])
    return errors


def validate_value(node, value, path=()):
    """Returns the errors of value (already decoded) against schema node."""
    validator = jsonschema.Draft4Validator(to_draft4(node))
    errors = []
    for err in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
        msg = err.message
        if err.validator == "pattern":
            msg = "%s does not match %r" % (shorten(repr(err.instance)),
                                            PATTERN_ORIGIN.get(err.validator_value, err.validator_value))
        errors.append("%s: %s" % (format_path(list(path) + list(err.absolute_path)), shorten(msg, 400)))
    errors += list_map_errors(node, value, list(path))
    return errors


# ---------------------------------------------------------------------------
# CRD checks.


def type_of(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def check_schema_node(node, path, errors, root=False, junctor=False, structural=None,
                      in_root_meta=False):
    """Appends structural-schema violations of node (and below) to errors.

    junctor: node is (inside) an allOf/anyOf/oneOf/not.
    structural: the node outside the junctors that this junctor node constrains.
    """
    def err(msg, sub=None):
        errors.append("%s: %s" % (path + ("." + sub if sub else ""), msg))

    if not isinstance(node, dict):
        err("must be a schema object")
        return
    for key in node:
        if key not in SCHEMA_KEYS:
            err("unknown field", key)
        elif key in FORBIDDEN_KEYS:
            err(FORBIDDEN_KEYS[key], key)
    if node.get("uniqueItems") is True:
        err("uniqueItems cannot be set to true since the runtime complexity becomes quadratic", "uniqueItems")
    t = node.get("type")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        err("must be true or undefined", "x-kubernetes-preserve-unknown-fields")
    if t is not None and t not in OPENAPI_TYPES:
        err("unsupported type %r (one of %s)" % (t, ", ".join(sorted(OPENAPI_TYPES))), "type")
    if int_or_string and t is not None:
        err("must be empty with x-kubernetes-int-or-string", "type")

    if junctor:
        # The one exception: int-or-string may spell out its two types in anyOf/allOf.
        int_or_string_branch = (
            structural is not None and structural.get("x-kubernetes-int-or-string") is True
            and set(node) <= {"type"} and node.get("type") in ("integer", "string"))
        for key in JUNCTOR_FORBIDDEN:
            if key in node and not (key == "type" and int_or_string_branch):
                err("must not be set inside allOf, anyOf, oneOf or not", key)
    else:
        if not t and not int_or_string and preserve is not True:
            err("must not be empty for specified object fields and array items", "type")
        if root:
            if t != "object":
                err("must be object at the root", "type")
            if node.get("nullable"):
                err("cannot be true at the root", "nullable")

    props = node.get("properties")
    addl = node.get("additionalProperties")
    if props is not None and not isinstance(props, dict):
        err("must be a map of schemas", "properties")
        props = None
    if addl is False:
        err("additionalProperties cannot be set to false", "additionalProperties")
    elif addl is not None and not isinstance(addl, (dict, bool)):
        err("must be a schema or a boolean", "additionalProperties")
    if props and addl is not None and addl is not True:
        err("additionalProperties and properties are mutual exclusive", "additionalProperties")
    if props and t not in (None, "object"):
        err("properties need type object", "type")
    items = node.get("items")
    if isinstance(items, list):
        err("items must be a schema object and not an array", "items")
        items = None
    if items is not None and t not in (None, "array"):
        err("items need type array", "type")
    if t == "array" and items is None and not junctor:
        err("must be specified for type array", "items")

    # Value validations sanity.
    for lo, hi in (("minimum", "maximum"), ("minLength", "maxLength"),
                   ("minItems", "maxItems"), ("minProperties", "maxProperties")):
        if isinstance(node.get(lo), (int, float)) and isinstance(node.get(hi), (int, float)) \
                and node[lo] > node[hi]:
            err("%s %s is greater than %s %s" % (lo, node[lo], hi, node[hi]), lo)
    for key in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
        if key in node and (type_of(node[key]) != "integer" or node[key] < 0):
            err("must be a non-negative integer", key)
    if "required" in node:
        req = node["required"]
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            err("must be a list of property names", "required")
        elif not junctor and props is not None:
            for r in req:
                if r not in props:
                    err("required property %r is not declared in properties" % r, "required")
        elif junctor and structural is not None:
            sprops = structural.get("properties") or {}
            for r in req:
                if structural.get("properties") is not None and r not in sprops:
                    err("required property %r is not declared in the structural schema" % r, "required")
    if "enum" in node:
        enum = node["enum"]
        if not isinstance(enum, list) or not enum:
            err("must be a non-empty list", "enum")
        else:
            want = t or (structural or {}).get("type")
            for idx, v in enumerate(enum):
                vt = type_of(v)
                if want and not (vt == want or (want == "number" and vt == "integer")):
                    err("value %r is a %s, not a %s (quote it?)" % (v, vt, want), "enum[%d]" % idx)
    if "pattern" in node:
        pat = node["pattern"]
        if not isinstance(pat, str):
            err("must be a string", "pattern")
        else:
            py, problems = re2_to_python(pat)
            for p in problems:
                err("%s: %r" % (p, pat), "pattern")
            try:
                re.compile(pat)
                re.compile(py)
            except re.error as e:
                err("does not compile: %s: %r" % (e, pat), "pattern")
            if not (pat.startswith("^") and pat.endswith("$")):
                err("must be anchored with ^...$: %r" % pat, "pattern")

    # List and map types.
    list_type = node.get("x-kubernetes-list-type")
    map_type = node.get("x-kubernetes-map-type")
    map_keys = node.get("x-kubernetes-list-map-keys")
    if map_type is not None:
        if t != "object":
            err("must be object if x-kubernetes-map-type is specified", "type")
        if map_type not in ("atomic", "granular"):
            err("must be atomic or granular", "x-kubernetes-map-type")
    if list_type is not None:
        if t != "array":
            err("must be array if x-kubernetes-list-type is specified", "type")
        if list_type not in ("atomic", "set", "map"):
            err("must be atomic, set or map", "x-kubernetes-list-type")
    if map_keys and list_type != "map":
        err("must be map if x-kubernetes-list-map-keys is non-empty", "x-kubernetes-list-type")
    if isinstance(items, dict):
        it = items.get("type")
        if list_type == "set":
            if it == "object" and items.get("x-kubernetes-map-type") != "atomic":
                err("must be atomic as item of a list with x-kubernetes-list-type=set",
                    "items.x-kubernetes-map-type")
            if it == "array" and items.get("x-kubernetes-list-type", "atomic") != "atomic":
                err("must be atomic as item of a list with x-kubernetes-list-type=set",
                    "items.x-kubernetes-list-type")
            if items.get("nullable"):
                err("cannot be nullable when x-kubernetes-list-type is set", "items.nullable")
        if list_type == "map":
            if not map_keys:
                err("must not be empty if x-kubernetes-list-type is map", "x-kubernetes-list-map-keys")
            if it != "object":
                err("must be object if parent array's x-kubernetes-list-type is map", "items.type")
            if items.get("nullable"):
                err("cannot be nullable when x-kubernetes-list-type is map", "items.nullable")
            iprops = items.get("properties") or {}
            for k in map_keys or []:
                kp = iprops.get(k)
                if kp is None:
                    err("entries must all be names of item properties", "x-kubernetes-list-map-keys")
                    continue
                if kp.get("type") in ("array", "object"):
                    err("must be a scalar type if parent array's x-kubernetes-list-type is map",
                        "items.properties.%s.type" % k)
                if k not in (items.get("required") or []) and "default" not in kp:
                    err("this property is in x-kubernetes-list-map-keys, so it must have a default"
                        " or be a required property", "items.properties.%s" % k)
                if kp.get("nullable"):
                    err("this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                        "items.properties.%s.nullable" % k)

    # Defaults.
    if "default" in node and not junctor:
        if in_root_meta:
            err("must not be set in top-level apiVersion, kind or metadata", "default")
        else:
            for e in validate_value(node, copy.deepcopy(node["default"])):
                err("default value does not validate: " + e, "default")

    # Recurse.
    if props:
        for name, sub in props.items():
            sub_path = "%s.properties.%s" % (path, name)
            if root and name == "metadata" and not junctor:
                if sub != {"type": "object"}:
                    errors.append("%s: must be only {type: object} (metadata is validated by the"
                                  " API server itself)" % sub_path)
                continue
            sstruct = None
            if junctor and structural is not None:
                sstruct = (structural.get("properties") or {}).get(name)
                if sstruct is None:
                    errors.append("%s: must not be specified in a nested context without a"
                                  " structural counterpart" % sub_path)
            check_schema_node(sub, sub_path, errors, junctor=junctor, structural=sstruct,
                              in_root_meta=root and name in ("apiVersion", "kind"))
    if isinstance(addl, dict):
        sstruct = structural.get("additionalProperties") if (junctor and structural) else None
        check_schema_node(addl, path + ".additionalProperties", errors, junctor=junctor,
                          structural=sstruct if isinstance(sstruct, dict) else None)
    if isinstance(items, dict):
        sstruct = None
        if junctor and structural is not None:
            sstruct = structural.get("items")
            if not isinstance(sstruct, dict):
                errors.append("%s.items: must not be specified in a nested context without a"
                              " structural counterpart" % path)
                sstruct = None
        check_schema_node(items, path + ".items", errors, junctor=junctor, structural=sstruct)
    base = structural if junctor else node
    for j in JUNCTORS:
        if j in node:
            if not isinstance(node[j], list) or not node[j]:
                err("must be a non-empty list of schemas", j)
                continue
            for idx, sub in enumerate(node[j]):
                check_schema_node(sub, "%s.%s[%d]" % (path, j, idx), errors, junctor=True, structural=base)
    if "not" in node:
        check_schema_node(node["not"], path + ".not", errors, junctor=True, structural=base)


def check_crd(crd, where):
    """Returns (errors, {(group, version, kind): schema})."""
    errors = []
    kinds = {}

    def err(path, msg):
        errors.append("%s: %s: %s" % (where, path, msg))

    if crd.get("apiVersion") != "apiextensions.k8s.io/v1":
        err("apiVersion", "must be apiextensions.k8s.io/v1, got %r" % crd.get("apiVersion"))
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        err("spec", "is required")
        return errors, kinds
    group = spec.get("group")
    names = spec.get("names") or {}
    if not isinstance(group, str) or not group or "." not in group:
        err("spec.group", "must be a DNS subdomain with at least one dot, got %r" % group)
    for key in ("plural", "singular", "kind", "listKind"):
        if not isinstance(names.get(key), str) or not names.get(key):
            err("spec.names." + key, "is required")
    for key in ("plural", "singular"):
        if isinstance(names.get(key), str) and not DNS1123_LABEL.match(names[key]):
            err("spec.names." + key, "must be a lowercase DNS-1123 label, got %r" % names[key])
    for idx, sn in enumerate(names.get("shortNames") or []):
        if not isinstance(sn, str) or not DNS1123_LABEL.match(sn):
            err("spec.names.shortNames[%d]" % idx, "must be a lowercase DNS-1123 label, got %r" % sn)
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        err("spec.names.listKind", "kind and listKind may not be the same")
    expected_name = "%s.%s" % (names.get("plural"), group)
    if (crd.get("metadata") or {}).get("name") != expected_name:
        err("metadata.name", "must be %r, got %r" % (expected_name, (crd.get("metadata") or {}).get("name")))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        err("spec.scope", "must be Namespaced or Cluster, got %r" % spec.get("scope"))
    if spec.get("preserveUnknownFields"):
        err("spec.preserveUnknownFields", "must be false")
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        err("spec.versions", "must have at least one version")
        return errors, kinds
    storage = [v.get("name") for v in versions if isinstance(v, dict) and v.get("storage") is True]
    if len(storage) != 1:
        err("spec.versions", "must have exactly one storage version, got %d" % len(storage))
    seen = set()
    for idx, version in enumerate(versions):
        vpath = "spec.versions[%d]" % idx
        if not isinstance(version, dict):
            err(vpath, "must be an object")
            continue
        vname = version.get("name")
        if not isinstance(vname, str) or not DNS1123_LABEL.match(vname):
            err(vpath + ".name", "must be a DNS-1123 label, got %r" % vname)
        if vname in seen:
            err(vpath + ".name", "duplicate version %r" % vname)
        seen.add(vname)
        for key in ("served", "storage"):
            if not isinstance(version.get(key), bool):
                err(vpath + "." + key, "must be a boolean")
        if not isinstance((version.get("subresources") or {}).get("status"), dict):
            err(vpath + ".subresources.status", "is required (the operator writes status.conditions)")
        for cidx, col in enumerate(version.get("additionalPrinterColumns") or []):
            cpath = "%s.additionalPrinterColumns[%d]" % (vpath, cidx)
            if not isinstance(col, dict) or not col.get("name"):
                err(cpath + ".name", "is required")
                continue
            if col.get("type") not in PRINTER_COLUMN_TYPES:
                err(cpath + ".type", "must be one of %s, got %r"
                    % (", ".join(sorted(PRINTER_COLUMN_TYPES)), col.get("type")))
            if not isinstance(col.get("jsonPath"), str) or not col["jsonPath"].startswith("."):
                err(cpath + ".jsonPath", "must be a JSON path starting with '.'")
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            err(vpath + ".schema.openAPIV3Schema", "is required")
            continue
        node_errors = []
        check_schema_node(schema, vpath + ".schema.openAPIV3Schema", node_errors, root=True)
        try:
            jsonschema.Draft4Validator.check_schema(to_draft4(schema))
        except jsonschema.exceptions.SchemaError as e:
            node_errors.append("%s.schema.openAPIV3Schema.%s: not a valid schema: %s"
                               % (vpath, format_path(list(e.absolute_path)), shorten(e.message)))
        errors += ["%s: %s" % (where, e) for e in node_errors]
        if version.get("served") and isinstance(group, str) and isinstance(vname, str):
            kinds[(group, vname, names.get("kind"))] = schema
    return errors, kinds


# ---------------------------------------------------------------------------
# Examples.


class Checker:
    def __init__(self, verbose):
        self.verbose = verbose
        self.failures = []
        self.kinds = {}
        self.groups = set()

    def fail(self, msg):
        self.failures.append(msg)
        print(msg)

    def load_crds(self, directory):
        ok = 0
        if not os.path.isdir(directory):
            self.fail("%s: not a directory" % directory)
            return ok
        files = list_files(directory)
        if not files:
            self.fail("%s: no CRD files" % directory)
        for path in files:
            try:
                docs = load_documents(path)
            except (yaml.YAMLError, ValueError, OSError) as e:
                self.fail("%s: cannot parse: %s" % (path, one_line(e)))
                continue
            crds = 0
            for num, doc, dups in docs:
                if doc is None:
                    continue
                where = "%s:%d" % (path, num)
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    self.fail("%s: not a CustomResourceDefinition" % where)
                    continue
                crds += 1
                errors = ["%s: duplicate key %r on line %d" % (where, k, line) for k, line in dups]
                more, kinds = check_crd(doc, where)
                errors += more
                for key in kinds:
                    if key in self.kinds:
                        errors.append("%s: %s/%s %s is defined twice" % (where, key[0], key[1], key[2]))
                for e in errors:
                    self.fail(e)
                if not errors:
                    ok += 1
                self.kinds.update(kinds)
                self.groups.update(k[0] for k in kinds)
            if crds == 0:
                self.fail("%s: no CustomResourceDefinition in the file" % path)
        return ok

    def pillion_objects(self, path, docs):
        """Yields (where, obj, dups) for each object of a CRD group; other kinds are skipped."""
        for num, doc, dups in docs:
            if doc is None:
                continue
            where = "%s:%d" % (path, num)
            if not isinstance(doc, dict):
                yield where, doc, dups
                continue
            if isinstance(doc.get("kind"), str) and doc["kind"].endswith("List") \
                    and isinstance(doc.get("items"), list):
                # kind: List (or FooList), as kubectl get -o yaml prints: check each item.
                objects = [("%s items[%d]" % (where, i), item) for i, item in enumerate(doc["items"])]
            else:
                objects = [(where, doc)]
            for item_where, obj in objects:
                api = obj.get("apiVersion") if isinstance(obj, dict) else None
                if not isinstance(obj, dict) or (isinstance(api, str) and api.split("/")[0] in self.groups):
                    yield item_where, obj, dups

    def object_errors(self, obj, dups):
        """Errors the API server's schema validation would give for obj."""
        if not isinstance(obj, dict):
            return ["(root): must be an object, got %s" % type_of(obj)]
        errors = ["duplicate field %r (line %d)" % (k, line) for k, line in dups]
        api = obj.get("apiVersion")
        group, _, version = api.partition("/")
        schema = self.kinds.get((group, version, obj.get("kind")))
        if schema is None:
            return errors + ["no CRD serves %s %s" % (api, obj.get("kind"))]
        value = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        value = decode_like_apiserver(schema, value)
        return errors + validate_value(schema, value)

    @staticmethod
    def describe(where, obj):
        if not isinstance(obj, dict):
            return where
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        return "%s: %s %s/%s" % (where, obj.get("kind"), meta.get("namespace", "default"), meta.get("name"))

    def check_valid(self, directory):
        count = seen = 0
        if not os.path.isdir(directory):
            self.fail("%s: not a directory" % directory)
            return count
        for path in list_files(directory):
            try:
                docs = load_documents(path)
            except (yaml.YAMLError, ValueError, OSError) as e:
                self.fail("%s: cannot parse: %s" % (path, one_line(e)))
                continue
            for where, obj, dups in self.pillion_objects(path, docs):
                seen += 1
                errors = self.object_errors(obj, dups)
                for e in errors:
                    self.fail("%s: %s" % (self.describe(where, obj), e))
                if not errors:
                    count += 1
        if seen == 0:
            self.fail("%s: no Pillion objects found" % directory)
        return count

    def check_invalid(self, directory):
        counts = {"reject": 0, "accept": 0, "n/a": 0}
        if not os.path.isdir(directory):
            self.fail("%s: not a directory" % directory)
            return counts
        files = list_files(directory)
        if not files:
            self.fail("%s: no example files" % directory)
        for path in files:
            marks = set()
            # A JSON file cannot hold comments: its header lives in PATH.expect beside it.
            header = path + ".expect" if os.path.exists(path + ".expect") else path
            try:
                with open(header, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        s = line.strip()
                        if s and not s.startswith("#") and s != "---":
                            break
                        m = MARKER.match(s)
                        if m:
                            marks.add(m.group(1))
            except OSError as e:
                self.fail("%s: cannot read: %s" % (path, e))
                continue
            if len(marks) != 1:
                self.fail("%s: needs exactly one '# schema: reject|accept|n/a' line in its leading"
                          " comments, found %s" % (path, ", ".join(sorted(marks)) or "none"))
                continue
            mark = marks.pop()
            if mark == "n/a":
                counts[mark] += 1
                continue
            try:
                docs = load_documents(path)
            except (yaml.YAMLError, ValueError) as e:
                self.fail("%s: marked 'schema: %s' but does not parse (mark it n/a?): %s"
                          % (path, mark, one_line(e)))
                continue
            results = [(where, obj, self.object_errors(obj, dups))
                       for where, obj, dups in self.pillion_objects(path, docs)]
            if not results:
                self.fail("%s: marked 'schema: %s' but holds no Pillion object" % (path, mark))
                continue
            if mark == "reject":
                if not any(errs for _, _, errs in results):
                    self.fail("%s: marked 'schema: reject' but every Pillion object passes the schema" % path)
                    continue
                if self.verbose:
                    for where, obj, errs in results:
                        for e in errs:
                            print("  rejected as expected: %s: %s" % (self.describe(where, obj), e))
            else:
                bad = [(where, obj, errs) for where, obj, errs in results if errs]
                for where, obj, errs in bad:
                    for e in errs:
                        self.fail("%s: marked 'schema: accept' but the schema rejects it: %s"
                                  % (self.describe(where, obj), e))
                if bad:
                    continue
            counts[mark] += 1
        return counts


def shorten(text, limit=120):
    return text if len(text) <= limit else text[:limit - 5] + " ...)"


def one_line(e):
    return " ".join(str(e).split())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crds", required=True, help="directory holding the CRDs")
    parser.add_argument("--examples", required=True, help="directory holding valid/ and invalid/")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print why each 'schema: reject' example is rejected")
    args = parser.parse_args(argv)

    checker = Checker(args.verbose)
    crds_ok = checker.load_crds(args.crds)
    valid = checker.check_valid(os.path.join(args.examples, "valid"))
    counts = checker.check_invalid(os.path.join(args.examples, "invalid"))
    print("crds: %d ok; valid: %d objects ok; invalid: %d rejected by schema, %d operator-only, %d n/a; "
          "failures: %d" % (crds_ok, valid, counts["reject"], counts["accept"], counts["n/a"],
                            len(checker.failures)))
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main())
