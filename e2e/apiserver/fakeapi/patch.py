"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the field-ownership bookkeeping of
server-side apply (a set of field paths per manager, rendered as FieldsV1)."""
import copy
import json


class PatchError(Exception):
    pass


# ---------------------------------------------------------------- merge patch

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---------------------------------------------------------------- JSON patch

def _unescape(tok):
    return tok.replace("~1", "/").replace("~0", "~")


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError('invalid JSON pointer "%s"' % path)
    return [_unescape(t) for t in path[1:].split("/")]


def _index(container, tok, allow_end=False):
    if tok == "-" and allow_end:
        return len(container)
    if not tok.isdigit() or (len(tok) > 1 and tok[0] == "0"):
        raise PatchError('invalid array index "%s"' % tok)
    i = int(tok)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError("array index %d out of bounds" % i)
    return i


def _parent(doc, toks, path):
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError('doc is missing path: "%s"' % path)
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t)]
        else:
            raise PatchError('doc is missing path: "%s"' % path)
    return cur


def _get(doc, path):
    toks = _pointer(path)
    if not toks:
        return doc
    par = _parent(doc, toks, path)
    last = toks[-1]
    if isinstance(par, dict):
        if last not in par:
            raise PatchError('doc is missing path: "%s"' % path)
        return par[last]
    if isinstance(par, list):
        return par[_index(par, last)]
    raise PatchError('doc is missing path: "%s"' % path)


def _add(doc, path, value):
    toks = _pointer(path)
    if not toks:
        return value
    par = _parent(doc, toks, path)
    last = toks[-1]
    if isinstance(par, dict):
        par[last] = value
    elif isinstance(par, list):
        par.insert(_index(par, last, allow_end=True), value)
    else:
        raise PatchError('doc is missing path: "%s"' % path)
    return doc


def _remove(doc, path):
    toks = _pointer(path)
    if not toks:
        raise PatchError("cannot remove the whole document")
    par = _parent(doc, toks, path)
    last = toks[-1]
    if isinstance(par, dict):
        if last not in par:
            raise PatchError('unable to remove nonexistent key: %s: missing value' % last)
        return par.pop(last)
    if isinstance(par, list):
        return par.pop(_index(par, last))
    raise PatchError('doc is missing path: "%s"' % path)


def json_patch(doc, ops):
    """Apply a list of RFC 6902 operations to a deep copy of doc."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be an array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("invalid operation %s" % json.dumps(op))
        kind, path = op["op"], op.get("path")
        if path is None:
            raise PatchError("operation %s missing path" % kind)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            toks = _pointer(path)
            if not toks:
                doc = copy.deepcopy(op.get("value"))
            else:
                par = _parent(doc, toks, path)
                if isinstance(par, dict):
                    par[toks[-1]] = copy.deepcopy(op.get("value"))
                else:
                    par[_index(par, toks[-1])] = copy.deepcopy(op.get("value"))
        elif kind == "move":
            val = _remove(doc, op["from"])
            doc = _add(doc, path, val)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError("testing value %s failed" % path)
        else:
            raise PatchError("Unexpected kind: %s" % kind)
    return doc


# ---------------------------------------------------------------- field paths (SSA)
#
# A path is a tuple of segments; a segment is ("f", name) for a map field or ("k", keyjson) for an
# item of an associative list (x-kubernetes-list-type: map).  Other lists are atomic: the whole
# list is one leaf.  list_keys(path_of_list) -> list of key field names or None.

_STRIP_TOP = ("apiVersion", "kind")
_STRIP_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
               "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
               "generateName")


def _item_key(item, keys):
    return json.dumps({k: item.get(k) for k in keys if k in item}, sort_keys=True, separators=(",", ":"))


def field_paths(obj, list_keys, prefix=(), top=True):
    """The set of leaf paths (and associative list item paths) set in obj."""
    out = set()
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        if top and k in _STRIP_TOP:
            continue
        if top and k == "metadata" and isinstance(v, dict):
            meta = {mk: mv for mk, mv in v.items() if mk not in _STRIP_META}
            out |= _paths_value(meta, list_keys, prefix + (("f", "metadata"),)) if meta else set()
            continue
        out |= _paths_value(v, list_keys, prefix + (("f", k),))
    return out


def _paths_value(v, list_keys, path):
    if isinstance(v, dict):
        if not v:
            return {path}
        out = set()
        for k, sub in v.items():
            out |= _paths_value(sub, list_keys, path + (("f", k),))
        return out
    if isinstance(v, list):
        keys = list_keys(path)
        if keys and all(isinstance(i, dict) for i in v):
            out = set()
            for item in v:
                ip = path + (("k", _item_key(item, keys)),)
                out.add(ip)
                for k, sub in item.items():
                    out |= _paths_value(sub, list_keys, ip + (("f", k),))
            return out
        return {path}
    return {path}


_MISSING = object()


def get_path(obj, path, list_keys=None):
    cur = obj
    for kind, name in path:
        if kind == "f":
            if not isinstance(cur, dict) or name not in cur:
                return _MISSING
            cur = cur[name]
        else:
            if not isinstance(cur, list):
                return _MISSING
            want = json.loads(name)
            found = _MISSING
            for item in cur:
                if isinstance(item, dict) and all(item.get(k) == want[k] for k in want):
                    found = item
                    break
            if found is _MISSING:
                return _MISSING
            cur = found
    return cur


def remove_path(obj, path):
    """Remove the field or list item at path (no-op when absent)."""
    if not path:
        return
    parent = get_path(obj, path[:-1])
    kind, name = path[-1]
    if kind == "f":
        if isinstance(parent, dict):
            parent.pop(name, None)
    elif isinstance(parent, list):
        want = json.loads(name)
        for i, item in enumerate(parent):
            if isinstance(item, dict) and all(item.get(k) == want[k] for k in want):
                del parent[i]
                break


def apply_merge(cur, cfg, list_keys, path=()):
    """Merge an applied configuration into cur: maps recursively, associative lists by key,
    everything else replaced."""
    if isinstance(cfg, dict) and isinstance(cur, dict):
        out = copy.deepcopy(cur)
        for k, v in cfg.items():
            if v is None:
                continue
            out[k] = apply_merge(cur.get(k), v, list_keys, path + (("f", k),))
        return out
    if isinstance(cfg, list) and isinstance(cur, list):
        keys = list_keys(path)
        if keys and all(isinstance(i, dict) for i in cfg + cur):
            out = copy.deepcopy(cur)
            for item in cfg:
                ik = _item_key(item, keys)
                for i, existing in enumerate(out):
                    if _item_key(existing, keys) == ik:
                        out[i] = apply_merge(existing, item, list_keys, path + (("k", ik),))
                        break
                else:
                    out.append(copy.deepcopy(item))
            return out
    if isinstance(cfg, dict):
        return {k: copy.deepcopy(v) for k, v in cfg.items() if v is not None}
    return copy.deepcopy(cfg)


def path_to_string(path):
    s = ""
    for kind, name in path:
        s += "." + name if kind == "f" else "[" + ",".join(
            "%s=%s" % (k, json.dumps(v)) for k, v in json.loads(name).items()) + "]"
    return s


def fields_v1(paths):
    """Render a path set as the FieldsV1 JSON tree used in metadata.managedFields."""
    root = {}
    for p in sorted(paths):
        node = root
        for i, (kind, name) in enumerate(p):
            key = ("f:" if kind == "f" else "k:") + name
            node = node.setdefault(key, {})
            if kind == "k" and i == len(p) - 1:
                node.setdefault(".", {})
    return root


def changed_paths(old, new, list_keys):
    """Paths whose value differs between old and new (set in new), plus paths removed."""
    po = field_paths(old, list_keys)
    pn = field_paths(new, list_keys)
    out = set()
    for p in pn:
        if p not in po or get_path(old, p) != get_path(new, p):
            out.add(p)
    return out, po - pn
