#!/usr/bin/env python3
"""A loopback fake Kubernetes API server that speaks the real wire protocol.

It exists so the gateway's Rust controller (kube-rs: `runtime::watcher`,
`Api::patch_status` with server-side apply, leases, events) can be tested
against a real HTTP peer without a cluster:

    python fake_apiserver.py --port 0 --port-file PATH [--bookmark-interval 1.0] [--history 10000]

binds 127.0.0.1, writes the bound port to PATH (via PATH.tmp and a rename, so
a reader never sees half a number) and serves until SIGTERM/SIGINT. Tests can
also run it in-process: `FakeApiServer(port=0).start()` ... `.stop()`.

Like a real API server: JSON over HTTP/1.1 keep-alive; Status error bodies;
list with limit/continue over one consistent snapshot; label and field
selectors; chunked watch streams that replay from a resourceVersion, answer
410 "too old resource version" once the history no longer covers it, send
bookmarks, initial events (sendInitialEvents) and honour timeoutSeconds;
create, replace, delete, merge/JSON/server-side-apply patches; a /status
subresource that is the only way to change `.status` of kinds that have one;
uid, creationTimestamp, one global resourceVersion, generation and
managedFields; writes that change nothing bump nothing and emit no event;
finalizers hold deletion back.

Limits, on purpose (it is a test double): no authn/authz, admission, schema
validation, defaulting, conversion (an object of a group is served under every
version of the group with only apiVersion rewritten), protobuf, or
namespace-existence checks. Strategic merge patch is treated as JSON merge
patch. Server-side apply tracks field ownership among Apply managers only (a
manager that stops applying a field loses it unless another applier owns it),
never reports conflicts (so `force` changes nothing), and treats every
`conditions` list of objects with a `type` as a map keyed by type, all other
lists as atomic. Field selectors accept any dotted path. Core and
events.k8s.io Events are stored apart.

Test hooks, under /fake/ only: GET /fake/requests (every non-GET API request
so far), POST /fake/requests/clear, POST /fake/compact (drop the watch history:
resuming from any earlier resourceVersion gets 410), POST /fake/close-watches
(end every open watch, as an API server restart does), GET /fake/stats.
"""

import argparse
import base64
import collections
import copy
import json
import os
import random
import re
import select
import signal
import socket
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

try:  # PyYAML parses the apply-patch+yaml bodies that are not plain JSON.
    import yaml

    class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        """Safe YAML that keeps timestamps as strings, as the API server's decoder does."""
    _YamlLoader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in _YamlLoader.yaml_implicit_resolvers.items()}
except ImportError:  # pragma: no cover
    yaml = None

# ---------------------------------------------------------------------------
# The known resources: group, served versions, "plural:Kind" entries. A
# trailing "-" marks a cluster-scoped kind, a trailing "~" a kind without a
# status subresource.
_TABLE = [
    ("aigateway.envoyproxy.io", "v1alpha1 v1beta1", "aigatewayroutes:AIGatewayRoute aiservicebackends:AIServiceBackend "
     "backendsecuritypolicies:BackendSecurityPolicy gatewayconfigs:GatewayConfig mcproutes:MCPRoute quotapolicies:QuotaPolicy"),
    ("gateway.networking.k8s.io", "v1 v1beta1 v1alpha2 v1alpha3", "gateways:Gateway gatewayclasses:GatewayClass- "
     "httproutes:HTTPRoute referencegrants:ReferenceGrant backendtlspolicies:BackendTLSPolicy"),
    ("gateway.envoyproxy.io", "v1alpha1", "backends:Backend securitypolicies:SecurityPolicy "
     "backendtrafficpolicies:BackendTrafficPolicy envoyextensionpolicies:EnvoyExtensionPolicy "
     "httproutefilters:HTTPRouteFilter envoyproxies:EnvoyProxy"),
    ("aigw.dev", "v1alpha1", "modelaccesspolicies:ModelAccessPolicy promptguardpolicies:PromptGuardPolicy "
     "responsecachepolicies:ResponseCachePolicy"),
    ("inference.networking.x-k8s.io", "v1alpha2", "inferencepools:InferencePool"),
    ("inference.networking.k8s.io", "v1", "inferencepools:InferencePool"),
    ("", "v1", "secrets:Secret~ configmaps:ConfigMap~ events:Event~ namespaces:Namespace- services:Service"),
    ("events.k8s.io", "v1", "events:Event~"),
    ("coordination.k8s.io", "v1", "leases:Lease~"),
]


def _version_priority(v):
    """Kubernetes prefers GA over beta over alpha, then the higher number."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    return ({None: 2, "beta": 1, "alpha": 0}[m[2]], int(m[1]), int(m[3] or 0))


Resource = collections.namedtuple("Resource", "group plural kind namespaced status versions preferred")
RESOURCES = {}  # (group, plural) -> Resource
for _group, _versions, _entries in _TABLE:
    _vs = sorted(_versions.split(), key=_version_priority, reverse=True)
    for _entry in _entries.split():
        _plural, _kind = _entry.split(":")
        RESOURCES[(_group, _plural)] = Resource(_group, _plural, _kind.rstrip("-~"), not _kind.endswith("-"),
                                                not _kind.endswith("~"), _vs, _vs[0])


def gv(group, version):
    return f"{group}/{version}" if group else version


def qualified(res):  # how the API server names a resource in messages: "leases.coordination.k8s.io"
    return f"{res.plural}.{res.group}" if res.group else res.plural


# ---------------------------------------------------------------------------
class ApiError(Exception):
    """An error that reaches the client as a Status object, exactly as the API server sends it."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        return {**body, "details": self.details} if self.details else body


def bad(message):
    return ApiError(400, "BadRequest", message)


def invalid(message):
    return ApiError(422, "Invalid", message)


def _details(res, name):
    return {"name": name, "group": res.group, "kind": res.plural}


def not_found(res=None, name=None):
    if res is None:
        return ApiError(404, "NotFound", "the server could not find the requested resource")
    return ApiError(404, "NotFound", f'{qualified(res)} "{name}" not found', _details(res, name))


def conflict(res, name, why="the object has been modified; please apply your changes to the latest version "
                            "and try again"):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(res)} "{name}": {why}',
                    _details(res, name))


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _dump(obj):
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


# ---------------------------------------------------------------------------
# Patches. Committed objects are never mutated (watch history and list
# snapshots share them), so patches build new dicts or work on deep copies.
def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc, ops):
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list) or not all(isinstance(op, dict) and "path" in op for op in ops):
        raise bad("a json patch must be a list of operations with a path")
    root = [copy.deepcopy(doc)]  # a wrapper, so that "" (the whole document) has a parent

    def locate(pointer):  # -> (parent container, key in it)
        if pointer and not pointer.startswith("/"):
            raise invalid(f"json patch: bad pointer {pointer!r}")
        parts = ["0"] + [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
        node = root
        for p in parts[:-1]:
            node = get(node, p)
        return node, parts[-1]

    def get(node, key):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            return node[int(key)]
        if isinstance(node, dict) and key in node:
            return node[key]
        raise invalid(f"json patch: no such path element {key!r}")

    def add(pointer, value):
        node, key = locate(pointer)
        if isinstance(node, dict):
            node[key] = value
        elif isinstance(node, list) and (key == "-" or key.isdigit() and int(key) <= len(node)):
            node.insert(len(node) if key == "-" else int(key), value)
        else:
            raise invalid(f"json patch: cannot add at {pointer!r}")

    def remove(pointer):
        node, key = locate(pointer)
        get(node, key)  # it must exist
        return node.pop(int(key) if isinstance(node, list) else key)

    for op in ops:
        kind, path = op.get("op"), op["path"]
        if kind == "add":
            add(path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            remove(path)
        elif kind == "replace":
            remove(path)
            add(path, copy.deepcopy(op.get("value")))
        elif kind == "test":
            if get(*locate(path)) != op.get("value"):
                raise invalid(f"json patch: test failed at {path}")
        elif kind in ("move", "copy"):
            value = remove(op.get("from", "")) if kind == "move" else copy.deepcopy(get(*locate(op.get("from", ""))))
            add(path, value)
        else:
            raise bad(f"json patch: unsupported op {kind!r}")
    return root[0]


# Server-side apply. Field paths use FieldsV1 notation: "f:key" for map keys,
# 'k:{"type":"X"}' for the items of a conditions list (a map keyed by type).
def _keyed(items):
    return isinstance(items, list) and all(isinstance(i, dict) and "type" in i for i in items)


def _item_key(t):
    return "k:" + json.dumps({"type": t}, separators=(",", ":"))


def field_paths(obj, prefix=()):
    """The set of field paths an apply config sets (its leaves and keyed list items)."""
    out = set()
    for k, v in obj.items():
        p = prefix + ("f:" + k,)
        if isinstance(v, dict) and v:
            out |= field_paths(v, p)
        elif k == "conditions" and v and _keyed(v):
            for item in v:
                out |= {p + (_item_key(item["type"]),)} | field_paths(item, p + (_item_key(item["type"]),))
        else:
            out.add(p)
    return out


def paths_to_v1(paths):
    root = {}
    for p in paths:
        node = root
        for el in p:
            node = node.setdefault(el, {})
        if p[-1].startswith("k:"):
            node["."] = {}  # the item itself is owned, not only its fields
    return root


def v1_to_paths(v1, prefix=()):
    out = set()
    for k, v in (v1 if isinstance(v1, dict) else {}).items():
        if k == ".":
            out.add(prefix)
        elif isinstance(v, dict) and v:
            out |= v1_to_paths(v, prefix + (k,))
        else:
            out.add(prefix + (k,))
    return out


def remove_path(obj, path):
    """Delete the field (or conditions item) at a path, if present, and prune maps it leaves empty."""
    trail = [obj]
    for el in path:
        node = trail[-1]
        if el.startswith("f:") and isinstance(node, dict):
            trail.append(node.get(el[2:]))
        elif el.startswith("k:") and isinstance(node, list):
            t = json.loads(el[2:])["type"]
            trail.append(next((i for i in node if isinstance(i, dict) and i.get("type") == t), None))
        else:
            return
        if trail[-1] is None:
            return
    for depth in range(len(path) - 1, 0, -1):  # from the leaf up, never the top-level maps
        parent, child, el = trail[depth], trail[depth + 1], path[depth]
        if child is not trail[-1] and child != {}:
            break
        if isinstance(parent, dict):
            parent.pop(el[2:], None)
        else:
            parent.remove(child)


def merge_apply(cur, cfg, key=None):
    """Apply's merge: maps merge, conditions merge by type, other lists are replaced (atomic)."""
    if isinstance(cur, dict) and isinstance(cfg, dict):
        out = dict(cur)
        for k, v in cfg.items():
            out[k] = merge_apply(cur[k], v, k) if k in cur else copy.deepcopy(v)
        return out
    if key == "conditions" and cur and _keyed(cur) and _keyed(cfg):
        out, index = list(cur), {c["type"]: i for i, c in enumerate(cur)}
        for c in cfg:
            if c["type"] in index:
                out[index[c["type"]]] = merge_apply(out[index[c["type"]]], c)
            else:
                out.append(copy.deepcopy(c))
        return out
    return copy.deepcopy(cfg)


def strip_nulls(v):
    if isinstance(v, dict):
        return {k: strip_nulls(x) for k, x in v.items() if x is not None}
    return [strip_nulls(x) for x in v] if isinstance(v, list) else v


# ---------------------------------------------------------------------------
# Selectors: labels with =, ==, !=, exists, !exists, in, notin; fields with =, ==, !=.
_LABEL_KEY = re.compile(r"([a-zA-Z0-9.\-]+/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$")


def parse_label_selector(s):
    reqs = []
    for part in (p.strip() for p in re.split(r",(?![^()]*\))", s or "")):  # commas outside "in (a,b)"
        if not part:
            continue
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", part)
        if m:
            key, op, val = m[1], m[2], {v.strip() for v in m[3].split(",")}
        elif part.startswith("!"):
            key, op, val = part[1:].strip(), "!", None
        elif "=" in part:
            op = "!=" if "!=" in part else "="
            key, _, val = (x.strip() for x in part.replace("==", "=", 1).partition(op))
        else:
            key, op, val = part, "exists", None
        if not _LABEL_KEY.match(key):
            raise bad(f"unable to parse requirement: invalid label key {key!r}")
        reqs.append((key, op, val))
    return reqs


def labels_match(reqs, obj):
    labels = obj["metadata"].get("labels") or {}
    for key, op, val in reqs:
        if op in ("=", "!="):
            ok = (labels.get(key) == val) == (op == "=")  # "a!=b" matches objects without label a too
        elif op in ("in", "notin"):
            ok = (labels.get(key) in val) == (op == "in")
        else:
            ok = (key in labels) == (op == "exists")
        if not ok:
            return False
    return True


def parse_field_selector(s):
    reqs = []
    for part in (p.strip() for p in (s or "").split(",")):
        if part:
            neg = "!=" in part
            field, eq, val = part.replace("==", "=", 1).partition("!=" if neg else "=")
            if not eq or not field.strip():
                raise bad(f"invalid field selector {part!r}")
            reqs.append((field.strip().split("."), neg, val.strip()))
    return reqs


def fields_match(reqs, obj):
    for path, neg, val in reqs:
        node = obj
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        have = "" if node is None else str(node).lower() if isinstance(node, bool) else str(node)
        if (have == val) == neg:
            return False
    return True


# ---------------------------------------------------------------------------
SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds",
               "managedFields")
APPLY_META = ("labels", "annotations", "finalizers", "ownerReferences")  # metadata an applier can own


def _spec_part(obj):  # what generation counts: everything outside metadata and status
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _comparable(obj, op):
    """What the no-op check compares. An Update that changes no field gains no
    ownership, so managedFields are ignored; an Apply of the same values can
    still change ownership, so only its timestamps are ignored."""
    mf = [] if op == "Update" else [{k: v for k, v in e.items() if k != "time"}
                                    for e in obj["metadata"].get("managedFields") or []]
    return {**obj, "metadata": {**obj["metadata"], "managedFields": mf}}


class Stored(dict):
    """A committed object (never mutated again) with its JSON cached: `tail` is
    everything after the leading apiVersion, so serving it under any version is
    one concatenation, and a list of 30,000 objects takes milliseconds."""
    __slots__ = ("tail",)


def encode(obj, av):
    """An object's JSON as served under apiVersion av (a CRD without conversion)."""
    tail = getattr(obj, "tail", None)
    return _dump({**obj, "apiVersion": av}) if tail is None else b'{"apiVersion":"%s",%s' % (av.encode(), tail)


class Store:
    """The objects, the global resourceVersion and the watch history, behind one lock."""

    def __init__(self, history=10000):
        self.cond = threading.Condition()  # the lock; watchers wait on it for new events
        self.rv = 0
        self.objects = {key: {} for key in RESOURCES}  # (group, plural) -> {(namespace, name): Stored}
        self.history = collections.deque(maxlen=max(0, history))  # (rv, (group, plural), type, object)
        # A watch may start from rv N only if N >= start_floor; a running watch
        # at cursor C has missed events only if C < event_floor.
        self.start_floor = self.event_floor = 0
        self.epoch = 0  # bumped by /fake/close-watches
        self.closed = False
        self.snapshots = collections.OrderedDict()  # continue-token id -> (rv, items)
        self.requests = collections.deque(maxlen=100000)
        self.lists = self.watch_calls = self.open_watches = 0

    def _commit(self, res, etype, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        rest = {k: v for k, v in obj.items() if k != "apiVersion"}
        obj = Stored({"apiVersion": obj["apiVersion"], **rest})
        obj.tail = _dump(rest)[1:]
        key, okey = (res.group, res.plural), (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if etype == "DELETED":
            self.objects[key].pop(okey, None)
        else:
            self.objects[key][okey] = obj
        if self.history.maxlen == 0 or len(self.history) == self.history.maxlen:  # the oldest event goes
            dropped = self.history[0][0] if self.history else self.rv
            self.start_floor, self.event_floor = max(self.start_floor, dropped), max(self.event_floor, dropped)
        self.history.append((self.rv, key, etype, obj))
        self.cond.notify_all()
        return obj

    def _settle(self, res, ns, name, old, new, fields, sub, manager, op, av):
        """Turn a client's candidate object into the one to store, as the API
        server's strategies do: server-owned metadata, the status rules, generation."""
        if not isinstance(new, dict) or not isinstance(new.get("metadata") or {}, dict):
            raise bad("the object and its metadata must be JSON objects")
        new, meta = dict(new), dict(new.get("metadata") or {})
        if meta.get("name") not in (None, name):
            raise bad(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if res.namespaced and meta.get("namespace") not in (None, "", ns):
            raise bad("the namespace of the provided object does not match the namespace sent on the request")
        meta["name"] = name
        if res.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if old is None:
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name):
                raise invalid(f'{res.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase '
                              "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'")
            for k in SERVER_META + ("resourceVersion",):
                meta.pop(k, None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            if res.status:
                new.pop("status", None)  # status is written through /status only
            if res.plural == "namespaces":
                new["status"] = {"phase": "Active"}
            entries = []
        else:
            om = old["metadata"]
            if meta.get("resourceVersion") not in (None, "", om["resourceVersion"]):
                raise conflict(res, name)  # optimistic concurrency: the client saw an older version
            if sub == "status":  # a status write changes .status and nothing else
                new = {**{k: v for k, v in old.items() if k != "status"},
                       **({"status": new["status"]} if new.get("status") is not None else {})}
                meta = dict(om)
            else:
                for k in SERVER_META:  # what the client sent for these is ignored
                    meta.pop(k, None)
                    if k in om:
                        meta[k] = om[k]
                if res.status:  # .status changes only through /status
                    new.pop("status", None)
                    if "status" in old:
                        new["status"] = old["status"]
                if _spec_part(new) != _spec_part(old):
                    meta["generation"] = om.get("generation", 1) + 1
            meta["resourceVersion"] = om["resourceVersion"]
            entries = list(om.get("managedFields") or [])
        # One managedFields entry per (manager, operation, subresource), replaced in place.
        entry = {"manager": manager, "operation": op, "apiVersion": av, "time": now(), "fieldsType": "FieldsV1",
                 "fieldsV1": fields or {}, **({"subresource": sub} if sub else {})}
        same = [i for i, e in enumerate(entries)
                if (e.get("manager"), e.get("operation"), e.get("subresource", "")) == (manager, op, sub)]
        if same:
            entries[same[0]] = entry
        else:
            entries.append(entry)
        new.update(apiVersion=gv(res.group, res.preferred), kind=res.kind, metadata={**meta, "managedFields": entries})
        return new

    def write(self, res, ns, name, build, *, sub="", manager, op, av, create=False, dry=False):
        """Read-modify-write under the lock: build(old or None) -> (candidate, fieldsV1 or None).
        create: False (404 if missing), True (create if missing), "only" (409 if present).
        Returns (object, created)."""
        with self.cond:
            old = self.objects[(res.group, res.plural)].get((ns or "", name))
            if old is None and not create:
                raise not_found(res, name)
            if old is not None and create == "only":
                raise ApiError(409, "AlreadyExists", f'{qualified(res)} "{name}" already exists', _details(res, name))
            new = self._settle(res, ns, name, old, *build(old), sub, manager, op, av)
            if old is not None and _comparable(new, op) == _comparable(old, op):
                return old, False  # a no-op: no new resourceVersion, no event
            if dry:
                return new, old is None
            if old is not None and new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                return self._commit(res, "DELETED", new), False  # the last finalizer is gone
            return self._commit(res, "ADDED" if old is None else "MODIFIED", new), old is None

    def delete(self, res, ns, name, precondition_rv=None, precondition_uid=None, dry=False):
        """Returns (object, gone): gone is False while finalizers hold the object back."""
        with self.cond:
            old = self.objects[(res.group, res.plural)].get((ns or "", name))
            if old is None:
                raise not_found(res, name)
            om = old["metadata"]
            if precondition_rv not in (None, om["resourceVersion"]) or precondition_uid not in (None, om["uid"]):
                raise conflict(res, name, "Precondition failed")
            obj = {**old, "metadata": dict(om)}
            if dry or not om.get("finalizers"):
                return (obj if dry else self._commit(res, "DELETED", obj)), True
            if om.get("deletionTimestamp"):
                return old, False
            obj["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
            return self._commit(res, "MODIFIED", obj), False

    def get(self, res, ns, name):
        with self.cond:
            obj = self.objects[(res.group, res.plural)].get((ns or "", name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def list(self, res, ns, labels, fields, limit, cont):
        """Returns (rv, items, continue token, remaining count). All pages come
        from the first page's snapshot, so a paged list is consistent at its rv."""
        with self.cond:
            self.lists += 1
            if cont:
                try:
                    sid, offset = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    rv, items = self.snapshots[sid]
                except KeyError:
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                                   "consistent list result. You can start a new list without the continue parameter.")
                except Exception:
                    raise bad("invalid continue token")
            else:
                rv, offset, sid = self.rv, 0, None
                items = [o for k, o in sorted(self.objects[(res.group, res.plural)].items())
                         if (ns is None or k[0] == ns) and labels_match(labels, o) and fields_match(fields, o)]
            if not limit or offset + limit >= len(items):
                return rv, items[offset:], None, 0
            if sid is None:
                sid = uuid.uuid4().hex
                self.snapshots[sid] = (rv, items)  # shares the immutable objects: cheap
                while len(self.snapshots) > 64:  # bounded memory: the oldest tokens expire (410)
                    self.snapshots.popitem(last=False)
            token = base64.urlsafe_b64encode(json.dumps([sid, offset + limit]).encode()).decode()
            return rv, items[offset:offset + limit], token, len(items) - offset - limit

    def compact(self):
        """Drop the history, so every earlier rv is too old. The rv tick (one
        without an event, as writes to other kinds make in a real cluster)
        lets a fresh list+watch from the new rv work, not loop on 410."""
        with self.cond:
            self.rv += 1
            self.history.clear()
            self.snapshots.clear()
            self.start_floor, self.event_floor = self.rv, self.rv - 1
            self.cond.notify_all()

    def close_watches(self, shutdown=False):
        with self.cond:
            self.epoch += 1
            self.closed = self.closed or shutdown
            self.cond.notify_all()


# ---------------------------------------------------------------------------
def route(path):
    """A URL path -> (resource, namespace or None, name or None, subresource, version)."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise not_found()
    if not rest or "" in rest:
        raise not_found()
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] != "status":  # not /api/v1/namespaces/x/status
        ns, rest = rest[1], rest[2:]
    res = RESOURCES.get((group, rest[0]))
    if not res or version not in res.versions or len(rest) > 3 or \
            (ns is not None and not res.namespaced) or \
            (ns is None and res.namespaced and len(rest) > 1) or \
            (len(rest) == 3 and (rest[2] != "status" or not res.status)):
        raise not_found()
    return res, ns, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else "", version


def discovery(path):
    """Legacy discovery documents for /api, /api/v1, /apis, /apis/{g}, /apis/{g}/{v}; None otherwise."""
    parts = path.strip("/").split("/")
    groups = {r.group: r.versions for r in RESOURCES.values() if r.group}

    def group_doc(g):
        return {"name": g, "versions": [{"groupVersion": gv(g, v), "version": v} for v in groups[g]],
                "preferredVersion": {"groupVersion": gv(g, groups[g][0]), "version": groups[g][0]}}

    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_doc(g) for g in sorted(groups)]}
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(parts[1])}
    if parts == ["api", "v1"]:
        g, v = "", "v1"
    elif len(parts) == 3 and parts[0] == "apis":
        g, v = parts[1:]
    else:
        return None
    resources = []
    for r in (r for r in RESOURCES.values() if r.group == g and v in r.versions):
        resources.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                          "kind": r.kind, "verbs": ["create", "delete", "deletecollection", "get", "list", "patch",
                                                    "update", "watch"]})
        if r.status:
            resources.append({"name": r.plural + "/status", "singularName": "", "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv(g, v),
            "resources": resources} if resources else None


def _truthy(v):
    return v in ("1", "true", "True")


def _list_body(res, av, meta, blobs):
    return _dump({"kind": res.kind + "List", "apiVersion": av, "metadata": meta})[:-1] + \
        b',"items":[' + b",".join(blobs) + b"]}"


VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "fake", "gitTreeState": "clean",
           "buildDate": "2025-08-27T00:00:00Z", "goVersion": "go1.24.6", "compiler": "gc", "platform": "linux/amd64"}
NOT_ALLOWED = ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response has a Content-Length or is chunked
    server_version = "fake-apiserver"
    MAX_BODY = 16 << 20

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if self.server.verbose:
            super().log_message(fmt, *args)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = lambda self: self._dispatch()

    def _size(self, text, base=10):
        try:
            return int(text or b"0", base)
        except ValueError:
            self.close_connection = True  # the framing of the connection is lost
            raise bad("invalid Content-Length or chunk size")

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while (size := self._size(self.rfile.readline().split(b";")[0].strip(), 16)) > 0:
                if len(data) + size > self.MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "request entity too large")
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return bytes(data)
        n = self._size(self.headers.get("Content-Length"))
        if n > self.MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge", "request entity too large")
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else _dump(body)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self):
        store = self.server.store
        try:
            url = urlsplit(self.path)
            path = url.path.rstrip("/") or "/"  # the Python client asks for /version/ and /apis/
            q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            raw, body, err = self._read_body(), None, None
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    try:
                        if ctype != "application/apply-patch+yaml" or yaml is None:
                            raise ValueError("not JSON")
                        body = yaml.load(raw, Loader=_YamlLoader)
                    except Exception as e:
                        err = bad(f"the body of the request could not be decoded: {e}")
            if self.command != "GET" and not path.startswith("/fake/"):
                with store.cond:
                    store.requests.append({"method": self.command, "path": path, "query": q, "contentType": ctype,
                                           "fieldManager": q.get("fieldManager"), "body": body})
            if err:
                raise err
            result = self._handle(self.command, path, q, ctype, body)
            if result is not None:  # None: a watch, which has answered already
                self._send(*result)
        except ApiError as e:
            self._send(e.code, e.status())
        except OSError:
            self.close_connection = True
        except Exception as e:  # never crash the server: report a 500 Status
            self._send(500, ApiError(500, "InternalError", f"{e!r}\n{traceback.format_exc(limit=3)}").status())

    def _handle(self, method, path, q, ctype, body):
        if path.startswith("/fake/"):
            return self._fake(method, path)
        if path in ("/healthz", "/livez", "/readyz"):
            return 200, b"ok", "text/plain"
        if path == "/version":
            return 200, VERSION
        if method == "GET" and (doc := discovery(path)) is not None:
            return 200, doc
        res, ns, name, sub, version = route(path)
        av, dry = gv(res.group, version), q.get("dryRun") == "All"
        # Without fieldManager the API server names the manager after the user agent.
        manager = q.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0]
        if len(manager) > 128:
            raise invalid("fieldManager: Too long: must have at most 128 bytes")
        if name is None:
            return self._collection(method, res, ns, av, q, body, manager, dry)
        return self._object(method, res, ns, name, sub, av, q, ctype, body, manager, dry)

    def _collection(self, method, res, ns, av, q, body, manager, dry):
        store = self.server.store
        labels, fields = parse_label_selector(q.get("labelSelector")), parse_field_selector(q.get("fieldSelector"))
        if method == "GET" and _truthy(q.get("watch")):
            return self._watch(res, ns, av, q, labels, fields)
        if method == "GET":
            if not re.fullmatch(r"\d*", q.get("limit") or ""):
                raise bad("limit must be a non-negative integer")
            rv, items, cont, remaining = store.list(res, ns, labels, fields, int(q.get("limit") or 0), q.get("continue"))
            meta = {"resourceVersion": str(rv), **({"continue": cont, "remainingItemCount": remaining} if cont else {})}
            return 200, _list_body(res, av, meta, [encode(o, av) for o in items])
        if method == "POST" and (ns is not None or not res.namespaced):
            meta = body.get("metadata") if isinstance(body, dict) else None
            if not isinstance(meta, dict):
                raise bad("the object to create must be a JSON object with metadata")
            if meta.get("resourceVersion"):
                raise bad("resourceVersion should not be set on objects to be created")
            name = meta.get("name")
            if not name and meta.get("generateName"):  # the API server's suffix alphabet
                name = meta["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
            if not name:
                raise invalid(f"{res.kind} is invalid: metadata.name: Required value: name or generateName is required")
            obj, _ = store.write(res, ns, name, lambda old: (body, None), manager=manager, op="Update", av=av,
                                 create="only", dry=dry)
            return 201, encode(obj, av)
        if method == "DELETE":  # deletecollection
            with store.cond:
                names = [k[1] for k, o in sorted(store.objects[(res.group, res.plural)].items())
                         if (ns is None or k[0] == ns) and labels_match(labels, o) and fields_match(fields, o)]
            deleted = []
            for n in names:
                try:
                    deleted.append(encode(store.delete(res, ns, n, dry=dry)[0], av))
                except ApiError:
                    pass  # deleted meanwhile
            return 200, _list_body(res, av, {"resourceVersion": str(store.rv)}, deleted)
        raise NOT_ALLOWED

    def _object(self, method, res, ns, name, sub, av, q, ctype, body, manager, dry):
        store = self.server.store
        if method == "GET":
            return 200, encode(store.get(res, ns, name), av)
        if method == "PUT":
            obj, _ = store.write(res, ns, name, lambda old: (body, None), sub=sub, manager=manager, op="Update",
                                 av=av, dry=dry)
            return 200, encode(obj, av)
        if method == "DELETE":
            pre = (body.get("preconditions") if isinstance(body, dict) else None) or {}
            obj, gone = store.delete(res, ns, name, pre.get("resourceVersion"), pre.get("uid"), dry=dry)
            if not gone:  # finalizers pending: the object, now with a deletionTimestamp
                return 200, encode(obj, av)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {**_details(res, name), "uid": obj["metadata"]["uid"]}}
        if method != "PATCH":
            raise NOT_ALLOWED
        if ctype == "application/apply-patch+yaml":
            if not q.get("fieldManager"):
                raise bad("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests")
            obj, created = store.write(res, ns, name, _apply_builder(res, sub, q["fieldManager"], body), sub=sub,
                                       manager=q["fieldManager"], op="Apply", av=av, create=not sub, dry=dry)
            return (201 if created else 200), encode(obj, av)
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(body, dict):
                raise bad("a merge patch must be a JSON object")
            build = lambda old: (merge_patch(old, body), None)
        elif ctype == "application/json-patch+json":
            build = lambda old: (json_patch(old, body), None)
        else:
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted '
                           'media types include: application/json-patch+json, application/merge-patch+json, '
                           f'application/apply-patch+yaml, application/strategic-merge-patch+json (got "{ctype}")')
        obj, _ = store.write(res, ns, name, build, sub=sub, manager=manager, op="Update", av=av, dry=dry)
        return 200, encode(obj, av)

    # -- watch ---------------------------------------------------------------
    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _client_gone(self):
        try:
            readable = select.select([self.connection], [], [], 0)[0]
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _watch(self, res, ns, av, q, labels, fields):
        store = self.server.store
        initial, bookmarks = _truthy(q.get("sendInitialEvents")), _truthy(q.get("allowWatchBookmarks"))
        if initial and (q.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
            raise invalid("sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true")
        if not re.fullmatch(r"\d*", q.get("resourceVersion") or "") or \
                not re.fullmatch(r"\d*(\.\d*)?", q.get("timeoutSeconds") or ""):
            raise bad("invalid resourceVersion or timeoutSeconds")
        start_rv, timeout = int(q.get("resourceVersion") or 0), float(q.get("timeoutSeconds") or 0)
        key = (res.group, res.plural)

        def match(o):
            return (ns is None or o["metadata"].get("namespace") == ns) and labels_match(labels, o) and \
                fields_match(fields, o)

        pending, error, cursor = [], None, start_rv
        with store.cond:
            store.watch_calls += 1
            store.open_watches += 1
            epoch = store.epoch
            if initial or start_rv == 0:  # the current state first, as synthetic ADDED events
                cursor = store.rv
                pending = [("ADDED", o) for _, o in sorted(store.objects[key].items()) if match(o)]
            elif start_rv < store.start_floor:  # what a real server answers once etcd has compacted
                error = ApiError(410, "Expired", f"too old resource version: {start_rv} ({store.start_floor})")
        if initial:
            pending.append(("BOOKMARK", {"kind": res.kind, "apiVersion": av, "metadata": {
                "resourceVersion": str(cursor), "annotations": {"k8s.io/initial-events-end": "true"}}}))
        try:
            self.send_response(200)  # a watch error is an ERROR event in a 200 stream, as in Kubernetes
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if error is None:
                deadline = time.monotonic() + timeout if timeout else None
                error = self._stream(res, key, av, match, cursor, pending, epoch, deadline, bookmarks)
            if error is not None:
                self._chunk(_dump({"type": "ERROR", "object": error.status()}) + b"\n")
            self._chunk(b"")  # the zero-length chunk: a clean end of the stream
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            with store.cond:
                store.open_watches -= 1
        return None

    def _stream(self, res, key, av, match, cursor, pending, epoch, deadline, bookmarks):
        """Send events until the watch ends; returns the ApiError to end with, or None."""
        store, interval = self.server.store, self.server.bookmark_interval
        next_bookmark = time.monotonic() + interval if bookmarks and interval > 0 else None
        while True:
            buf = bytearray()
            for etype, obj in pending:  # one JSON line per event, batched into ~64 KiB chunks
                buf += b'{"type":"%s","object":%s}\n' % (etype.encode(), encode(obj, av))
                if len(buf) > 65536:
                    self._chunk(bytes(buf))
                    buf.clear()
            if buf:
                self._chunk(bytes(buf))
            pending = []
            if self._client_gone():
                raise ConnectionResetError("the watch client went away")
            with store.cond:
                while True:
                    if store.closed or store.epoch != epoch:
                        self.close_connection = store.closed
                        return None
                    if cursor < store.event_floor:  # this watch fell behind the retained history
                        return ApiError(410, "Expired", f"too old resource version: {cursor} ({store.start_floor})")
                    if store.rv > cursor:  # the new events are at the right end of the history
                        for rv, k, etype, obj in reversed(store.history):
                            if rv <= cursor:
                                break
                            if k == key and match(obj):
                                pending.append((etype, obj))
                        pending.reverse()
                        cursor = store.rv
                    if pending:
                        break
                    t = time.monotonic()
                    if deadline is not None and t >= deadline:
                        return None
                    if next_bookmark is not None and t >= next_bookmark:
                        next_bookmark = t + interval
                        pending = [("BOOKMARK", {"kind": res.kind, "apiVersion": av,
                                                 "metadata": {"resourceVersion": str(cursor)}})]
                        break
                    # Wake at least once a second, to notice a client that hung up.
                    wake = min(x for x in (deadline, next_bookmark, t + 1.0) if x is not None)
                    if not store.cond.wait(max(0.0, wake - t)):
                        break

    # -- test hooks ----------------------------------------------------------
    def _fake(self, method, path):
        store = self.server.store
        with store.cond:
            if (method, path) == ("GET", "/fake/requests"):
                return 200, list(store.requests)
            if (method, path) == ("GET", "/fake/stats"):
                return 200, {"watches": store.open_watches, "lists": store.lists, "watch_calls": store.watch_calls}
            if (method, path) == ("POST", "/fake/requests/clear"):
                store.requests.clear()
                return 200, {"ok": True}
        if (method, path) == ("POST", "/fake/compact"):
            store.compact()
            return 200, {"ok": True, "resourceVersion": str(store.rv)}
        if (method, path) == ("POST", "/fake/close-watches"):
            store.close_watches()
            return 200, {"ok": True}
        raise ApiError(404, "NotFound", f"no test hook {method} {path}")


def _apply_builder(res, sub, manager, cfg):
    """Server-side apply of cfg by manager, to the object or (sub="status") its status."""
    def build(old):
        if not isinstance(cfg, dict) or not cfg.get("apiVersion") or not cfg.get("kind"):
            raise bad("an apply patch must be an object with apiVersion and kind")
        if cfg["kind"] != res.kind or cfg["apiVersion"].rpartition("/")[0] != res.group:
            raise bad(f"the apply patch is a {cfg['apiVersion']} {cfg['kind']}, not a {gv(res.group, '*')} {res.kind}")
        config = strip_nulls(cfg)
        # The fields this apply claims: only status on /status; never status on
        # the main resource of a kind with a status subresource.
        scope = {k: v for k, v in config.items() if k not in ("apiVersion", "kind", "metadata")}
        if sub:
            scope = {"status": scope["status"]} if "status" in scope else {}
        else:
            if res.status:
                scope.pop("status", None)
            meta = {k: v for k, v in (config.get("metadata") or {}).items() if k in APPLY_META}
            if meta:
                scope["metadata"] = meta
        mine, prev, others = field_paths(scope), set(), set()
        for e in (old or {}).get("metadata", {}).get("managedFields") or []:
            if e.get("operation") == "Apply":
                paths = v1_to_paths(e.get("fieldsV1"))
                if (e.get("manager"), e.get("subresource", "")) == (manager, sub):
                    prev = paths
                else:
                    others |= paths
        # A field this manager applied before but not now goes, unless another applier owns it.
        base = copy.deepcopy(old) if old is not None else {}
        for p in sorted(prev - mine - others, key=len):  # a conditions item before its fields
            remove_path(base, p)
        return merge_apply(base, config), paths_to_v1(mine)
    return build


class FakeApiServer(ThreadingHTTPServer):
    """The server, usable in-process: FakeApiServer(port=0).start() ... .stop(). Each
    connection (so each watch) gets its own thread."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port=0, history=10000, bookmark_interval=1.0, verbose=False):
        self.store = Store(history)
        self.bookmark_interval, self.verbose = bookmark_interval, verbose
        super().__init__(("127.0.0.1", port), Handler)
        self.port = self.server_address[1]

    def start(self):
        threading.Thread(target=self.serve_forever, name="fake-apiserver", daemon=True).start()
        return self

    def stop(self, grace=2.0):
        """End every watch stream cleanly, then stop accepting connections."""
        self.store.close_watches(shutdown=True)
        limit = time.monotonic() + grace
        while self.store.open_watches and time.monotonic() < limit:
            time.sleep(0.01)
        self.shutdown()
        self.server_close()


def seed(store, path):
    """Creates every object of a multi-document YAML file, as one applier ("seed") would, before
    the server answers anyone: for benchmarks with tens of thousands of objects."""
    with open(path) as f:
        documents = [d for d in yaml.load_all(f, Loader=_YamlLoader) if d]
    by_kind = {(r.group, r.kind): r for r in RESOURCES.values()}
    for doc in documents:
        group, _, version = doc["apiVersion"].rpartition("/")
        res = by_kind.get((group, doc["kind"]))
        if res is None:
            raise SystemExit(f"seed: {doc['apiVersion']} {doc['kind']} is not served")
        meta = doc.get("metadata") or {}
        ns = meta.get("namespace", "default") if res.namespaced else None
        store.write(res, ns, meta["name"], _apply_builder(res, "", "seed", doc),
                    manager="seed", op="Apply", av=version, create=True)
    return len(documents)


def main(argv=None):
    ap = argparse.ArgumentParser(description="A loopback fake Kubernetes API server.")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--port-file", help="where to write the bound port")
    ap.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between watch bookmarks")
    ap.add_argument("--history", type=int, default=10000, help="past events kept for watch resumption")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    ap.add_argument("--seed", help="a multi-document YAML of objects to create before serving")
    args = ap.parse_args(argv)
    server = FakeApiServer(args.port, args.history, args.bookmark_interval, args.verbose)
    if args.seed:
        seed(server.store, args.seed)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{server.port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"fake apiserver listening on 127.0.0.1:{server.port}", flush=True)
    while not stop.wait(0.5):  # a timed wait, so the signal handler runs promptly
        pass
    server.stop()


if __name__ == "__main__":
    main()
