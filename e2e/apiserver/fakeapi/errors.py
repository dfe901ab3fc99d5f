"""API errors carried as metav1.Status objects, shaped as kube-apiserver 1.26 shapes them."""


class ApiError(Exception):
    """An error answered to the client as a Status object."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code, reason, message, details=None, success=False):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {},
          "status": "Success" if success else "Failure"}
    if message:
        st["message"] = message
    if reason:
        st["reason"] = reason
    if details:
        st["details"] = details
    st["code"] = code
    return st


def _details(rt, name):
    d = {}
    if name:
        d["name"] = name
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = rt.plural
    return d


def not_found(rt, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (rt.group_resource(), name), _details(rt, name))


def already_exists(rt, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (rt.group_resource(), name),
                    _details(rt, name))


def conflict(rt, name, why=None):
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (rt.group_resource(), name, why), _details(rt, name))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def forbidden(rt, name, why, causes=None):
    d = _details(rt, name)
    if causes:
        d["causes"] = causes
    return ApiError(403, "Forbidden", '%s "%s" is forbidden: %s' % (rt.group_resource(), name, why), d)


def invalid(kind, group, name, causes):
    """causes: list of (field, type, message) where type is e.g. FieldValueRequired."""
    msgs = ["%s: %s" % (f, m) if f else m for f, _, m in causes]
    if len(msgs) == 1:
        text = msgs[0]
    else:
        text = "[" + ", ".join(msgs) + "]"
    gk = kind + ("." + group if group else "")
    d = {"name": name, "kind": kind, "causes": [{"reason": t, "message": m, "field": f} for f, t, m in causes]}
    if group:
        d["group"] = group
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (gk, name, text), d)


def expired(message):
    return ApiError(410, "Expired", message)


def internal(message, causes=None):
    d = {"causes": [{"message": c} for c in causes]} if causes else None
    return ApiError(500, "InternalError", "Internal error occurred: %s" % message, d)


def method_not_allowed(message="the server does not allow this method on the requested resource"):
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(ctype):
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    if ctype is None else
                    "the body of the request was in an unknown format - accepted media types include: %s" % ctype)
