"""Label selectors (string syntax and metav1.LabelSelector) and field selectors."""
import re

from .errors import bad_request

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def valid_label_key(k):
    if not _KEY.match(k or ""):
        return False
    if "/" in k:
        prefix, name = k.split("/", 1)
        return len(prefix) <= 253 and len(name) <= 63
    return len(k) <= 63


def valid_label_value(v):
    return isinstance(v, str) and len(v) <= 63 and bool(_VALUE.match(v))


class Requirement:
    def __init__(self, key, op, values=()):
        self.key, self.op, self.values = key, op, set(values)

    def matches(self, labels):
        has = self.key in labels
        v = labels.get(self.key)
        if self.op in ("=", "==", "in"):
            return has and v in self.values
        if self.op in ("!=", "notin"):
            return (not has) or v not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        raise AssertionError(self.op)


def _split_top(s):
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


_SET = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ = re.compile(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(\S*)\s*$")


def parse_label_selector(s):
    """Parse the string form (labelSelector= query). Returns a list of Requirements (AND)."""
    reqs = []
    if s is None or s.strip() == "":
        return reqs
    for part in _split_top(s):
        p = part.strip()
        if not p:
            raise bad_request("unable to parse requirement: found '', expected: identifier")
        m = _SET.match(p)
        if m:
            vals = [v.strip() for v in m.group(3).split(",")]
            vals = [v for v in vals if v != ""] if m.group(3).strip() == "" else vals
            reqs.append(_checked(m.group(1), m.group(2), vals))
            continue
        m = _EQ.match(p)
        if m:
            reqs.append(_checked(m.group(1), m.group(2), [m.group(3)]))
            continue
        if p.startswith("!"):
            reqs.append(_checked(p[1:].strip(), "!", []))
            continue
        if re.match(r"^\S+$", p) and "=" not in p and "(" not in p:
            reqs.append(_checked(p, "exists", []))
            continue
        raise bad_request("unable to parse requirement: found '%s', expected: in, notin, =, ==, !=, gt, lt" % p)
    return reqs


def _checked(key, op, values):
    if not valid_label_key(key):
        raise bad_request("unable to parse requirement: invalid label key \"%s\": name part must consist of "
                          "alphanumeric characters, '-', '_' or '.'" % key)
    for v in values:
        if not valid_label_value(v):
            raise bad_request("unable to parse requirement: invalid label value: \"%s\"" % v)
    return Requirement(key, op, values)


def labels_match(reqs, labels):
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def label_selector_matches(sel, labels):
    """metav1.LabelSelector (matchLabels + matchExpressions). None matches nothing? No: for webhooks,
    a nil selector matches everything, as does an empty one."""
    if sel is None:
        return True
    labels = labels or {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        key = e.get("key")
        vals = e.get("values") or []
        if op == "In":
            ok = key in labels and labels[key] in vals
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in vals
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            return False
        if not ok:
            return False
    return True


def parse_field_selector(s, supported):
    """Returns a list of (field, op, value). supported: set of allowed field names."""
    out = []
    if s is None or s.strip() == "":
        return out
    for part in s.split(","):
        p = part.strip()
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", p)
        if not m:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (s, p))
        f, op, v = m.group(1).strip(), m.group(2), m.group(3).strip()
        if f not in supported:
            raise bad_request('field label not supported: %s' % f)
        out.append((f, "!=" if op == "!=" else "=", v))
    return out


def field_value(obj, path):
    cur = obj
    for seg in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(seg)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(reqs, obj):
    for f, op, v in reqs:
        actual = field_value(obj, f)
        if (actual == v) != (op == "="):
            return False
    return True
