"""Storage: objects by resource, one global resourceVersion counter (like etcd's revision), a
bounded per-resource event history (like the watch cache), watch fan-out, the garbage collector
and the namespace controller."""
import collections
import copy
import datetime
import json
import os
import queue
import threading
import time
import uuid

from . import resources as res
from .errors import expired, not_found


def now_ts():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


class Event:
    __slots__ = ("rv", "type", "obj", "prev")

    def __init__(self, rv, etype, obj, prev):
        self.rv, self.type, self.obj, self.prev = rv, etype, obj, prev


class History:
    def __init__(self, start_rv):
        self.events = collections.deque()
        self.start_rv = start_rv      # every event with rv > start_rv is still held


class Watcher:
    def __init__(self, rt, namespace, matches):
        self.rt = rt
        self.namespace = namespace
        self.matches = matches        # obj -> bool (label + field selectors)
        self.q = queue.Queue()

    def offer(self, ev):
        """Called under the store lock: queue the event as this watcher must see it."""
        if self.namespace is not None and ev.obj["metadata"].get("namespace") != self.namespace:
            return
        if ev.type == "MODIFIED":
            new_ok, old_ok = self.matches(ev.obj), self.matches(ev.prev)
            if new_ok and old_ok:
                self.q.put(("MODIFIED", ev.obj))
            elif new_ok:
                self.q.put(("ADDED", ev.obj))
            elif old_ok:
                self.q.put(("DELETED", ev.obj))
        elif self.matches(ev.obj):
            self.q.put((ev.type, ev.obj))


class Store:
    def __init__(self, history_size=1000, gc_delay=0.05, ns_delay=0.1, log=None):
        self.lock = threading.RLock()
        self.rv = 0
        self.history_size = history_size
        self.types = {}                 # (group, plural) -> ResourceType
        self.objects = {}               # (group, plural) -> {(ns, name): obj}
        self.histories = {}             # (group, plural) -> History
        self.uids = {}                  # uid -> (key, (ns, name))
        self.dependents = collections.defaultdict(set)   # owner uid -> {(key, (ns, name))}
        self.watchers = set()
        self.gc_queue = queue.Queue()
        self.gc_delay = gc_delay
        self.ns_delay = ns_delay
        self.log = log or (lambda *a: None)
        self.dirty = False
        self.stopping = threading.Event()
        self.service_ips = set()
        self.next_ip = 2
        for rt in res.builtin_types():
            self.register(rt)
        threading.Thread(target=self._gc_loop, name="gc", daemon=True).start()

    # ------------------------------------------------------------------ types

    def register(self, rt):
        with self.lock:
            old = self.types.get(rt.key)
            self.types[rt.key] = rt
            self.objects.setdefault(rt.key, {})
            if rt.key not in self.histories:
                self.histories[rt.key] = History(self.rv if old is None and rt.is_cr() else 0)

    def unregister(self, key):
        with self.lock:
            self.types.pop(key, None)
            self.objects.pop(key, None)
            self.histories.pop(key, None)

    def lookup(self, group, version, plural):
        rt = self.types.get((group, plural))
        if rt is None or version not in rt.versions:
            return None
        return rt

    # ------------------------------------------------------------------ reads

    def get(self, rt, ns, name):
        with self.lock:
            obj = self.objects.get(rt.key, {}).get((ns or "", name))
            if obj is None:
                raise not_found(rt, name)
            return obj

    def find(self, rt, ns, name):
        with self.lock:
            return self.objects.get(rt.key, {}).get((ns or "", name))

    def snapshot(self, rt, at_rv=None):
        """Objects of a resource, now or as they were at at_rv (rebuilt from the history; 410 when the
        history no longer reaches back that far)."""
        with self.lock:
            cur = dict(self.objects.get(rt.key, {}))
            if at_rv is None or at_rv >= self.rv:
                return cur
            h = self.histories[rt.key]
            if at_rv < h.start_rv:
                raise expired("too old resource version: %d (%d)" % (at_rv, h.start_rv + 1))
            for ev in reversed(h.events):
                if ev.rv <= at_rv:
                    break
                k = (ev.obj["metadata"].get("namespace", ""), ev.obj["metadata"]["name"])
                if ev.type == "ADDED":
                    cur.pop(k, None)
                elif ev.type == "MODIFIED":
                    cur[k] = ev.prev
                else:
                    cur[k] = ev.obj if ev.prev is None else ev.prev
            return cur

    def exists_uid(self, uid):
        with self.lock:
            return uid in self.uids

    # ------------------------------------------------------------------ writes

    def _bump(self):
        self.rv += 1
        self.dirty = True
        return self.rv

    def _record(self, rt, etype, obj, prev):
        ev = Event(int(obj["metadata"]["resourceVersion"]), etype, obj, prev)
        h = self.histories[rt.key]
        h.events.append(ev)
        while len(h.events) > self.history_size:
            h.start_rv = h.events.popleft().rv
        for w in list(self.watchers):
            if w.rt.key == rt.key:
                w.offer(ev)

    def _index_owners(self, key, k, obj, add):
        for ref in obj["metadata"].get("ownerReferences") or []:
            uid = ref.get("uid")
            if add:
                self.dependents[uid].add((key, k))
            else:
                s = self.dependents.get(uid)
                if s is not None:
                    s.discard((key, k))
                    if not s:
                        del self.dependents[uid]

    def insert(self, rt, obj):
        """Store a new, fully prepared object (name, namespace set). Caller holds no expectations
        about rv: it is assigned here."""
        with self.lock:
            meta = obj["metadata"]
            k = (meta.get("namespace", ""), meta["name"])
            meta["uid"] = meta.get("uid") or str(uuid.uuid4())
            meta["resourceVersion"] = str(self._bump())
            self.objects[rt.key][k] = obj
            self.uids[meta["uid"]] = (rt.key, k)
            self._index_owners(rt.key, k, obj, True)
            self._record(rt, "ADDED", obj, None)
            if meta.get("ownerReferences"):
                self.gc_queue.put(("check", rt.key, k, time.monotonic() + self.gc_delay))
            return obj

    def replace(self, rt, old, new):
        with self.lock:
            meta = new["metadata"]
            k = (meta.get("namespace", ""), meta["name"])
            cur = self.objects[rt.key].get(k)
            assert cur is old, "replace() on a stale object"
            meta["resourceVersion"] = str(self._bump())
            self._index_owners(rt.key, k, old, False)
            self.objects[rt.key][k] = new
            self._index_owners(rt.key, k, new, True)
            self._record(rt, "MODIFIED", new, old)
            if meta.get("ownerReferences"):
                self.gc_queue.put(("check", rt.key, k, time.monotonic() + self.gc_delay))
            return new

    def remove(self, rt, obj):
        with self.lock:
            meta = obj["metadata"]
            k = (meta.get("namespace", ""), meta["name"])
            if self.objects.get(rt.key, {}).get(k) is not obj:
                return None
            del self.objects[rt.key][k]
            self.uids.pop(meta["uid"], None)
            self._index_owners(rt.key, k, obj, False)
            final = copy.deepcopy(obj)
            final["metadata"]["resourceVersion"] = str(self._bump())
            self._record(rt, "DELETED", final, obj)
            if rt.key == ("", "services"):
                self.service_ips.discard((obj.get("spec") or {}).get("clusterIP"))
            self.gc_queue.put(("owner", meta["uid"], None, time.monotonic() + self.gc_delay))
            return final

    def compact(self):
        """Forget the event history: every resourceVersion before now becomes too old."""
        with self.lock:
            for h in self.histories.values():
                h.events.clear()
                h.start_rv = self.rv

    # ------------------------------------------------------------------ watch

    def watch(self, rt, namespace, matches, since_rv):
        """Register a watcher. since_rv None: synthetic ADDED for every current object first.
        Returns (watcher, error_status or None)."""
        with self.lock:
            w = Watcher(rt, namespace, matches)
            if since_rv is None:
                for k in sorted(self.objects[rt.key]):
                    obj = self.objects[rt.key][k]
                    if (namespace is None or k[0] == namespace) and matches(obj):
                        w.q.put(("ADDED", obj))
            else:
                h = self.histories[rt.key]
                if since_rv < h.start_rv:
                    return None, expired("too old resource version: %d (%d)" % (since_rv, h.start_rv + 1))
                for ev in h.events:
                    if ev.rv > since_rv:
                        w.offer(ev)
            self.watchers.add(w)
            return w, None

    def unwatch(self, w):
        with self.lock:
            self.watchers.discard(w)

    def broadcast(self, item, pred=lambda w: True):
        with self.lock:
            n = 0
            for w in list(self.watchers):
                if pred(w):
                    w.q.put(item)
                    n += 1
            return n

    # ------------------------------------------------------------------ services

    def allocate_ip(self, want=None):
        with self.lock:
            if want:
                if want in self.service_ips:
                    return None
                self.service_ips.add(want)
                return want
            while True:
                n = self.next_ip
                self.next_ip += 1
                ip = "10.96.%d.%d" % (n // 256, n % 256)
                if n % 256 not in (0, 255) and ip not in self.service_ips:
                    self.service_ips.add(ip)
                    return ip

    # ------------------------------------------------------------------ garbage collector

    def _gc_loop(self):
        while not self.stopping.is_set():
            try:
                item = self.gc_queue.get(timeout=0.5)
            except queue.Empty:
                continue
            delay = item[3] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                if item[0] == "owner":
                    self._gc_owner_gone(item[1])
                else:
                    self._gc_check(item[1], item[2])
            except Exception as e:   # the GC never dies
                self.log("gc: %r" % e)

    def _owner_alive(self, ref):
        return ref.get("uid") in self.uids

    def _gc_owner_gone(self, uid):
        with self.lock:
            deps = list(self.dependents.get(uid, ()))
        for key, k in deps:
            self._gc_check(key, k)

    def _gc_check(self, key, k):
        """Delete a dependent whose owners are all gone; drop references to absent owners when some
        owners remain (kube-controller-manager's garbage collector does both)."""
        with self.lock:
            rt = self.types.get(key)
            obj = self.objects.get(key, {}).get(k) if rt else None
            if obj is None:
                return
            refs = obj["metadata"].get("ownerReferences") or []
            if not refs:
                return
            alive = [r for r in refs if self._owner_alive(r)]
            if not alive:
                self.log("gc: deleting %s %s/%s (owners gone)" % (rt.plural, k[0], k[1]))
                self.remove(rt, obj)
                return
            if len(alive) != len(refs):
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = alive
                self.replace(rt, obj, new)

    def orphan_dependents(self, uid):
        with self.lock:
            for key, k in list(self.dependents.get(uid, ())):
                rt = self.types.get(key)
                obj = self.objects.get(key, {}).get(k)
                if obj is None:
                    continue
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [r for r in obj["metadata"].get("ownerReferences") or []
                                                      if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self.replace(rt, obj, new)

    def delete_dependents_now(self, uid, seen=None):
        """Foreground deletion: remove dependents (recursively) before the owner."""
        seen = seen or set()
        with self.lock:
            for key, k in list(self.dependents.get(uid, ())):
                rt = self.types.get(key)
                obj = self.objects.get(key, {}).get(k)
                if obj is None or obj["metadata"]["uid"] in seen:
                    continue
                seen.add(obj["metadata"]["uid"])
                if all(not self._owner_alive(r) or r.get("uid") == uid
                       for r in obj["metadata"].get("ownerReferences") or []):
                    self.delete_dependents_now(obj["metadata"]["uid"], seen)
                    self.remove(rt, obj)

    # ------------------------------------------------------------------ namespaces

    def terminate_namespace(self, name):
        def run():
            time.sleep(self.ns_delay)
            with self.lock:
                for key, rt in list(self.types.items()):
                    if not rt.namespaced:
                        continue
                    for k, obj in sorted(self.objects.get(key, {}).items()):
                        if k[0] == name:
                            self.remove(rt, obj)
                nsrt = self.types[("", "namespaces")]
                obj = self.objects[nsrt.key].get(("", name))
                if obj is not None and obj["metadata"].get("deletionTimestamp"):
                    self.remove(nsrt, obj)
        threading.Thread(target=run, name="ns-" + name, daemon=True).start()

    # ------------------------------------------------------------------ state file

    def save(self, path):
        with self.lock:
            state = {"resourceVersion": self.rv, "objects": []}
            crds = self.objects.get(("apiextensions.k8s.io", "customresourcedefinitions"), {})
            state["objects"] += [["apiextensions.k8s.io", "customresourcedefinitions", o] for o in crds.values()]
            for key, objs in self.objects.items():
                if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                    continue
                state["objects"] += [[key[0], key[1], o] for o in objs.values()]
            self.dirty = False
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, path)

    def load(self, path):
        with open(path) as f:
            state = json.load(f)
        with self.lock:
            self.rv = state["resourceVersion"]
            for group, plural, obj in state["objects"]:
                if (group, plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
                    self.register(res.type_from_crd(obj))
                rt = self.types.get((group, plural))
                if rt is None:
                    continue
                meta = obj["metadata"]
                k = (meta.get("namespace", ""), meta["name"])
                self.objects[rt.key][k] = obj
                self.uids[meta["uid"]] = (rt.key, k)
                self._index_owners(rt.key, k, obj, True)
                if plural == "services" and (obj.get("spec") or {}).get("clusterIP") not in (None, "None"):
                    self.service_ips.add(obj["spec"]["clusterIP"])
            # Like a restarted apiserver's watch cache: history starts now.
            for h in self.histories.values():
                h.start_rv = self.rv
            self.dirty = False
