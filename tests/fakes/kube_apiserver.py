#!/usr/bin/env python3
"""A fake Kubernetes API server for aicp's tests (python3 standard library
only), built on https_server.py. Kubernetes cannot run on the machines the
tests run on, so this server follows the API contract closely enough that
the real kubectl works against it (tests/integration/test_kube_fake.sh
checks that): discovery, built-in and custom resources, server-side apply
with managed fields and conflicts, JSON / merge / strategic merge patches,
resourceVersion conflicts, dryRun, status subresources, immutable fields
and validation errors worded as a real API server words them, bearer
tokens, the Eviction API, and switchable faults. A controller stand-in
may move Trident backends, PVCs, Jobs, Nodes, workloads (Deployments,
StatefulSets, DaemonSets), Kubeflow Notebooks and CSI VolumeSnapshots along,
since no Trident, kubelet, kube-controller-manager, notebook controller or
snapshot controller runs here. docs/fakes.md says how to run it by hand and what it simplifies.

    python3 kube_apiserver.py --cert SERVER.pem --key SERVER.key \
        [--token-file F] [--crds trident,kubeflow,snapshot] [--controller [--ready-delay S]] [--state FILE]

It binds 127.0.0.1 on a free port, prints one line "PORT <n>" when ready,
and serves until its stdin reaches EOF or it gets SIGTERM/SIGINT.

Layout: errors and validation helpers; the SSA/patch module (pure
functions over JSON values); resource types; the Store (all state, one
lock); the controller thread; the HTTP layer (KubeFake.dispatch); main.
"""

import argparse
import base64
import copy
import hashlib
import json
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from https_server import FakeServer, Response  # noqa: E402

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-aicp-fake",
                  "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                  "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"}
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
DEFAULT_SNAP_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
SNAP_GROUP = "snapshot.storage.k8s.io"
RFC1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric "
                 "character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
             "characters or '-', and must start and end with an alphanumeric character "
             "(e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def now_iso(t=None):
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s):
    try:
        return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return time.time()


def rand_suffix(n=5):
    # Kubernetes' generateName alphabet: no vowels, no confusable digits.
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


# ---------------------------------------------------------------------------
# Errors: every failure is a Status object, worded as the real server does.

class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            st["details"] = self.details
        return st


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


class FieldError:
    """One field.Error: its string is "<field>: <Type>: <detail>"."""

    REASONS = {"Required value": "FieldValueRequired", "Invalid value": "FieldValueInvalid",
               "Forbidden": "FieldValueForbidden", "Unsupported value": "FieldValueNotSupported",
               "Duplicate value": "FieldValueDuplicate"}

    def __init__(self, field, etype, detail="", value=None, has_value=False):
        self.field, self.etype, self.detail = field, etype, detail
        self.value, self.has_value = value, has_value

    def body(self):
        s = self.etype
        if self.has_value:
            v = self.value
            s += ": " + (json.dumps(v) if isinstance(v, (str, int, float, bool)) or v is None
                         else go_repr(v))
        if self.detail:
            s += ": " + self.detail
        return s

    def __str__(self):
        return "%s: %s" % (self.field, self.body())


def go_repr(v):
    if isinstance(v, GoValue):
        return v.text
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


class GoValue:
    """A value printed verbatim in an error, as Go's %#v prints a struct."""

    def __init__(self, text):
        self.text = text


def required(field, detail=""):
    return FieldError(field, "Required value", detail)


def invalid_value(field, value, detail):
    return FieldError(field, "Invalid value", detail, value, True)


def forbidden(field, detail):
    return FieldError(field, "Forbidden", detail)


def unsupported(field, value, allowed):
    return FieldError(field, "Unsupported value",
                      "supported values: " + ", ".join('"%s"' % a for a in allowed), value, True)


def immutable(field, value):
    return invalid_value(field, value, "field is immutable")


# ---------------------------------------------------------------------------
# The SSA / patch module: pure functions over JSON values.
#
# A field path is a tuple of steps: a str is a map key, ("k", '{"name":"c"}')
# is the item of an associative list with that key. A field set is a Python
# set of paths, the leaves a manager owns (plus list items as nodes); it is
# stored in managedFields in the real fieldsV1 format ("f:", "k:", ".").

# Lists of built-in kinds that are associative (merged by key) rather than
# atomic, with their key, as in the Kubernetes API's patchMergeKey /
# listMapKeys. Other lists of objects that all have a "name" are merged by
# name too (the agreed simplification); everything else is atomic.
LIST_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
             "volumes": "name", "env": "name", "volumeMounts": "mountPath",
             "volumeDevices": "devicePath", "imagePullSecrets": "name",
             "ownerReferences": "uid", "hostAliases": "ip", "conditions": "type",
             "resourceClaims": "name", "topologySpreadConstraints": "topologyKey"}
DELETE = object()       # a strategic-merge-patch "$patch: delete" result


def list_key(field, items, granular):
    """The merge key of list `field` holding `items`, or None (atomic)."""
    if not granular or not isinstance(items, list) or not items:
        return None
    if not all(isinstance(i, dict) for i in items):
        return None
    if field == "ports":
        key = "containerPort" if any("containerPort" in i for i in items) else "port"
    else:
        key = LIST_KEYS.get(field, "name")
    return key if all(key in i for i in items) else None


def key_step(key, value):
    return ("k", json.dumps({key: value}, sort_keys=True, separators=(",", ":")))


def step_key(step):
    (k, v), = json.loads(step[1]).items()
    return k, v


def fieldset(value, granular, path=(), out=None):
    """The leaf paths of a map (what a manager owns when it sends it)."""
    out = set() if out is None else out
    if not isinstance(value, dict):
        return out
    for k, v in value.items():
        if v is None:
            continue
        p = path + (k,)
        key = list_key(k, v, granular) if isinstance(v, list) else None
        if isinstance(v, dict) and v:
            fieldset(v, granular, p, out)
        elif key:
            for item in v:
                ip = p + (key_step(key, item[key]),)
                out.add(ip)
                fieldset(item, granular, ip, out)
        else:
            out.add(p)
    return out


def get_at(obj, path):
    """(found, value) at path."""
    cur = obj
    for step in path:
        if isinstance(step, tuple):
            if not isinstance(cur, list):
                return False, None
            k, v = step_key(step)
            cur = next((i for i in cur if isinstance(i, dict) and i.get(k) == v), None)
            if cur is None:
                return False, None
        else:
            if not isinstance(cur, dict) or step not in cur:
                return False, None
            cur = cur[step]
    return True, cur


def remove_at(obj, path):
    """Removes the field or list item at path, then the maps and lists that
    the removal left empty (up to, not including, the top level)."""
    chain = [obj]
    cur = obj
    for step in path[:-1]:
        found, cur = get_at(cur, (step,))
        if not found:
            return
        chain.append(cur)
    parent, last = chain[-1], path[-1]
    if isinstance(last, tuple):
        if isinstance(parent, list):
            k, v = step_key(last)
            parent[:] = [i for i in parent if not (isinstance(i, dict) and i.get(k) == v)]
    elif isinstance(parent, dict):
        parent.pop(last, None)
    for i in range(len(chain) - 1, 0, -1):
        if chain[i] in ({}, []):
            holder, step = chain[i - 1], path[i - 1]
            if isinstance(step, tuple) and isinstance(holder, list):
                k, v = step_key(step)
                holder[:] = [x for x in holder if not (isinstance(x, dict) and x.get(k) == v)]
            elif isinstance(holder, dict):
                holder.pop(step, None)
        else:
            break


def path_str(path):
    """The path as real conflict messages print it: .spec.containers[name="c"].image"""
    s = ""
    for step in path:
        if isinstance(step, tuple):
            k, v = step_key(step)
            s += "[%s=%s]" % (k, json.dumps(v))
        else:
            s += "." + step
    return s


def to_fields_v1(paths):
    root = {}
    for p in paths:
        node = root
        for step in p:
            node = node.setdefault(("k:" + step[1]) if isinstance(step, tuple) else "f:" + step, {})
        node["."] = {}

    def fold(node):
        if list(node) == ["."]:
            return {}
        return {k: (v if k == "." else fold(v)) for k, v in node.items()}
    return fold(root)


def from_fields_v1(fv1, path=(), out=None):
    out = set() if out is None else out
    for k, sub in (fv1 or {}).items():
        if k == ".":
            out.add(path)
            continue
        if k.startswith("f:"):
            step = k[2:]
        elif k.startswith("k:"):
            try:
                step = ("k", json.dumps(json.loads(k[2:]), sort_keys=True, separators=(",", ":")))
            except ValueError:
                continue
        else:
            continue            # "v:" (sets) and "i:" are not produced here
        if sub:
            from_fields_v1(sub, path + (step,), out)
        else:
            out.add(path + (step,))
    return out


def ssa_merge(live, cfg, granular, field=None):
    """The object after applying cfg onto live: maps merged recursively,
    associative lists merged by key, everything else replaced."""
    if isinstance(cfg, dict):
        out = copy.deepcopy(live) if isinstance(live, dict) else {}
        for k, v in cfg.items():
            if v is None:
                continue        # null in an applied configuration means "not set"
            out[k] = ssa_merge(out.get(k), v, granular, k)
        return out
    if isinstance(cfg, list):
        key = list_key(field, cfg, granular)
        if key and isinstance(live, list) and list_key(field, live, granular) == key:
            out = copy.deepcopy(live)
            for item in cfg:
                idx = next((n for n, x in enumerate(out) if x.get(key) == item[key]), None)
                if idx is None:
                    out.append(ssa_merge(None, item, granular))
                else:
                    out[idx] = ssa_merge(out[idx], item, granular)
            return out
        return [ssa_merge(None, i, granular) if isinstance(i, dict) else copy.deepcopy(i)
                for i in cfg]
    return copy.deepcopy(cfg)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _smp_clean(value):
    """A patch value with its directives removed (for new elements)."""
    if isinstance(value, dict):
        return {k: _smp_clean(v) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_smp_clean(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
    return value


def strategic_merge(target, patch, field=None):
    """Strategic merge patch, as much as kubectl's client-side apply needs:
    merge patch, plus associative lists merged by key, "$patch: delete" and
    "replace", "$deleteFromPrimitiveList/", "$retainKeys"; "$setElementOrder/"
    is accepted and ignored (order is kept as stored)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return DELETE
    base = {} if directive == "replace" or not isinstance(target, dict) else copy.deepcopy(target)
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(base.get(f), list) and isinstance(v, list):
                base[f] = [x for x in base[f] if x not in v]
            continue
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict):
            r = strategic_merge(base.get(k), v, k)
            if r is DELETE:
                base.pop(k, None)
            else:
                base[k] = r
        elif isinstance(v, list):
            base[k] = _smp_list(base.get(k), v, k)
        else:
            base[k] = v
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        base = {k: v for k, v in base.items() if k in keep}
    return base


def _smp_list(cur, patch, field):
    items = [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace"
                                      and len(i) == 1)]
    replace = len(items) != len(patch)
    plain = [i for i in items if not (isinstance(i, dict) and "$patch" in i)]
    key = list_key(field, [i for i in items if isinstance(i, dict)] or None, True)
    if replace or key is None or not isinstance(cur, list):
        return _smp_clean(plain)
    out = copy.deepcopy(cur)
    for item in items:
        if key not in item:
            continue
        idx = next((n for n, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is None:
            out.append(_smp_clean(item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", "invalid JSON pointer: %s" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc, ops):
    """RFC 6902 JSON patch."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")

    def walk(parts):
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, parts[-1]

    def get(path):
        cur = doc
        for p in _pointer(path):
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur

    def add(path, value):
        parent, last = walk(_pointer(path))
        if isinstance(parent, list):
            if last == "-":
                parent.append(value)
            else:
                parent.insert(int(last), value)
        else:
            parent[last] = value

    def remove(path):
        parent, last = walk(_pointer(path))
        return parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)

    for op in ops:
        try:
            kind, path = op.get("op"), op.get("path", "")
            if kind == "add":
                add(path, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                remove(path)
            elif kind == "replace":
                remove(path)
                add(path, copy.deepcopy(op.get("value")))
            elif kind == "move":
                add(path, remove(op["from"]))
            elif kind == "copy":
                add(path, copy.deepcopy(get(op["from"])))
            elif kind == "test":
                if get(path) != op.get("value"):
                    raise ApiError(422, "Invalid", "the server rejected our request due to an "
                                   "error in our request: testing value %s failed" % path)
            else:
                raise ApiError(422, "Invalid", "Unexpected kind: %s" % kind)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            raise ApiError(422, "Invalid", "the server rejected our request due to an error "
                           "in our request: doc is missing path: \"%s\"" % op.get("path", ""))
    return doc


# ---------------------------------------------------------------------------
# Resource types.

class ResourceType:
    def __init__(self, group, version, kind, plural, namespaced, status=False, short=(),
                 generation=False, crd=False, columns=None, categories=(), log=False,
                 evict=False, scale=False):
        self.group, self.version, self.kind, self.plural = group, version, kind, plural
        self.namespaced, self.status, self.short = namespaced, status, list(short)
        self.generation, self.crd, self.columns = generation, crd, columns
        self.categories, self.log, self.evict = list(categories), log, evict
        self.scale = scale
        self.singular = kind.lower()

    @property
    def gv(self):
        return self.version if not self.group else self.group + "/" + self.version

    @property
    def qualified(self):    # "storageclasses.storage.k8s.io", as in NotFound messages
        return self.plural if not self.group else self.plural + "." + self.group

    @property
    def kind_q(self):       # "StorageClass.storage.k8s.io", as in Invalid messages
        return self.kind if not self.group else self.kind + "." + self.group

    def discovery(self):
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        out = [{"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
                "kind": self.kind, "verbs": verbs}]
        if self.short:
            out[0]["shortNames"] = self.short
        if self.categories:
            out[0]["categories"] = self.categories
        if self.status:
            out.append({"name": self.plural + "/status", "singularName": "",
                        "namespaced": self.namespaced, "kind": self.kind,
                        "verbs": ["get", "patch", "update"]})
        if self.log:
            out.append({"name": self.plural + "/log", "singularName": "",
                        "namespaced": self.namespaced, "kind": "Pod", "verbs": ["get"]})
        if self.evict:
            # kubectl drain looks for exactly this entry (group and version
            # set) to learn that the server has the Eviction API.
            out.append({"name": self.plural + "/eviction", "singularName": "",
                        "namespaced": self.namespaced, "group": "policy", "version": "v1",
                        "kind": "Eviction", "verbs": ["create"]})
        if self.scale:
            out.append({"name": self.plural + "/scale", "singularName": "",
                        "namespaced": self.namespaced, "group": "autoscaling", "version": "v1",
                        "kind": "Scale", "verbs": ["get", "patch", "update"]})
        return out

    def has_sub(self, sub):
        return (sub == "status" and self.status) or (sub == "log" and self.log) or \
            (sub == "eviction" and self.evict) or (sub == "scale" and self.scale)


BUILTINS = [
    ResourceType("", "v1", "Namespace", "namespaces", False, status=True, short=["ns"]),
    ResourceType("", "v1", "Secret", "secrets", True),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, short=["cm"]),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, short=["sa"]),
    ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True,
                 status=True, short=["pvc"]),
    ResourceType("", "v1", "PersistentVolume", "persistentvolumes", False, status=True,
                 short=["pv"]),
    ResourceType("", "v1", "Pod", "pods", True, status=True, short=["po"], log=True,
                 categories=["all"], evict=True),
    ResourceType("", "v1", "Node", "nodes", False, status=True, short=["no"]),
    ResourceType("", "v1", "Service", "services", True, status=True, short=["svc"],
                 categories=["all"]),
    ResourceType("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, short=["sc"]),
    ResourceType("batch", "v1", "Job", "jobs", True, status=True, generation=True,
                 categories=["all"]),
    ResourceType("apps", "v1", "Deployment", "deployments", True, status=True, short=["deploy"],
                 generation=True, categories=["all"], scale=True),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, status=True, short=["ds"],
                 generation=True, categories=["all"]),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, status=True, short=["sts"],
                 generation=True, categories=["all"], scale=True),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
                 "customresourcedefinitions", False, status=True, short=["crd", "crds"],
                 generation=True),
]


def _printer(name, path, priority=0, ctype="string"):
    return {"name": name, "type": ctype, "jsonPath": path, "priority": priority}


def trident_crds():
    """Trident's CRDs as Trident's installer creates them (the parts that matter)."""
    def crd(kind, plural, short, columns):
        return {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": plural + ".trident.netapp.io"},
            "spec": {"group": "trident.netapp.io", "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": kind + "List", "shortNames": short,
                               "categories": ["trident", "trident-external"]},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "subresources": {"status": {}},
                                   "additionalPrinterColumns": columns,
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True}}}]}}
    tbc_cols = [_printer("Backend Name", ".status.backendInfo.backendName"),
                _printer("Backend UUID", ".status.backendInfo.backendUUID"),
                _printer("Phase", ".status.phase"),
                _printer("Status", ".status.lastOperationStatus"),
                _printer("Storage Driver", ".spec.storageDriverName", 1),
                _printer("Deletion Policy", ".status.deletionPolicy", 1)]
    tbe_cols = [_printer("Backend", ".backendName"), _printer("Backend UUID", ".backendUUID")]
    return [crd("TridentBackendConfig", "tridentbackendconfigs",
                ["tbc", "tbconfig", "tbackendconfig"], tbc_cols),
            crd("TridentBackend", "tridentbackends", ["tbe", "tbackend"], tbe_cols)]


def _crd(group, kind, plural, scope, versions, short=(), status=True, columns=None):
    """A CustomResourceDefinition with a schema that keeps every field."""
    vs = []
    for v in versions:
        ver = {"name": v, "served": True, "storage": v == versions[-1],
               "schema": {"openAPIV3Schema": {"type": "object",
                                              "x-kubernetes-preserve-unknown-fields": True}}}
        if status:
            ver["subresources"] = {"status": {}}
        if columns:
            ver["additionalPrinterColumns"] = columns
        vs.append(ver)
    names = {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"}
    if short:
        names["shortNames"] = list(short)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": plural + "." + group},
            "spec": {"group": group, "scope": scope, "names": names, "versions": vs}}


def kubeflow_crds():
    """Kubeflow's Notebook CRD as its notebook controller installs it (served
    as v1beta1 and v1; no printer columns, no short names)."""
    return [_crd("kubeflow.org", "Notebook", "notebooks", "Namespaced", ["v1beta1", "v1"])]


def snapshot_crds():
    """The CSI external-snapshotter's CRDs (snapshot.storage.k8s.io/v1)."""
    g = "snapshot.storage.k8s.io"
    vs_cols = [_printer("ReadyToUse", ".status.readyToUse", ctype="boolean"),
               _printer("SourcePVC", ".spec.source.persistentVolumeClaimName"),
               _printer("SourceSnapshotContent", ".spec.source.volumeSnapshotContentName"),
               _printer("RestoreSize", ".status.restoreSize"),
               _printer("SnapshotClass", ".spec.volumeSnapshotClassName"),
               _printer("SnapshotContent", ".status.boundVolumeSnapshotContentName"),
               _printer("CreationTime", ".status.creationTime", ctype="date"),
               _printer("Age", ".metadata.creationTimestamp", ctype="date")]
    vsclass_cols = [_printer("Driver", ".driver"), _printer("DeletionPolicy", ".deletionPolicy"),
                    _printer("Age", ".metadata.creationTimestamp", ctype="date")]
    vsc_cols = [_printer("ReadyToUse", ".status.readyToUse", ctype="boolean"),
                _printer("RestoreSize", ".status.restoreSize", ctype="integer"),
                _printer("DeletionPolicy", ".spec.deletionPolicy"),
                _printer("Driver", ".spec.driver"),
                _printer("VolumeSnapshotClass", ".spec.volumeSnapshotClassName"),
                _printer("VolumeSnapshot", ".spec.volumeSnapshotRef.name"),
                _printer("VolumeSnapshotNamespace", ".spec.volumeSnapshotRef.namespace"),
                _printer("Age", ".metadata.creationTimestamp", ctype="date")]
    return [_crd(g, "VolumeSnapshotClass", "volumesnapshotclasses", "Cluster", ["v1"],
                 ["vsclass", "vsclasses"], status=False, columns=vsclass_cols),
            _crd(g, "VolumeSnapshot", "volumesnapshots", "Namespaced", ["v1"], ["vs"],
                 columns=vs_cols),
            _crd(g, "VolumeSnapshotContent", "volumesnapshotcontents", "Cluster", ["v1"],
                 ["vsc", "vscs"], columns=vsc_cols)]


# --crds NAME: (the CRDs, the field manager that installs them).
CRD_SETS = {"trident": (trident_crds, "trident-installer"),
            "kubeflow": (kubeflow_crds, "kubeflow-installer"),
            "snapshot": (snapshot_crds, "snapshot-controller-installer")}


# ---------------------------------------------------------------------------
# Selectors.

def _split_top(s):
    out, depth, cur = [], 0, ""
    for c in s:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return [p.strip() for p in out if p.strip()]


def parse_label_selector(s):
    reqs = []
    for part in _split_top(s or ""):
        m = re.match(r"^([A-Za-z0-9./_-]+)\s+(in|notin)\s+\((.*)\)$", part)
        if m:
            reqs.append((m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}))
            continue
        m = re.match(r"^([A-Za-z0-9./_-]+)\s*(==|!=|=)\s*([A-Za-z0-9._-]*)$", part)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            reqs.append((m.group(1), op, {m.group(3)}))
            continue
        m = re.match(r"^(!?)([A-Za-z0-9./_-]+)$", part)
        if m:
            reqs.append((m.group(2), "!" if m.group(1) else "exists", set()))
            continue
        raise bad_request("unable to parse requirement: found '%s', expected: in, notin, =, "
                          "==, !=, gt, lt" % part)
    return reqs


def labels_match(reqs, labels):
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "=" and v not in vals:
            return False
        if op == "!=" and has and v in vals:
            return False
        if op == "in" and v not in vals:
            return False
        if op == "notin" and has and v in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
    return True


FIELD_SELECTABLE = {"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName",
                    "type", "spec.storageClassName"}


def parse_field_selector(s):
    reqs = []
    for part in _split_top(s or ""):
        m = re.match(r"^([A-Za-z.]+)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (s, part))
        if m.group(1) not in FIELD_SELECTABLE:
            raise bad_request('field label not supported: %s' % m.group(1))
        reqs.append((m.group(1).split("."), m.group(2) == "!=", m.group(3)))
    return reqs


def fields_match(reqs, obj):
    for path, neg, val in reqs:
        found, v = get_at(obj, tuple(path))
        v = v if found else ""
        if (v == val) == neg:
            return False
    return True


# ---------------------------------------------------------------------------
# Kind-specific defaulting and validation.

def _v(obj, *path, default=None):
    found, val = get_at(obj, path)
    return val if found else default


def default_pod_spec(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            img = c.get("image") or ""
            c.setdefault("imagePullPolicy", "Always" if img.endswith(":latest") or ":" not in
                         img.rsplit("/", 1)[-1] else "IfNotPresent")


def validate_name(rt, meta, errs):
    name = meta.get("name")
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
        return
    if rt.kind in ("Namespace", "Service"):
        if not RFC1123_LABEL.match(name) or len(name) > 63:
            errs.append(invalid_value("metadata.name", name, LABEL_MSG))
    elif not RFC1123_SUBDOMAIN.match(name) or len(name) > 253:
        errs.append(invalid_value("metadata.name", name, SUBDOMAIN_MSG))


def validate_pod_spec(spec, prefix, errs, job=False):
    if not isinstance(spec, dict):
        errs.append(required(prefix))
        return
    containers = spec.get("containers")
    if not containers:
        errs.append(required(prefix + ".containers"))
    for i, c in enumerate(containers or []):
        p = "%s.containers[%d]" % (prefix, i)
        if not isinstance(c, dict):
            errs.append(invalid_value(p, c, "must be an object"))
            continue
        if not c.get("name"):
            errs.append(required(p + ".name"))
        if not c.get("image"):
            errs.append(required(p + ".image"))
    rp = spec.get("restartPolicy")
    if job and rp not in ("OnFailure", "Never"):
        errs.append(unsupported(prefix + ".restartPolicy", rp, ["OnFailure", "Never"]))


WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]


def go_map(m):
    """A map[string]string as Go's %#v prints it (keys sorted)."""
    return GoValue("map[string]string{%s}" % ", ".join(
        "%s:%s" % (json.dumps(k), json.dumps(v)) for k, v in sorted((m or {}).items())))


def selector_matches(sel, labels):
    """A LabelSelector (matchLabels, matchExpressions) against labels."""
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        if not isinstance(e, dict):
            return False
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals or \
                op == "NotIn" and k in labels and labels[k] in vals or \
                op == "Exists" and k not in labels or op == "DoesNotExist" and k in labels:
            return False
    return True


def validate_workload(spec, errs):
    """apps/v1 Deployment, DaemonSet and StatefulSet: a selector that
    selects the pod template's labels, a pod template that restarts."""
    reps = spec.get("replicas")
    if reps is not None and (not isinstance(reps, int) or isinstance(reps, bool) or reps < 0):
        errs.append(invalid_value("spec.replicas", reps, "must be greater than or equal to 0"))
    sel = spec.get("selector")
    labels = _v(spec, "template", "metadata", "labels") or {}
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        errs.append(required("spec.selector"))
        errs.append(invalid_value("spec.template.metadata.labels", go_map(labels),
                                  "`selector` does not match template `labels`"))
    elif not selector_matches(sel, labels):
        errs.append(invalid_value("spec.template.metadata.labels", go_map(labels),
                                  "`selector` does not match template `labels`"))
    pspec = _v(spec, "template", "spec")
    validate_pod_spec(pspec, "spec.template.spec", errs)
    if isinstance(pspec, dict) and pspec.get("restartPolicy") != "Always":
        errs.append(unsupported("spec.template.spec.restartPolicy", pspec.get("restartPolicy"),
                                ["Always"]))


ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
         "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def quantity(s):
    m = QUANTITY.match(str(s))
    if not m:
        return None
    return float(str(s)[:len(str(s)) - len(m.group(2) or "")]) * UNITS[m.group(2) or ""]


def validate(rt, obj):
    """Validation on create and update; a list of FieldErrors."""
    errs = []
    validate_name(rt, obj.get("metadata") or {}, errs)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    if rt.kind == "StorageClass":
        if not obj.get("provisioner"):
            errs.append(required("provisioner"))
        rp = obj.get("reclaimPolicy")
        if rp not in ("Delete", "Retain"):
            errs.append(unsupported("reclaimPolicy", rp, ["Delete", "Retain"]))
        bm = obj.get("volumeBindingMode")
        if bm not in ("Immediate", "WaitForFirstConsumer"):
            errs.append(unsupported("volumeBindingMode", bm, ["Immediate", "WaitForFirstConsumer"]))
        params = obj.get("parameters")
        if params is not None and (not isinstance(params, dict) or
                                   not all(isinstance(v, str) for v in params.values())):
            errs.append(invalid_value("parameters", params, "parameters must be strings"))
    elif rt.kind == "PersistentVolumeClaim":
        modes = spec.get("accessModes")
        if not modes:
            errs.append(required("spec.accessModes", "at least 1 access mode is required"))
        for m in modes or []:
            if m not in ACCESS_MODES:
                errs.append(unsupported("spec.accessModes", m, ACCESS_MODES))
        size = _v(spec, "resources", "requests", "storage")
        if size is None:
            errs.append(required("spec.resources[storage]"))
        elif quantity(size) is None:
            errs.append(invalid_value("spec.resources.requests[storage]", size,
                                      "quantities must match the regular expression "
                                      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
        elif quantity(size) <= 0:
            errs.append(invalid_value("spec.resources.requests[storage]", size,
                                      "must be greater than zero"))
    elif rt.kind == "Job":
        validate_pod_spec(_v(spec, "template", "spec"), "spec.template.spec", errs, job=True)
    elif rt.kind == "Pod":
        validate_pod_spec(spec, "spec", errs)
    elif rt.kind in WORKLOADS:
        validate_workload(spec, errs)
    elif rt.kind == "Node":
        for i, t in enumerate(spec.get("taints") or []):
            p = "spec.taints[%d]" % i
            if not isinstance(t, dict):
                errs.append(invalid_value(p, t, "must be an object"))
                continue
            if not t.get("key"):
                errs.append(required(p + ".key"))
            if t.get("effect") not in TAINT_EFFECTS:
                errs.append(unsupported(p + ".effect", t.get("effect"), TAINT_EFFECTS))
    elif rt.kind == "Secret":
        for k, v in (obj.get("data") or {}).items():
            if not re.match(r"^[-._a-zA-Z0-9]+$", k):
                errs.append(invalid_value("data[%s]" % k, k, "a valid config key must consist "
                                          "of alphanumeric characters, '-', '_' or '.'"))
    elif rt.kind == "VolumeSnapshot" and rt.group == SNAP_GROUP:
        src = spec.get("source") if isinstance(spec.get("source"), dict) else {}
        if "source" not in spec:
            errs.append(required("spec.source"))
        elif bool(src.get("persistentVolumeClaimName")) == \
                bool(src.get("volumeSnapshotContentName")):
            errs.append(invalid_value("spec.source", GoValue('"object"'), "exactly one of "
                                      "volumeSnapshotContentName and persistentVolumeClaimName "
                                      "must be set"))
        if spec.get("volumeSnapshotClassName") == "":
            errs.append(invalid_value("spec.volumeSnapshotClassName", GoValue('"string"'),
                                      "volumeSnapshotClassName must not be the empty string "
                                      "when set"))
    elif rt.kind == "CustomResourceDefinition":
        names = spec.get("names") or {}
        want = "%s.%s" % (names.get("plural", ""), spec.get("group", ""))
        if (obj.get("metadata") or {}).get("name") != want:
            errs.append(invalid_value("metadata.name", (obj.get("metadata") or {}).get("name"),
                                      'must be spec.names.plural+"."+spec.group'))
        if not names.get("kind"):
            errs.append(required("spec.names.kind"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errs.append(unsupported("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"]))
        if not spec.get("versions"):
            errs.append(required("spec.versions", "must have exactly one version marked as "
                                 "storage version"))
    return errs


# The fields built-in kinds know, at the levels where clients most often
# err; anything else there is an unknown field (fieldValidation).
KNOWN_META = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
              "generation", "creationTimestamp", "deletionTimestamp",
              "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
              "finalizers", "managedFields"}
KNOWN_TOP = {"Namespace": {"spec", "status"}, "Secret": {"data", "stringData", "type", "immutable"},
             "ConfigMap": {"data", "binaryData", "immutable"},
             "ServiceAccount": {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
             "PersistentVolumeClaim": {"spec", "status"}, "PersistentVolume": {"spec", "status"},
             "Pod": {"spec", "status"}, "Service": {"spec", "status"},
             "StorageClass": {"provisioner", "parameters", "reclaimPolicy", "mountOptions",
                              "allowVolumeExpansion", "volumeBindingMode", "allowedTopologies"},
             "Job": {"spec", "status"}, "CustomResourceDefinition": {"spec", "status"},
             "Node": {"spec", "status"}, "Deployment": {"spec", "status"},
             "DaemonSet": {"spec", "status"}, "StatefulSet": {"spec", "status"}}
KNOWN_SPEC = {"Namespace": {"finalizers"},
              "PersistentVolumeClaim": {"accessModes", "selector", "resources", "volumeName",
                                        "storageClassName", "volumeMode", "dataSource",
                                        "dataSourceRef", "volumeAttributesClassName"},
              "Job": {"parallelism", "completions", "activeDeadlineSeconds", "podFailurePolicy",
                      "successPolicy", "backoffLimit", "backoffLimitPerIndex",
                      "maxFailedIndexes", "selector", "manualSelector", "template",
                      "ttlSecondsAfterFinished", "completionMode", "suspend",
                      "podReplacementPolicy", "managedBy"},
              "Node": {"podCIDR", "podCIDRs", "providerID", "unschedulable", "taints",
                       "configSource", "externalID"},
              "Deployment": {"replicas", "selector", "template", "strategy", "minReadySeconds",
                             "revisionHistoryLimit", "paused", "progressDeadlineSeconds"},
              "DaemonSet": {"selector", "template", "updateStrategy", "minReadySeconds",
                            "revisionHistoryLimit"},
              "StatefulSet": {"replicas", "selector", "template", "volumeClaimTemplates",
                              "serviceName", "podManagementPolicy", "updateStrategy",
                              "revisionHistoryLimit", "minReadySeconds",
                              "persistentVolumeClaimRetentionPolicy", "ordinals"}}


def unknown_fields(rt, obj):
    """Dotted paths of the fields obj has that its (built-in) kind does not."""
    if rt.crd or not isinstance(obj, dict):
        return []
    out = []
    top = KNOWN_TOP.get(rt.kind, set()) | {"apiVersion", "kind", "metadata"}
    out += [k for k in obj if k not in top]
    if isinstance(obj.get("metadata"), dict):
        out += ["metadata." + k for k in obj["metadata"] if k not in KNOWN_META]
    if rt.kind in KNOWN_SPEC and isinstance(obj.get("spec"), dict):
        out += ["spec." + k for k in obj["spec"] if k not in KNOWN_SPEC[rt.kind]]
    return sorted(out)


def drop_fields(obj, paths):
    for p in paths:
        remove_at(obj, tuple(p.split(".", 1)) if p.startswith(("metadata.", "spec.")) else (p,))


STS_SPEC_MSG = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden")
PVC_SPEC_MSG = ("spec is immutable after creation except resources.requests and "
                "volumeAttributesClassName for bound claims")


def validate_update(rt, old, new):
    """The immutable fields of each kind; a list of FieldErrors."""
    errs = []
    ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
    if rt.kind == "StorageClass":
        if (old.get("parameters") or {}) != (new.get("parameters") or {}):
            errs.append(forbidden("parameters", "updates to parameters are forbidden."))
        if old.get("provisioner") != new.get("provisioner"):
            errs.append(forbidden("provisioner", "updates to provisioner are forbidden."))
        if old.get("reclaimPolicy") != new.get("reclaimPolicy"):
            errs.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
        if old.get("volumeBindingMode") != new.get("volumeBindingMode"):
            errs.append(immutable("volumeBindingMode", new.get("volumeBindingMode")))
    elif rt.kind == "PersistentVolumeClaim":
        def strip(s):
            s = copy.deepcopy(s)
            s.get("resources", {}).pop("requests", None)
            s.pop("volumeAttributesClassName", None)
            if not old.get("spec", {}).get("volumeName"):
                s.pop("volumeName", None)   # binding sets it once
            return s
        if strip(ospec) != strip(nspec):
            errs.append(forbidden("spec", PVC_SPEC_MSG))
        o = quantity(_v(ospec, "resources", "requests", "storage") or "0") or 0
        n = quantity(_v(nspec, "resources", "requests", "storage") or "0") or 0
        if n < o:
            errs.append(forbidden("spec.resources.requests.storage",
                                  "field can not be less than previous value"))
    elif rt.kind == "Job":
        if ospec.get("template") != nspec.get("template"):
            errs.append(invalid_value("spec.template", GoValue("core.PodTemplateSpec{...}"),
                                      "field is immutable"))
        if ospec.get("selector") != nspec.get("selector"):
            errs.append(immutable("spec.selector", nspec.get("selector")))
        if ospec.get("completions") != nspec.get("completions"):
            errs.append(immutable("spec.completions", nspec.get("completions")))
    elif rt.kind in WORKLOADS:
        if ospec.get("selector") != nspec.get("selector"):
            sel = nspec.get("selector") or {}
            errs.append(immutable("spec.selector", GoValue(
                "v1.LabelSelector{MatchLabels:%s, MatchExpressions:[]v1.LabelSelectorRequirement"
                "(nil)}" % go_map(sel.get("matchLabels")).text)))
        if rt.kind == "StatefulSet":
            free = ("replicas", "ordinals", "template", "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
            if {k: v for k, v in ospec.items() if k not in free} != \
                    {k: v for k, v in nspec.items() if k not in free}:
                errs.append(forbidden("spec", STS_SPEC_MSG))
    elif rt.kind == "Secret" or rt.kind == "ConfigMap":
        if old.get("immutable"):
            if old.get("data") != new.get("data") or old.get("binaryData") != new.get("binaryData"):
                errs.append(forbidden("data", "field is immutable when `immutable` is set"))
            if not new.get("immutable"):
                errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        if rt.kind == "Secret" and old.get("type") != new.get("type"):
            errs.append(immutable("type", new.get("type")))
    elif rt.kind == "PersistentVolume":
        if ospec.get("claimRef") and nspec.get("storageClassName") != ospec.get("storageClassName"):
            errs.append(forbidden("spec.storageClassName", "field is immutable"))
    elif rt.kind == "VolumeSnapshot" and rt.group == SNAP_GROUP:
        osrc, nsrc = ospec.get("source") or {}, nspec.get("source") or {}
        for k in ("persistentVolumeClaimName", "volumeSnapshotContentName"):
            if osrc.get(k) != nsrc.get(k):
                errs.append(invalid_value("spec.source." + k, GoValue('"string"'),
                                          "%s is immutable" % k))
    elif rt.kind == "CustomResourceDefinition":
        if ospec.get("group") != nspec.get("group"):
            errs.append(immutable("spec.group", nspec.get("group")))
        if ospec.get("scope") != nspec.get("scope"):
            errs.append(immutable("spec.scope", nspec.get("scope")))
    return errs


def invalid_error(rt, name, errs):
    agg = str(errs[0]) if len(errs) == 1 else "[" + ", ".join(str(e) for e in errs) + "]"
    causes = [{"reason": FieldError.REASONS.get(e.etype, "FieldValueInvalid"),
               "message": e.body(), "field": e.field} for e in errs]
    details = {"name": name or "", "kind": rt.kind, "causes": causes}
    if rt.group:
        details["group"] = rt.group
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (rt.kind_q, name or "", agg),
                    details)


# ---------------------------------------------------------------------------
# The store: every object, the resource types, managed fields, faults. All
# state changes happen under self.lock (an RLock: the controller and the
# HTTP threads share it).

class Store:
    def __init__(self, state_file=None):
        self.lock = threading.RLock()
        self.types = {}         # (group, version, plural) -> ResourceType
        self.objects = {}       # (group, plural) -> {(namespace, name): object}
        self.rv = 1000
        self.state_file = None  # set once the saved state is loaded
        self.faults = []
        self.concurrent = []
        self.seen = {}          # uid -> when the controller first saw it
        self.running = {}       # Job pod uid -> (when it started, seconds it runs): FAKE_RUN_S
        self.events = []        # (rv, type, (group, plural), object) for watches
        self.changed = threading.Condition(self.lock)
        self.stopping = False
        for rt in BUILTINS:
            self.register(rt)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.rtype("", "v1", "namespaces"), None,
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                        "kube-apiserver")
        self.load(state_file)
        self.state_file = state_file

    # Types ----------------------------------------------------------------

    def register(self, rt):
        self.types[(rt.group, rt.version, rt.plural)] = rt
        self.objects.setdefault((rt.group, rt.plural), {})

    def rtype(self, group, version, plural):
        return self.types.get((group, version, plural))

    def by_kind(self, gv, kind):
        for rt in self.types.values():
            if rt.gv == gv and rt.kind == kind:
                return rt
        return None

    def groups(self):
        """{group: [versions]} in registration order."""
        out = {}
        for rt in self.types.values():
            vs = out.setdefault(rt.group, [])
            if rt.version not in vs:
                vs.append(rt.version)
        return out

    def register_crd(self, crd):
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for v in spec.get("versions") or []:
            if not v.get("served", True):
                continue
            cols = v.get("additionalPrinterColumns")
            rt = ResourceType(spec.get("group", ""), v.get("name", "v1"), names.get("kind", ""),
                              names.get("plural", ""), spec.get("scope") == "Namespaced",
                              status="status" in (v.get("subresources") or {}),
                              short=names.get("shortNames") or (), generation=True, crd=True,
                              columns=cols, categories=names.get("categories") or ())
            rt.singular = names.get("singular") or rt.kind.lower()
            self.register(rt)

    def unregister_crd(self, crd):
        spec = crd.get("spec") or {}
        plural = (spec.get("names") or {}).get("plural")
        for key in [k for k in self.types if k[0] == spec.get("group") and k[2] == plural]:
            del self.types[key]
        self.objects.pop((spec.get("group"), plural), None)

    def emit(self, etype, rt, obj):
        """Records a watch event (obj's resourceVersion is already set)."""
        self.events.append((int(obj["metadata"]["resourceVersion"]), etype,
                            (rt.group, rt.plural), copy.deepcopy(obj)))
        del self.events[:-WATCH_EVENTS]
        self.changed.notify_all()

    def bump(self, rt, obj, etype="MODIFIED"):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.emit(etype, rt, obj)

    # Reads ----------------------------------------------------------------

    def _bucket(self, rt):
        return self.objects.setdefault((rt.group, rt.plural), {})

    def peek(self, rt, ns, name):
        return self._bucket(rt).get((ns or "", name))

    def get(self, rt, ns, name):
        with self.lock:
            obj = self.peek(rt, ns, name)
            if obj is None:
                raise not_found(rt, name)
            return self.present(rt, obj)

    def present(self, rt, obj, in_list=False):
        out = copy.deepcopy(obj)
        if in_list and not rt.crd:
            out.pop("apiVersion", None)     # real lists of built-ins omit these
            out.pop("kind", None)
        else:
            out["apiVersion"], out["kind"] = rt.gv, rt.kind
        return out

    def list(self, rt, ns, label_sel=None, field_sel=None):
        lreq = parse_label_selector(label_sel)
        freq = parse_field_selector(field_sel)
        with self.lock:
            items = [o for (ons, _), o in sorted(self._bucket(rt).items())
                     if (not ns or ons == ns)
                     and labels_match(lreq, (o.get("metadata") or {}).get("labels") or {})
                     and fields_match(freq, o)]
            return {"apiVersion": rt.gv, "kind": rt.kind + "List",
                    "metadata": {"resourceVersion": str(self.rv)},
                    "items": [self.present(rt, o, in_list=True) for o in items]}

    def namespace_exists(self, ns):
        return self.peek(self.rtype("", "v1", "namespaces"), None, ns) is not None

    # Writes ---------------------------------------------------------------

    def _check_target(self, rt, ns, body, name=None):
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        av, kind = body.get("apiVersion"), body.get("kind")
        if kind and kind != rt.kind:
            raise bad_request("the kind in the data (%s) does not match the expected kind (%s)"
                              % (kind, rt.kind))
        if av and av != rt.gv:
            raise bad_request("the API version in the data (%s) does not match the expected "
                              "API version (%s)" % (av, rt.gv))
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        meta = body.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if name is not None and meta.get("name") and meta["name"] != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL "
                              "(%s)" % (meta["name"], name))
        if name is not None:
            meta["name"] = name

    def create(self, rt, ns, body, manager, dry=False, apply_cfg=None, sub=None):
        """POST, and server-side apply of an absent object (apply_cfg set)."""
        with self.lock:
            body = copy.deepcopy(body)
            self._check_target(rt, ns, body)
            if rt.namespaced and not self.namespace_exists(ns):
                raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                               {"name": ns, "kind": "namespaces"})
            meta = body["metadata"]
            nso = self.peek(self.rtype("", "v1", "namespaces"), None, ns) if rt.namespaced else None
            if nso is not None and nso["metadata"].get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", '%s "%s" is forbidden: unable to create new '
                               'content in namespace %s because it is being terminated'
                               % (rt.qualified, meta.get("name", ""), ns),
                               {"name": meta.get("name", ""), "group": rt.group, "kind": rt.plural,
                                "causes": [{"reason": "NamespaceTerminating", "field":
                                            "metadata.namespace", "message": "namespace %s is "
                                            "being terminated" % ns}]})
            if meta.get("resourceVersion") and apply_cfg is None:
                raise bad_request("resourceVersion should not be set on objects to be created")
            if not meta.get("name") and meta.get("generateName") and apply_cfg is None:
                meta["name"] = meta["generateName"] + rand_suffix()
            for k in ("uid", "resourceVersion", "creationTimestamp", "managedFields",
                      "deletionTimestamp", "generation", "selfLink"):
                meta.pop(k, None)
            name = meta.get("name")
            if name and self.peek(rt, ns, name) is not None:
                raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (rt.qualified, name),
                               {"name": name, "group": rt.group, "kind": rt.plural})
            if rt.status and sub != "status" and rt.kind != "Node":
                body.pop("status", None)     # (a Node may be created with its status)
            body["apiVersion"], body["kind"] = rt.gv, rt.kind
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            if rt.generation:
                meta["generation"] = 1
            self.default(rt, body, None)
            errs = validate(rt, body)
            if errs:
                raise invalid_error(rt, name, errs)
            if apply_cfg is not None:
                fs = self.owned_fields(rt, apply_cfg, sub)
                entries = self.set_entry([], manager, "Apply", rt, sub, fs)
            else:
                entries = self.set_entry([], manager, "Update", rt, sub,
                                         self.owned_fields(rt, body, sub))
            if entries:
                meta["managedFields"] = entries
            if dry:
                return self.present(rt, body)
            self._bucket(rt)[(ns or "", name)] = body
            self.bump(rt, body, "ADDED")
            self.after_write(rt, None, body)
            return self.present(rt, body)

    def owned_fields(self, rt, obj, sub):
        """The field set obj claims: no identity fields; only status on the
        status subresource, none of it elsewhere when there is one."""
        o = copy.deepcopy(obj)
        o.pop("apiVersion", None)
        o.pop("kind", None)
        meta = o.get("metadata")
        if isinstance(meta, dict):
            for k in ("name", "namespace", "uid", "resourceVersion", "generation",
                      "creationTimestamp", "managedFields", "selfLink", "deletionTimestamp"):
                meta.pop(k, None)
            if not meta:
                o.pop("metadata")
        if sub == "status":
            o = {"status": o["status"]} if "status" in o else {}
        elif rt.status:
            o.pop("status", None)
        return fieldset(o, not rt.crd)

    @staticmethod
    def entry_key(e):
        return (e.get("manager"), e.get("operation"), e.get("subresource", ""))

    def set_entry(self, entries, manager, op, rt, sub, fields):
        out = [e for e in entries if self.entry_key(e) != (manager, op, sub or "")]
        if fields:
            e = {"manager": manager, "operation": op, "apiVersion": rt.gv, "time": now_iso(),
                 "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(fields)}
            if sub:
                e["subresource"] = sub
            out.append(e)
        return out

    def update(self, rt, ns, name, body, manager, dry=False, sub=None):
        """PUT."""
        with self.lock:
            body = copy.deepcopy(body)
            self._check_target(rt, ns, body, name)
            old = self.peek(rt, ns, name)
            if old is None:
                raise not_found(rt, name)
            rv = body["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict_modified(rt, name)
            return self.commit(rt, old, body, manager, "Update", dry, sub)

    def patch(self, rt, ns, name, ptype, patch, manager, force=False, dry=False, sub=None):
        with self.lock:
            old = self.peek(rt, ns, name)
            if ptype == "apply":
                if not isinstance(patch, dict):
                    raise bad_request("the body of an apply patch must be an object")
                cfg = copy.deepcopy(patch)
                if not cfg.get("apiVersion") or not cfg.get("kind"):
                    raise bad_request("invalid object type: %s, Kind=%s" %
                                      (cfg.get("apiVersion", ""), cfg.get("kind", "")))
                self._check_target(rt, ns, cfg, name)
                if old is None:
                    if sub == "status":
                        raise not_found(rt, name)
                    return self.create(rt, ns, cfg, manager, dry, apply_cfg=cfg, sub=sub)
                rv = cfg["metadata"].get("resourceVersion")
                if rv and rv != old["metadata"]["resourceVersion"]:
                    raise conflict_modified(rt, name)
                return self.apply(rt, old, cfg, manager, force, dry, sub)
            if old is None:
                raise not_found(rt, name)
            base = copy.deepcopy(old)
            if ptype == "merge":
                new = merge_patch(base, patch)
            elif ptype == "strategic":
                if rt.crd:
                    raise unsupported_media()
                new = strategic_merge(base, patch)
            else:
                new = json_patch(base, patch)
            if not isinstance(new, dict):
                raise bad_request("the patch does not result in an object")
            self._check_target(rt, ns, new, name)
            rv = new["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict_modified(rt, name)
            return self.commit(rt, old, new, manager, "Update", dry, sub)

    def restrict(self, rt, old, new, sub):
        """What a write may change: only status through /status; no status
        through the main resource when a status subresource exists."""
        if sub == "status":
            out = copy.deepcopy(old)
            if "status" in new:
                out["status"] = copy.deepcopy(new["status"])
            else:
                out.pop("status", None)
            return out
        new = copy.deepcopy(new)
        if rt.status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        return new

    def keep_identity(self, rt, old, new):
        nm, om = new.setdefault("metadata", {}), old["metadata"]
        for k in ("uid", "creationTimestamp", "name", "namespace", "generation",
                  "resourceVersion", "deletionTimestamp"):
            if k in om:
                nm[k] = om[k]
            else:
                nm.pop(k, None)
        new["apiVersion"], new["kind"] = rt.gv, rt.kind

    def commit(self, rt, old, new, manager, op, dry, sub):
        """An Update (PUT or patch): the manager takes the fields it changed."""
        user_mf = (new.get("metadata") or {}).get("managedFields")
        new = self.restrict(rt, old, new, sub)
        self.keep_identity(rt, old, new)
        self.default(rt, new, old)
        new_fs = self.owned_fields(rt, new, sub)
        changed = {p for p in new_fs if get_at(old, p) != get_at(new, p)}
        entries = []
        mine = set()
        for e in old["metadata"].get("managedFields") or []:
            fs = from_fields_v1(e.get("fieldsV1"))
            same_scope = (e.get("subresource") == "status") == (sub == "status")
            if self.entry_key(e) == (manager, op, sub or ""):
                mine = fs
                continue
            if same_scope:
                fs = {p for p in fs if p not in changed and self.present_in(new, p)}
            if fs:
                e = dict(e, fieldsV1=to_fields_v1(fs))
                entries.append(e)
        mine = {p for p in mine if self.present_in(new, p)} | changed
        entries = self.set_entry(entries, manager, op, rt, sub, mine) if mine else entries
        if isinstance(user_mf, list) and user_mf != old["metadata"].get("managedFields"):
            entries = [e for e in user_mf if isinstance(e, dict) and e.get("manager")]
        return self.finish(rt, old, new, entries, dry)

    @staticmethod
    def present_in(obj, path):
        return get_at(obj, path)[0]

    def apply(self, rt, old, cfg, manager, force, dry, sub):
        """Server-side apply onto an existing object."""
        granular = not rt.crd
        applied = self.restrict(rt, old, ssa_merge(old, cfg, granular), sub)
        new_fs = self.owned_fields(rt, cfg, sub)
        key = (manager, "Apply", sub or "")
        entries = [dict(e) for e in old["metadata"].get("managedFields") or []]
        mine_before = set()
        for e in entries:
            if self.entry_key(e) == key:
                mine_before = from_fields_v1(e.get("fieldsV1"))
        conflicts = []          # (manager entry index, path)
        for i, e in enumerate(entries):
            if self.entry_key(e) == key:
                continue
            for q in from_fields_v1(e.get("fieldsV1")):
                for p in new_fs:
                    if q[:len(p)] != p and p[:len(q)] != q:
                        continue
                    a, b = get_at(old, q), get_at(applied, q)
                    if a[0] and b[0] and (isinstance(a[1], dict) or
                                          (q and isinstance(q[-1], tuple))):
                        continue        # a map or list item exists on both sides
                    if a != b:
                        conflicts.append((i, q))
                        break
        if conflicts and not force:
            raise apply_conflict(rt, old, entries, conflicts)
        lost = {}
        for i, q in conflicts:
            lost.setdefault(i, set()).add(q)
        kept = []
        others = set()
        for i, e in enumerate(entries):
            if self.entry_key(e) == key:
                continue
            fs = from_fields_v1(e.get("fieldsV1"))
            if i in lost:
                fs = {p for p in fs if not any(p[:len(q)] == q for q in lost[i])}
            if not fs:
                continue
            others |= fs
            kept.append(dict(e, fieldsV1=to_fields_v1(fs)))
        # Fields this manager applied before and no longer does go away,
        # unless another manager owns them (or something under them).
        new = applied
        for p in sorted(mine_before - new_fs, key=len, reverse=True):
            if any(q[:len(p)] == p for q in others | new_fs):
                continue
            remove_at(new, p)
        self.keep_identity(rt, old, new)
        self.default(rt, new, old)
        entries = self.set_entry(kept, manager, "Apply", rt, sub, new_fs)
        return self.finish(rt, old, new, entries, dry)

    def finish(self, rt, old, new, entries, dry):
        """Validates, bumps resourceVersion and generation when anything
        changed, stores (unless dry) and answers the object."""
        errs = validate(rt, new) + validate_update(rt, old, new) + self.admit_resize(rt, old, new)
        if errs:
            raise invalid_error(rt, old["metadata"]["name"], errs)
        meta = new["metadata"]
        if entries:
            meta["managedFields"] = entries
        else:
            meta.pop("managedFields", None)

        def sets(o):
            return sorted((json.dumps(self.entry_key(e)), json.dumps(e.get("fieldsV1"), sort_keys=True))
                          for e in (o["metadata"].get("managedFields") or []))
        strip = lambda o: {k: v for k, v in o.items() if k != "metadata"}  # noqa: E731
        meta_strip = lambda o: {k: v for k, v in o["metadata"].items() if k != "managedFields"}  # noqa: E731
        if strip(old) == strip(new) and meta_strip(old) == meta_strip(new) and sets(old) == sets(new):
            return self.present(rt, old)        # a no-op: nothing is written
        if rt.generation and {k: v for k, v in strip(old).items() if k != "status"} != \
                {k: v for k, v in strip(new).items() if k != "status"}:
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if dry:
            return self.present(rt, new)
        self._bucket(rt)[(meta.get("namespace", ""), meta["name"])] = new
        self.bump(rt, new)
        self.after_write(rt, old, new)
        return self.present(rt, new)

    def admit_resize(self, rt, old, new):
        """The PersistentVolumeClaimResize admission plugin: a bound claim
        grows only when its StorageClass allows volume expansion."""
        if rt.kind != "PersistentVolumeClaim" or not _v(old, "spec", "volumeName"):
            return []
        o = quantity(_v(old, "spec", "resources", "requests", "storage") or "0") or 0
        n = quantity(_v(new, "spec", "resources", "requests", "storage") or "0") or 0
        if n <= o:
            return []
        sc = self.peek(self.rtype("storage.k8s.io", "v1", "storageclasses"), None,
                       _v(new, "spec", "storageClassName") or "")
        if sc is None or not sc.get("allowVolumeExpansion"):
            return [forbidden("spec.resources.requests.storage", "only dynamically provisioned "
                              "pvc can be resized and the storageclass that provisions the pvc "
                              "must support resize")]
        return []

    def delete(self, rt, ns, name, policy=None, dry=False, preconditions=None):
        """DELETE; returns (object, warning or None)."""
        with self.lock:
            obj = self.peek(rt, ns, name)
            if obj is None:
                raise not_found(rt, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": '
                               'Precondition failed: UID in precondition: %s, UID in object meta: %s'
                               % (rt.qualified, name, pre["uid"], obj["metadata"]["uid"]),
                               {"name": name, "group": rt.group, "kind": rt.plural})
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise conflict_modified(rt, name)
            if rt.kind == "Namespace" and name in ("default", "kube-system", "kube-public"):
                raise ApiError(403, "Forbidden", 'namespaces "%s" is forbidden: this namespace '
                               'may not be deleted' % name,
                               {"name": name, "kind": "namespaces"})
            if policy not in (None, "Orphan", "Background", "Foreground"):
                raise invalid_error(rt, name, [unsupported("propagationPolicy", policy,
                                                           ["Foreground", "Background", "Orphan"])])
            warning = None
            if policy is None and rt.kind == "Job":
                policy = "Orphan"
                warning = ('299 - "child pods are preserved by default when jobs are deleted; '
                           'set propagationPolicy=Background to remove them or set '
                           'propagationPolicy=Orphan to suppress this warning"')
            out = self.present(rt, obj)
            if rt.kind == "Namespace":
                # As the namespace controller does: Terminating at once, its
                # content and then itself removed shortly after.
                out.setdefault("status", {})["phase"] = "Terminating"
                out["metadata"].setdefault("deletionTimestamp", now_iso())
                if dry or obj["metadata"].get("deletionTimestamp"):
                    return out, warning
                obj["metadata"]["deletionTimestamp"] = out["metadata"]["deletionTimestamp"]
                obj.setdefault("status", {})["phase"] = "Terminating"
                self.bump(rt, obj)
                out["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
                timer = threading.Timer(NS_DELAY, self.finish_namespace, (obj["metadata"]["uid"],))
                timer.daemon = True
                timer.start()
                self.save()
                return out, warning
            if dry:
                return out, warning
            self.remove(rt, obj, policy or "Background")
            return out, warning

    def finish_namespace(self, uid):
        with self.lock:
            nst = self.rtype("", "v1", "namespaces")
            for o in list(self._bucket(nst).values()):
                if o["metadata"]["uid"] == uid:
                    self.remove(nst, o, "Background")

    def remove(self, rt, obj, policy):
        meta = obj["metadata"]
        self._bucket(rt).pop((meta.get("namespace", ""), meta["name"]), None)
        self.seen.pop(meta["uid"], None)
        self.bump(rt, obj, "DELETED")
        if rt.kind == "Namespace":
            for (grp, plural), bucket in list(self.objects.items()):
                for (ons, oname), o in list(bucket.items()):
                    if ons == meta["name"]:
                        t = self.type_of(grp, plural)
                        if t is not None:
                            self.remove(t, o, "Background")
        elif rt.kind == "CustomResourceDefinition":
            self.unregister_crd(obj)
        elif rt.kind == "PersistentVolumeClaim":
            self.release_volume(obj)
        # Dependents (ownerReferences), as the garbage collector does.
        for (grp, plural), bucket in list(self.objects.items()):
            for o in list(bucket.values()):
                refs = o["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == meta["uid"] for r in refs):
                    continue
                t = self.type_of(grp, plural)
                if policy == "Orphan":
                    o["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != meta["uid"]]
                    if not o["metadata"]["ownerReferences"]:
                        del o["metadata"]["ownerReferences"]
                    if t is not None:
                        self.bump(t, o)
                elif t is not None:
                    self.remove(t, o, "Background")
        self.save()

    def type_of(self, group, plural):
        return next((t for t in self.types.values() if t.group == group and t.plural == plural), None)

    def release_volume(self, pvc):
        pvt = self.rtype("", "v1", "persistentvolumes")
        for pv in list(self._bucket(pvt).values()):
            ref = _v(pv, "spec", "claimRef") or {}
            if ref.get("uid") != pvc["metadata"]["uid"]:
                continue
            if _v(pv, "spec", "persistentVolumeReclaimPolicy") == "Retain":
                pv.setdefault("status", {})["phase"] = "Released"
                self.bump(pvt, pv)
            else:
                self.remove(pvt, pv, "Background")

    def after_write(self, rt, old, new):
        if rt.kind == "CustomResourceDefinition":
            if old is not None:
                self.unregister_crd(old)
            self.register_crd(new)
        self.save()

    # Defaulting ---------------------------------------------------------

    def default(self, rt, obj, old):
        """What the API server fills in (defaulting, admission, strategies)."""
        meta = obj.setdefault("metadata", {})
        kind = rt.kind
        if kind == "Namespace":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name")
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif kind == "Secret":
            sd = obj.pop("stringData", None)
            if isinstance(sd, dict):
                data = obj.setdefault("data", {}) or {}
                obj["data"] = data
                for k, v in sd.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
            for k, v in list((obj.get("data") or {}).items()):
                try:
                    base64.b64decode(str(v), validate=True)
                except ValueError:
                    raise bad_request("illegal base64 data in data[%s]" % k)
            obj.setdefault("type", "Opaque")
        elif kind == "StorageClass":
            obj.setdefault("reclaimPolicy", "Delete")
            obj.setdefault("volumeBindingMode", "Immediate")
        elif kind == "PersistentVolumeClaim":
            spec = obj.setdefault("spec", {})
            spec.setdefault("volumeMode", "Filesystem")
            if old is None and "storageClassName" not in spec:
                default = self.default_class()
                if default:
                    spec["storageClassName"] = default
            if old is None:
                obj["status"] = {"phase": "Pending"}
        elif kind == "PersistentVolume":
            spec = obj.setdefault("spec", {})
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")
            obj.setdefault("status", {}).setdefault("phase", "Available" if not spec.get("claimRef") else "Bound")
        elif kind == "Pod":
            default_pod_spec(obj.setdefault("spec", {}))
            if old is None:
                obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
        elif kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if old is None:
                spec.setdefault("clusterIP", "10.96.%d.%d" % (random.randint(0, 255), random.randint(1, 254)))
            elif "clusterIP" in (old.get("spec") or {}):
                spec["clusterIP"] = old["spec"]["clusterIP"]
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            for p in spec.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
                    p.setdefault("targetPort", p.get("port"))
            obj.setdefault("status", {"loadBalancer": {}})
        elif kind == "Job":
            spec = obj.setdefault("spec", {})
            for k, v in (("backoffLimit", 6), ("completions", 1), ("parallelism", 1),
                         ("completionMode", "NonIndexed"), ("suspend", False),
                         ("manualSelector", None), ("podReplacementPolicy", "TerminatingOrFailed")):
                if v is not None:
                    spec.setdefault(k, v)
            uid = meta.get("uid")
            if not spec.get("manualSelector") and "selector" not in spec:
                spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tmpl = spec.setdefault("template", {})
            if isinstance(tmpl, dict):
                labels = tmpl.setdefault("metadata", {}).setdefault("labels", {})
                if old is None:
                    labels.update({"batch.kubernetes.io/controller-uid": uid,
                                   "batch.kubernetes.io/job-name": meta.get("name"),
                                   "controller-uid": uid, "job-name": meta.get("name")})
                if isinstance(tmpl.get("spec"), dict):
                    default_pod_spec(tmpl["spec"])
            if old is None:
                obj["status"] = {}
        elif kind in WORKLOADS:
            spec = obj.setdefault("spec", {})
            spec.setdefault("revisionHistoryLimit", 10)
            if kind == "Deployment":
                spec.setdefault("replicas", 1)
                spec.setdefault("progressDeadlineSeconds", 600)
                strat = spec.setdefault("strategy", {})
                if isinstance(strat, dict):
                    strat.setdefault("type", "RollingUpdate")
                    if strat["type"] == "RollingUpdate":
                        strat.setdefault("rollingUpdate", {"maxUnavailable": "25%",
                                                           "maxSurge": "25%"})
            elif kind == "DaemonSet":
                strat = spec.setdefault("updateStrategy", {})
                if isinstance(strat, dict):
                    strat.setdefault("type", "RollingUpdate")
                    if strat["type"] == "RollingUpdate":
                        strat.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
            else:
                spec.setdefault("replicas", 1)
                spec.setdefault("podManagementPolicy", "OrderedReady")
                spec.setdefault("persistentVolumeClaimRetentionPolicy",
                                {"whenDeleted": "Retain", "whenScaled": "Retain"})
                strat = spec.setdefault("updateStrategy", {})
                if isinstance(strat, dict):
                    strat.setdefault("type", "RollingUpdate")
                    if strat["type"] == "RollingUpdate":
                        strat.setdefault("rollingUpdate", {"partition": 0})
            if isinstance(_v(spec, "template", "spec"), dict):
                default_pod_spec(spec["template"]["spec"])
            if old is None:
                obj["status"] = {}
        elif kind == "Node":
            obj.setdefault("spec", {})
        elif kind == "CustomResourceDefinition":
            spec = obj.setdefault("spec", {})
            names = dict(spec.get("names") or {})
            names.setdefault("singular", (names.get("kind") or "").lower())
            names.setdefault("listKind", (names.get("kind") or "") + "List")
            spec["names"] = names
            obj["status"] = {"acceptedNames": names, "storedVersions": [
                v.get("name") for v in spec.get("versions") or [] if v.get("storage")],
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now_iso()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted",
                     "lastTransitionTime": now_iso()}]}
            if old is not None and old.get("status"):
                obj["status"] = old["status"]

    def default_class(self):
        sct = self.rtype("storage.k8s.io", "v1", "storageclasses")
        defaults = sorted((o["metadata"]["creationTimestamp"], o["metadata"]["name"])
                          for o in self._bucket(sct).values()
                          if (o["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true")
        return defaults[-1][1] if defaults else None

    # Controller writes --------------------------------------------------

    def controller_write(self, rt, obj, manager, status=None, mutate=None):
        """A controller's Update of an object's status (and/or main part)."""
        old = self.peek(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if old is None:
            return
        if mutate is not None:
            new = copy.deepcopy(old)
            mutate(new)
            self.commit(rt, old, new, manager, "Update", False, None)
            old = self.peek(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if status is not None:
            new = copy.deepcopy(old)
            new["status"] = status
            self.commit(rt, old, new, manager, "Update", False, "status" if rt.status else None)

    # Persistence --------------------------------------------------------

    def save(self):
        if not self.state_file:
            return
        data = {"rv": self.rv, "objects": [o for b in self.objects.values() for o in b.values()]}
        tmp = self.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.state_file)

    def load(self, path):
        if not path or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        objs = data.get("objects") or []
        for o in objs:
            if o.get("kind") == "CustomResourceDefinition":
                self.register_crd(o)
        for o in objs:
            rt = self.by_kind(o.get("apiVersion"), o.get("kind"))
            if rt is None:
                continue
            m = o["metadata"]
            self._bucket(rt)[(m.get("namespace", ""), m["name"])] = o
        self.rv = max(self.rv, int(data.get("rv", 0)))


def not_found(rt, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (rt.qualified, name),
                    {"name": name, "group": rt.group, "kind": rt.plural})


def conflict_modified(rt, name):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has '
                    'been modified; please apply your changes to the latest version and try '
                    'again' % (rt.qualified, name),
                    {"name": name, "group": rt.group, "kind": rt.plural})


def unsupported_media():
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml")


def print_manager(e):
    s = '"%s"' % e.get("manager")
    if e.get("subresource"):
        s += ' with subresource "%s"' % e["subresource"]
    if e.get("operation") == "Update":
        s += " using %s" % e.get("apiVersion")
        if e.get("time"):
            s += " at %s" % e["time"]
    return s


def apply_conflict(rt, old, entries, conflicts):
    """409 Conflict worded as structured-merge-diff words it."""
    causes = [{"reason": "FieldManagerConflict",
               "message": "conflict with %s" % print_manager(entries[i]),
               "field": path_str(q)} for i, q in conflicts]
    if len(conflicts) == 1:
        i, q = conflicts[0]
        msg = "Apply failed with 1 conflict: conflict with %s: %s" % (print_manager(entries[i]),
                                                                       path_str(q))
    else:
        by = {}
        for i, q in conflicts:
            by.setdefault(print_manager(entries[i]), []).append(path_str(q))
        parts = []
        for m in sorted(by):
            parts.append("conflicts with %s:" % m)
            parts += ["- %s" % p for p in by[m]]
        msg = "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(parts))
    # The real server's apply conflict carries only the causes in its
    # details (no name, group or kind).
    return ApiError(409, "Conflict", msg, {"causes": causes})


# ---------------------------------------------------------------------------
# The controller stand-in: no Trident and no kube-controller-manager run
# here, so this thread moves TridentBackendConfigs, PVCs, Jobs, Nodes and
# workloads (Deployments, StatefulSets, DaemonSets) along the way theirs
# would, a little later than the write that asked for it.

TBC_DELAY, PVC_DELAY, JOB_DELAY, SNAP_DELAY = 0.2, 0.1, 0.3, 0.2
NOTEBOOK_LABEL = "notebook-name"    # the label Kubeflow's controller puts on its pods
READY_DELAY = 0.3       # default of --ready-delay: workloads become ready after it
NEVER_READY = "fake.aicp.io/never-ready"
READY_DELAY_ANN = "fake.aicp.io/ready-delay"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NS_DELAY = 0.2          # how long a deleted namespace stays Terminating
WATCH_EVENTS = 10000    # watch events kept (older resourceVersions get 410 Gone)
WATCH_MAX = 60          # seconds a watch lasts at most (clients watch again)


class Controller(threading.Thread):
    def __init__(self, store, ready_delay=READY_DELAY, ontap_ca=None):
        super().__init__(daemon=True)
        self.store = store
        self.ready_delay = ready_delay
        self.ontap_ca = ontap_ca
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(0.05):
            try:
                with self.store.lock:
                    self.reconcile(time.time())
            except Exception:   # a bug in the controller must not kill it quietly
                sys.stderr.write("kube fake controller: " + "".join(
                    traceback.format_exception_only(sys.exc_info()[0], None)) +
                    "".join(traceback.format_tb(sys.exc_info()[2])))

    def due(self, obj, delay, now):
        first = self.store.seen.setdefault(obj["metadata"]["uid"], now)
        return now - first >= delay

    def reconcile(self, now):
        s = self.store
        tbct = s.rtype("trident.netapp.io", "v1", "tridentbackendconfigs")
        if tbct is not None:
            for tbc in list(s._bucket(tbct).values()):
                if self.due(tbc, TBC_DELAY, now):
                    self.backend(tbct, tbc)
        pvct = s.rtype("", "v1", "persistentvolumeclaims")
        for pvc in list(s._bucket(pvct).values()):
            if _v(pvc, "status", "phase") != "Bound" and self.due(pvc, PVC_DELAY, now):
                self.bind(pvct, pvc)
            elif _v(pvc, "status", "phase") == "Bound":
                self.resize(pvct, pvc)
        jobt = s.rtype("batch", "v1", "jobs")
        for job in list(s._bucket(jobt).values()):
            if not (job.get("status") or {}).get("conditions") and \
                    not _v(job, "spec", "suspend") and self.due(job, JOB_DELAY, now):
                if not (job.get("status") or {}).get("active"):
                    self.run_job(jobt, job)
                else:
                    self.finish_job(jobt, job, now)
        nbt = s.rtype("kubeflow.org", "v1", "notebooks") or \
            s.rtype("kubeflow.org", "v1beta1", "notebooks")
        if nbt is not None:
            for nb in list(s._bucket(nbt).values()):
                self.notebook(nbt, nb, now)
        podt = s.rtype("", "v1", "pods")
        for pod in list(s._bucket(podt).values()):
            # Job pods are written finished by run_job; any other pod runs.
            by_job = any(isinstance(r, dict) and r.get("kind") == "Job"
                         for r in pod["metadata"].get("ownerReferences") or [])
            if _v(pod, "status", "phase") == "Pending" and not by_job \
                    and self.due(pod, PVC_DELAY, now) and self.volumes_bound(pod):
                self.start_pod(podt, pod)
        vst = s.rtype(SNAP_GROUP, "v1", "volumesnapshots")
        if vst is not None:
            for vs in list(s._bucket(vst).values()):
                if _v(vs, "status", "readyToUse") is not True and self.due(vs, SNAP_DELAY, now):
                    self.snapshot(vst, vs)
            self.snapshot_contents_gc(vst)
        nodet = s.rtype("", "v1", "nodes")
        for node in list(s._bucket(nodet).values()):
            self.node(nodet, node)
        for plural in ("deployments", "statefulsets", "daemonsets"):
            rt = s.rtype("apps", "v1", plural)
            for obj in list(s._bucket(rt).values()):
                ann = obj["metadata"].get("annotations") or {}
                try:
                    delay = float(ann.get(READY_DELAY_ANN, self.ready_delay))
                except ValueError:
                    delay = self.ready_delay
                # Each generation is rolled out anew: its own delay.
                key = "%s/%s" % (obj["metadata"]["uid"], obj["metadata"].get("generation", 1))
                if now - s.seen.setdefault(key, now) >= delay:
                    self.rollout(rt, obj, ann.get(NEVER_READY) == "true")

    def volumes_bound(self, pod):
        """A notebook's pod starts only once its claims are Bound (as its
        volumes must be attached first); other pods are not held back."""
        if NOTEBOOK_LABEL not in (pod["metadata"].get("labels") or {}):
            return True
        s = self.store
        pvct = s.rtype("", "v1", "persistentvolumeclaims")
        for v in _v(pod, "spec", "volumes") or []:
            claim = _v(v, "persistentVolumeClaim", "claimName") if isinstance(v, dict) else None
            if claim is None:
                continue
            pvc = s.peek(pvct, pod["metadata"]["namespace"], claim)
            if pvc is None or _v(pvc, "status", "phase") != "Bound":
                return False
        return True

    def start_pod(self, podt, pod):
        """The kubelet's status of a pod that runs: phase Running, its
        containers started and, unless the pod has the never-ready
        annotation (a readiness probe that keeps failing), Ready."""
        t = now_iso()
        ready = (pod["metadata"].get("annotations") or {}).get(NEVER_READY) != "true"
        names = [c.get("name") for c in _v(pod, "spec", "containers") or [] if isinstance(c, dict)]
        rs = "True" if ready else "False"

        def cond(ctype, status):
            c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": t}
            if status == "False":
                c.update(reason="ContainersNotReady", message="containers with unready status: "
                         "[%s]" % " ".join(names))
            return c
        st = dict(pod.get("status") or {}, phase="Running", podIP="10.244.0.%d" %
                  random.randint(2, 250), hostIP="10.0.0.1", startTime=t)
        st["conditions"] = [cond("PodReadyToStartContainers", "True"),
                            cond("Initialized", "True"), cond("Ready", rs),
                            cond("ContainersReady", rs), cond("PodScheduled", "True")]
        st["containerStatuses"] = [
            {"name": c.get("name"), "image": c.get("image"),
             "imageID": "%s@sha256:%s" % (c.get("image"), hashlib.sha256(
                 str(c.get("image")).encode()).hexdigest()),
             "containerID": "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex,
             "ready": ready, "started": True, "restartCount": 0,
             "state": {"running": {"startedAt": t}}}
            for c in _v(pod, "spec", "containers") or [] if isinstance(c, dict)]
        self.store.controller_write(podt, pod, "kubelet", status=st)

    def notebook(self, nbt, nb, now):
        """Kubeflow's notebook controller and the StatefulSet controller in
        one: a StatefulSet <name> and a Service <name> owned by the
        Notebook, the pod <name>-0 built from spec.template (made anew when
        the template changes, after --ready-delay), and the Notebook's
        status (readyReplicas, containerState, the pod's conditions)."""
        s = self.store
        meta = nb["metadata"]
        ns, name = meta["namespace"], meta["name"]
        ann = meta.get("annotations") or {}
        try:
            delay = float(ann.get(READY_DELAY_ANN, self.ready_delay))
        except ValueError:
            delay = self.ready_delay
        tmpl = copy.deepcopy(_v(nb, "spec", "template") or {})
        pspec = tmpl.get("spec") if isinstance(tmpl.get("spec"), dict) else {}
        labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
        labels.update({"statefulset": name, NOTEBOOK_LABEL: name})
        stst, svct, podt = (s.rtype("apps", "v1", "statefulsets"), s.rtype("", "v1", "services"),
                            s.rtype("", "v1", "pods"))
        owner = {"apiVersion": nb["apiVersion"], "kind": "Notebook", "name": name,
                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}
        sts_tmpl = {"metadata": {"labels": labels}, "spec": pspec}
        sts = s.peek(stst, ns, name)
        try:
            if sts is None:
                s.create(stst, ns, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {
                    "name": name, "ownerReferences": [owner]}, "spec": {
                    "replicas": 1, "serviceName": "", "selector": {"matchLabels": {
                        "statefulset": name}}, "template": sts_tmpl}}, "notebook-controller")
                sts = s.peek(stst, ns, name)
            elif _v(sts, "spec", "template", "spec") != pspec:
                s.controller_write(stst, sts, "notebook-controller",
                                   mutate=lambda o: o["spec"].update(template=sts_tmpl))
                sts = s.peek(stst, ns, name)
            if s.peek(svct, ns, name) is None:
                s.create(svct, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {
                    "name": name, "ownerReferences": [owner]}, "spec": {
                    "selector": {"statefulset": name}, "ports": [{
                        "name": "http-" + name, "port": 80, "targetPort": 8888,
                        "protocol": "TCP"}]}}, "notebook-controller")
        except ApiError:
            return              # an invalid template: the controller cannot go on
        if sts is None:
            return
        rev = self.revision(sts)
        key = "%s/%s" % (meta["uid"], meta.get("generation", 1))
        pname = name + "-0"
        pod = s.peek(podt, ns, pname)
        current = pod is not None and \
            (pod["metadata"].get("labels") or {}).get("controller-revision-hash") == rev
        if not current and now - s.seen.setdefault(key, now) >= delay:
            if pod is not None:
                s.remove(podt, pod, "Background")
            plabels = dict(labels, **{"controller-revision-hash": rev,
                                      "statefulset.kubernetes.io/pod-name": pname})
            pmeta = {"name": pname, "labels": plabels, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                "uid": sts["metadata"]["uid"], "controller": True,
                "blockOwnerDeletion": True}]}
            if ann.get(NEVER_READY) == "true":
                pmeta["annotations"] = {NEVER_READY: "true"}
            try:
                s.create(podt, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": pmeta,
                                    "spec": dict(copy.deepcopy(pspec), nodeName="fake-node",
                                                 hostname=pname)}, "kube-controller-manager")
            except ApiError:
                return
            pod = s.peek(podt, ns, pname)
        st = {}
        if pod is not None:
            ready = any(isinstance(c, dict) and c.get("type") == "Ready" and
                        c.get("status") == "True" for c in _v(pod, "status", "conditions") or [])
            if ready:
                st["readyReplicas"] = 1
            cs = (_v(pod, "status", "containerStatuses") or [{}])[0]
            st["containerState"] = cs.get("state") or {"waiting": {"reason": "PodInitializing"}}
            st["conditions"] = [{"type": c.get("type"), "status": c.get("status"),
                                 "lastProbeTime": c.get("lastProbeTime"),
                                 "lastTransitionTime": c.get("lastTransitionTime")}
                                for c in _v(pod, "status", "conditions") or []
                                if isinstance(c, dict)]
        else:
            st = {"readyReplicas": 0, "containerState": {}, "conditions": []}
        if nb.get("status") != st:
            s.controller_write(nbt, nb, "notebook-controller", status=st)

    def snapshot(self, vst, vs):
        """The CSI snapshot controller and the driver's sidecar: a snapshot of
        a Bound claim gets a VolumeSnapshotContent and is ready to use at
        once; anything else gets status.error and readyToUse false."""
        s = self.store
        meta, spec = vs["metadata"], vs.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        src = spec.get("source") or {}
        claim = src.get("persistentVolumeClaimName")
        pvct, pvt = s.rtype("", "v1", "persistentvolumeclaims"), s.rtype("", "v1",
                                                                          "persistentvolumes")
        clst = s.rtype(SNAP_GROUP, "v1", "volumesnapshotclasses")
        vsct = s.rtype(SNAP_GROUP, "v1", "volumesnapshotcontents")
        t = now_iso()

        def error(msg):
            st = {"readyToUse": False, "error": {"message": msg, "time": t}}
            old = vs.get("status") or {}
            if (old.get("error") or {}).get("message") != msg:
                s.controller_write(vst, vs, "snapshot-controller", status=st)
        if claim is None:
            return              # pre-provisioned contents: not simulated
        pvc = s.peek(pvct, ns, claim)
        if pvc is None:
            return error('failed to get input parameters to create snapshot %s: '
                         '"persistentvolumeclaim \\"%s\\" not found"' % (name, claim))
        if _v(pvc, "status", "phase") != "Bound":
            return error("failed to get input parameters to create snapshot %s: \"the PVC %s "
                         "is not yet bound to a PV, will not attempt to take a snapshot\""
                         % (name, claim))
        pv = s.peek(pvt, None, _v(pvc, "spec", "volumeName") or "")
        driver = _v(pv, "spec", "csi", "driver") or ""
        cname = spec.get("volumeSnapshotClassName")
        if cname is None:
            defaults = sorted(o["metadata"]["name"] for o in s._bucket(clst).values()
                              if (o["metadata"].get("annotations") or {}).get(DEFAULT_SNAP_CLASS)
                              == "true" and o.get("driver") == driver)
            if len(defaults) != 1:
                return error("cannot find default snapshot class" if not defaults else
                             "%d default snapshot classes were found" % len(defaults))
            cname = defaults[0]
            s.controller_write(vst, vs, "snapshot-controller", mutate=lambda o: o[
                "spec"].update(volumeSnapshotClassName=cname))
            vs = s.peek(vst, ns, name)
        cls = s.peek(clst, None, cname)
        if cls is None:
            return error('Failed to get snapshot class with error volumesnapshotclasses.%s '
                         '"%s" not found' % (SNAP_GROUP, cname))
        size = _v(pvc, "status", "capacity", "storage") or \
            _v(pvc, "spec", "resources", "requests", "storage")
        content = "snapcontent-" + meta["uid"]
        handle = "%s#snapshot-%s" % (_v(pv, "spec", "csi", "volumeHandle") or claim,
                                     meta["uid"][:8])
        created = time.time()
        if s.peek(vsct, None, content) is None:
            try:
                s.create(vsct, None, {
                    "apiVersion": SNAP_GROUP + "/v1", "kind": "VolumeSnapshotContent",
                    "metadata": {"name": content},
                    "spec": {"deletionPolicy": cls.get("deletionPolicy", "Delete"),
                             "driver": cls.get("driver", driver),
                             "source": {"volumeHandle": _v(pv, "spec", "csi", "volumeHandle")
                                        or claim},
                             "volumeSnapshotClassName": cname,
                             "volumeSnapshotRef": {"apiVersion": SNAP_GROUP + "/v1",
                                                   "kind": "VolumeSnapshot", "name": name,
                                                   "namespace": ns, "uid": meta["uid"]}}},
                    "snapshot-controller")
            except ApiError:
                return
            c = s.peek(vsct, None, content)
            s.controller_write(vsct, c, "csi-snapshotter", status={
                "creationTime": int(created * 1e9), "readyToUse": True,
                "restoreSize": int(quantity(size) or 0), "snapshotHandle": handle})
        s.controller_write(vst, vs, "snapshot-controller", status={
            "boundVolumeSnapshotContentName": content, "creationTime": now_iso(created),
            "readyToUse": True, "restoreSize": size})

    def snapshot_contents_gc(self, vst):
        """A content whose snapshot is gone goes too when its deletionPolicy
        is Delete (the snapshot on the storage is deleted with it)."""
        s = self.store
        vsct = s.rtype(SNAP_GROUP, "v1", "volumesnapshotcontents")
        if vsct is None:
            return
        for c in list(s._bucket(vsct).values()):
            ref = _v(c, "spec", "volumeSnapshotRef") or {}
            vs = s.peek(vst, ref.get("namespace"), ref.get("name") or "")
            if vs is not None and vs["metadata"]["uid"] == ref.get("uid"):
                continue
            if _v(c, "spec", "deletionPolicy") == "Delete" and ref.get("uid"):
                s.remove(vsct, c, "Background")

    def node(self, nodet, node):
        """The kubelet's status (Ready, nodeInfo, addresses) for a Node that
        has none, and the node lifecycle controller's unschedulable taint."""
        s = self.store
        st = node.get("status") or {}
        if not any(isinstance(c, dict) and c.get("type") == "Ready"
                   for c in st.get("conditions") or []):
            t = now_iso()
            st = copy.deepcopy(st)
            st.setdefault("conditions", []).append({
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": t,
                "lastTransitionTime": t})
            st.setdefault("nodeInfo", {"kubeletVersion": "v1.32.0", "kubeProxyVersion": "",
                                       "containerRuntimeVersion": "containerd://1.7.24",
                                       "operatingSystem": "linux", "architecture": "amd64",
                                       "osImage": "Fake Linux", "kernelVersion": "6.8.0-fake"})
            st.setdefault("addresses", [
                {"type": "InternalIP", "address": "10.0.0.%d" % random.randint(2, 250)},
                {"type": "Hostname", "address": node["metadata"]["name"]}])
            s.controller_write(nodet, node, "kubelet", status=st)
            node = s.peek(nodet, None, node["metadata"]["name"])
        taints = _v(node, "spec", "taints") or []
        has = any(isinstance(t, dict) and t.get("key") == UNSCHEDULABLE_TAINT for t in taints)
        want = bool(_v(node, "spec", "unschedulable"))
        if want != has:
            def mutate(o):
                ts = [t for t in o["spec"].get("taints") or []
                      if not (isinstance(t, dict) and t.get("key") == UNSCHEDULABLE_TAINT)]
                if want:
                    ts.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule",
                               "timeAdded": now_iso()})
                if ts:
                    o["spec"]["taints"] = ts
                else:
                    o["spec"].pop("taints", None)
            s.controller_write(nodet, node, "kube-controller-manager", mutate=mutate)

    @staticmethod
    def revision(obj):
        """<name>-<hash of the pod template>: the ReplicaSet / revision name."""
        h = int(hashlib.sha256(json.dumps(_v(obj, "spec", "template"), sort_keys=True)
                               .encode()).hexdigest(), 16)
        alpha = "bcdfghjklmnpqrstvwxz2456789"
        out = ""
        for _ in range(10):
            h, d = divmod(h, len(alpha))
            out += alpha[d]
        return "%s-%s" % (obj["metadata"]["name"], out)

    def rollout(self, rt, obj, never):
        """The status the workload's controller writes once the current
        generation is rolled out: all replicas ready and available, or
        (never-ready annotation) scheduled but none ready."""
        s = self.store
        gen = obj["metadata"].get("generation", 1)
        old = obj.get("status") or {}
        st = {"observedGeneration": gen}
        if rt.kind == "DaemonSet":
            n = len(s._bucket(s.rtype("", "v1", "nodes"))) or 1     # 1: the implicit fake-node
            st.update(currentNumberScheduled=n, desiredNumberScheduled=n, numberMisscheduled=0,
                      numberReady=0 if never else n, updatedNumberScheduled=n)
            st.update({"numberUnavailable": n} if never else {"numberAvailable": n})
        else:
            n = _v(obj, "spec", "replicas", default=1)
            ready = 0 if never else n
            st.update(replicas=n, updatedReplicas=n, readyReplicas=ready, availableReplicas=ready)
            if rt.kind == "StatefulSet":
                st.update(currentReplicas=n, currentRevision=self.revision(obj),
                          updateRevision=self.revision(obj), collisionCount=0)
            else:
                st["unavailableReplicas"] = n - ready
                rs = self.revision(obj)
                st["conditions"] = self.conditions(old, [
                    ("Available", "False", "MinimumReplicasUnavailable",
                     "Deployment does not have minimum availability.") if never and n else
                    ("Available", "True", "MinimumReplicasAvailable",
                     "Deployment has minimum availability."),
                    ("Progressing", "True", "ReplicaSetUpdated",
                     'ReplicaSet "%s" is progressing.' % rs) if never and n else
                    ("Progressing", "True", "NewReplicaSetAvailable",
                     'ReplicaSet "%s" has successfully progressed.' % rs)])
        # As on a cluster, counts that are zero are left out (omitempty).
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                  "unavailableReplicas", "currentReplicas", "numberAvailable",
                  "numberUnavailable", "updatedNumberScheduled"):
            if st.get(k) == 0 and not (k == "replicas" and rt.kind == "StatefulSet"):
                del st[k]
        if st != old:
            s.controller_write(rt, obj, "kube-controller-manager", status=st)

    @staticmethod
    def conditions(old, want):
        """Deployment conditions, keeping the times of those that did not change."""
        prev = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)}
        out = []
        for ctype, status, reason, msg in want:
            p = prev.get(ctype) or {}
            t = now_iso()
            c = {"type": ctype, "status": status, "lastUpdateTime": t, "lastTransitionTime": t,
                 "reason": reason, "message": msg}
            if p.get("status") == status:
                c["lastTransitionTime"] = p.get("lastTransitionTime", t)
                if p.get("reason") == reason and p.get("message") == msg:
                    c["lastUpdateTime"] = p.get("lastUpdateTime", t)
            out.append(c)
        return out

    def backend(self, tbct, tbc):
        s = self.store
        ns, name = tbc["metadata"].get("namespace"), tbc["metadata"]["name"]
        spec = tbc.get("spec") or {}
        cred = (spec.get("credentials") or {}).get("name")
        st = copy.deepcopy(tbc.get("status") or {})
        policy = spec.get("deletionPolicy", "delete")
        secrets = s.rtype("", "v1", "secrets")
        if not cred or s.peek(secrets, ns, cred) is None:
            want = {"phase": "Unbound", "lastOperationStatus": "Failed",
                    "message": "Failed to create backend: credentials secret '%s' not found in "
                               "namespace '%s'" % (cred or "", ns),
                    "backendInfo": {"backendName": "", "backendUUID": ""},
                    "deletionPolicy": policy}
        else:
            info = st.get("backendInfo") or {}
            uid = info.get("backendUUID") or str(uuid.uuid4())
            bname = spec.get("backendName") or info.get("backendName") or \
                "%s_%s" % (spec.get("storageDriverName", "ontap-nas"),
                           (spec.get("managementLIF") or "lif").replace(".", ""))
            want = {"phase": "Bound", "lastOperationStatus": "Success",
                    "message": "Backend '%s' created" % bname if not info.get("backendUUID")
                    else st.get("message", "Backend '%s' created" % bname),
                    "backendInfo": {"backendName": bname, "backendUUID": uid},
                    "deletionPolicy": policy}
            self.backend_object(tbc, bname, uid)
        if {k: st.get(k) for k in want} != want:
            st.update(want)
            s.controller_write(tbct, tbc, "trident_orchestrator", status=st)

    def backend_object(self, tbc, bname, uid):
        s = self.store
        tbet = s.rtype("trident.netapp.io", "v1", "tridentbackends")
        if tbet is None:
            return
        ns = tbc["metadata"].get("namespace")
        for o in s._bucket(tbet).values():
            if o.get("backendUUID") == uid:
                return
        try:
            s.create(tbet, ns, {"apiVersion": "trident.netapp.io/v1", "kind": "TridentBackend",
                                "metadata": {"generateName": "tbe-", "ownerReferences": [
                                    {"apiVersion": "trident.netapp.io/v1",
                                     "kind": "TridentBackendConfig",
                                     "name": tbc["metadata"]["name"],
                                     "uid": tbc["metadata"]["uid"]}]},
                                "backendName": bname, "backendUUID": uid, "online": True,
                                "state": "online", "version": "1",
                                "config": {"ontap_config": {
                                    "storageDriverName": (tbc.get("spec") or {}).get(
                                        "storageDriverName")}}},
                     "trident_orchestrator")
        except ApiError:
            pass

    def bind(self, pvct, pvc):
        s = self.store
        spec = pvc.get("spec") or {}
        cls = spec.get("storageClassName")
        sct = s.rtype("storage.k8s.io", "v1", "storageclasses")
        sc = s.peek(sct, None, cls) if cls else None
        if sc is None:
            return              # no class: stays Pending, as with a real cluster
        ann = pvc["metadata"].get("annotations") or {}
        if ann.get("trident.netapp.io/importOriginalName") and \
                ann.get("trident.netapp.io/importBackendUUID"):
            want = ann["trident.netapp.io/importBackendUUID"]
            tbct = s.rtype("trident.netapp.io", "v1", "tridentbackendconfigs")
            found = tbct is not None and any(
                _v(t, "status", "backendInfo", "backendUUID") == want and
                _v(t, "status", "phase") == "Bound" for t in s._bucket(tbct).values())
            if not found:
                return          # Trident would fail the import: no such backend
        uid = pvc["metadata"]["uid"]
        pvname = spec.get("volumeName") or "pvc-" + uid
        size = _v(spec, "resources", "requests", "storage")
        pvt = s.rtype("", "v1", "persistentvolumes")
        attrs = {"backendUUID": "", "name": pvname}
        if sc.get("provisioner") == "csi.trident.netapp.io" and \
                not ann.get("trident.netapp.io/importOriginalName"):
            # Trident names the ONTAP volume storagePrefix (default
            # "trident_") + the PV's name, '-' -> '_'.
            tbc = self.backend_for(sc)
            prefix = _v(tbc, "spec", "storagePrefix") if tbc else None
            attrs["internalName"] = ((prefix if prefix is not None else "trident_") +
                                     pvname).replace("-", "_")
            if s.peek(pvt, None, pvname) is None and tbc is not None and self.ontap_ca:
                self.provision(tbc, attrs["internalName"], quantity(size or "1Gi"))
        if s.peek(pvt, None, pvname) is None:
            s.create(pvt, None, {
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pvname, "annotations": {
                    "pv.kubernetes.io/provisioned-by": sc.get("provisioner", "")}},
                "spec": {"capacity": {"storage": size}, "accessModes": spec.get("accessModes"),
                         "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                         "storageClassName": cls, "volumeMode": spec.get("volumeMode", "Filesystem"),
                         "mountOptions": sc.get("mountOptions"),
                         "csi": {"driver": sc.get("provisioner", ""), "volumeHandle": pvname,
                                 "volumeAttributes": attrs},
                         "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                      "namespace": pvc["metadata"]["namespace"],
                                      "name": pvc["metadata"]["name"], "uid": uid}}},
                "kube-controller-manager")

        def mutate(o):
            o["spec"]["volumeName"] = pvname
            a = o["metadata"].setdefault("annotations", {})
            a["pv.kubernetes.io/bind-completed"] = "yes"
            a["pv.kubernetes.io/bound-by-controller"] = "yes"
            a["volume.beta.kubernetes.io/storage-provisioner"] = sc.get("provisioner", "")
            a["volume.kubernetes.io/storage-provisioner"] = sc.get("provisioner", "")
        s.controller_write(pvct, pvc, "kube-controller-manager", mutate=mutate,
                           status={"phase": "Bound", "accessModes": spec.get("accessModes"),
                                   "capacity": {"storage": size}})

    def backend_for(self, sc):
        """The Bound TridentBackendConfig a Trident class provisions from:
        its backendType, and the backend its storagePools name."""
        tbct = self.store.rtype("trident.netapp.io", "v1", "tridentbackendconfigs")
        if tbct is None:
            return None
        params = sc.get("parameters") or {}
        pools = params.get("storagePools") or ""
        names = {p.split(":", 1)[0] for p in pools.split(";") if p}
        for t in sorted(self.store._bucket(tbct).values(), key=lambda o: o["metadata"]["name"]):
            name = _v(t, "spec", "backendName") or t["metadata"]["name"]
            if _v(t, "status", "phase") != "Bound":
                continue
            if params.get("backendType") and _v(t, "spec", "storageDriverName") != params["backendType"]:
                continue
            if names and name not in names:
                continue
            return t
        return None

    def provision(self, tbc, volume, size):
        """Makes the volume on the backend's ONTAP as Trident does: the
        ONTAP REST API at managementLIF, with the backend's credentials
        Secret, the backend's defaults (export and snapshot policy). Only
        with --ontap-ca (the fake ONTAP of a demo); errors are logged."""
        import ssl
        import urllib.request
        spec = tbc.get("spec") or {}
        ns = tbc["metadata"].get("namespace")
        sect = self.store.rtype("", "v1", "secrets")
        sec = self.store.peek(sect, ns, _v(spec, "credentials", "name") or "")
        data = (sec or {}).get("data") or {}
        try:
            user = base64.b64decode(data.get("username", "")).decode()
            pw = base64.b64decode(data.get("password", "")).decode()
        except (ValueError, UnicodeDecodeError):
            return
        defaults = spec.get("defaults") or {}
        body = {"name": volume, "svm": {"name": spec.get("svm")}, "size": size,
                "nas": {"path": "/" + volume,
                        "export_policy": {"name": defaults.get("exportPolicy", "default")}},
                "snapshot_policy": {"name": defaults.get("snapshotPolicy", "none")},
                "style": "flexgroup" if spec.get("storageDriverName") == "ontap-nas-flexgroup"
                else "flexvol"}
        req = urllib.request.Request("https://%s/api/storage/volumes" % spec.get("managementLIF"),
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        req.add_header("Authorization", "Basic " + base64.b64encode(
            ("%s:%s" % (user, pw)).encode()).decode())
        try:
            urllib.request.urlopen(req, context=ssl.create_default_context(cafile=self.ontap_ca),
                                   timeout=10).read()
        except Exception as e:  # a stand-in: the PVC binds anyway, drift will say
            sys.stderr.write("trident stand-in: creating %s: %s\n" % (volume, e))

    def resize(self, pvct, pvc):
        """An expanded claim: its volume and status.capacity follow."""
        want = _v(pvc, "spec", "resources", "requests", "storage")
        have = _v(pvc, "status", "capacity", "storage")
        if want is None or quantity(want) == quantity(have or "0"):
            return
        s = self.store
        pvt = s.rtype("", "v1", "persistentvolumes")
        pv = s.peek(pvt, None, _v(pvc, "spec", "volumeName") or "")
        if pv is not None:
            s.controller_write(pvt, pv, "csi-resizer",
                               mutate=lambda o: o["spec"].setdefault("capacity", {}).update(storage=want))
        st = copy.deepcopy(pvc.get("status") or {})
        st.setdefault("capacity", {})["storage"] = want
        s.controller_write(pvct, pvc, "kubelet", status=st)

    def run_job(self, jobt, job):
        """The Job's one pod, finished at once; with FAKE_RUN_S=N in the
        first container's env, Running for N seconds first (finish_job)."""
        s = self.store
        meta = job["metadata"]
        tmpl = _v(job, "spec", "template") or {}
        pspec = copy.deepcopy(tmpl.get("spec") or {})
        c0 = (pspec.get("containers") or [{}])[0]
        env = {e.get("name"): e.get("value") for e in c0.get("env") or [] if isinstance(e, dict)}
        try:
            run_s = float(env.get("FAKE_RUN_S") or 0)
        except ValueError:
            run_s = 0
        podt = s.rtype("", "v1", "pods")
        labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
        pspec["nodeName"] = "fake-node"
        pod = s.create(podt, meta["namespace"], {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "%s-%s" % (meta["name"], rand_suffix()), "labels": labels,
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                              "name": meta["name"], "uid": meta["uid"],
                                              "controller": True, "blockOwnerDeletion": True}]},
            "spec": pspec}, "kube-controller-manager")
        pod = s.peek(podt, meta["namespace"], pod["metadata"]["name"])
        if run_s <= 0:
            self.end_job(jobt, job, pod, env)
            return
        start = now_iso()
        s.running[pod["metadata"]["uid"]] = (time.time(), run_s)
        s.controller_write(podt, pod, "kubelet", status={
            "phase": "Running", "startTime": start,
            "podIP": "10.244.0.%d" % random.randint(2, 250), "qosClass": "BestEffort",
            "containerStatuses": [{"name": c.get("name"), "image": c.get("image"), "ready": True,
                                   "restartCount": 0, "started": True,
                                   "state": {"running": {"startedAt": start}}}
                                  for c in pspec.get("containers") or []]})
        s.controller_write(jobt, job, "kube-controller-manager", status={
            "startTime": start, "active": 1, "ready": 1, "terminating": 0,
            "uncountedTerminatedPods": {}})

    def finish_job(self, jobt, job, now):
        """A FAKE_RUN_S Job whose pod has run its time ends as run_job would
        have ended it at once."""
        s = self.store
        podt = s.rtype("", "v1", "pods")
        for pod in list(s._bucket(podt).values()):
            if not any(isinstance(r, dict) and r.get("uid") == job["metadata"]["uid"]
                       for r in pod["metadata"].get("ownerReferences") or []):
                continue
            started, run_s = s.running.get(pod["metadata"]["uid"], (0, 0))
            if now - started < run_s:
                continue
            s.running.pop(pod["metadata"]["uid"], None)
            c0 = (_v(pod, "spec", "containers") or [{}])[0]
            env = {e.get("name"): e.get("value") for e in c0.get("env") or [] if isinstance(e, dict)}
            self.end_job(jobt, job, pod, env)
            return

    def end_job(self, jobt, job, pod, env):
        s = self.store
        podt = s.rtype("", "v1", "pods")
        fail = env.get("FAKE_FAIL") == "1"
        start = _v(pod, "status", "startTime") or now_iso()
        end = now_iso()
        cstat = [{"name": c.get("name"), "image": c.get("image"), "ready": False,
                  "restartCount": 0, "started": False,
                  "state": {"terminated": {"exitCode": 1 if fail else 0,
                                           "reason": "Error" if fail else "Completed",
                                           "startedAt": start, "finishedAt": end}}}
                 for c in _v(pod, "spec", "containers") or []]
        s.controller_write(podt, pod, "kubelet", status={
            "phase": "Failed" if fail else "Succeeded", "startTime": start,
            "podIP": _v(pod, "status", "podIP") or "10.244.0.%d" % random.randint(2, 250),
            "qosClass": "BestEffort", "containerStatuses": cstat})
        cond = {"type": "Failed" if fail else "Complete", "status": "True",
                "lastProbeTime": end, "lastTransitionTime": end}
        if fail:
            cond.update(reason="BackoffLimitExceeded",
                        message="Job has reached the specified backoff limit")
        st = {"startTime": start, "active": 0, "ready": 0, "terminating": 0,
              "uncountedTerminatedPods": {}, "conditions": [cond]}
        if fail:
            st["failed"] = 1
        else:
            st["succeeded"] = 1
            st["completionTime"] = end
        s.controller_write(jobt, job, "kube-controller-manager", status=st)


# ---------------------------------------------------------------------------
# Tables (what kubectl get prints): the columns a real server sends.

def human_age(created):
    d = max(0, int(time.time() - parse_iso(created)))
    if d < 120:
        return "%ds" % d
    m = d // 60
    if m < 10:
        return "%dm%ds" % (m, d % 60) if d % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    return "%dd" % (h // 24)


MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
         "ReadWriteOncePod": "RWOP"}


def table_columns(rt, o):
    """[(name, cell, priority)] besides Name and Age."""
    k = rt.kind
    s = o.get("spec") or {}
    st = o.get("status") or {}
    if k == "Namespace":
        return [("Status", st.get("phase", ""), 0)]
    if k == "StorageClass":
        return [("Provisioner", o.get("provisioner", ""), 0),
                ("ReclaimPolicy", o.get("reclaimPolicy", ""), 0),
                ("VolumeBindingMode", o.get("volumeBindingMode", ""), 0),
                ("AllowVolumeExpansion", bool(o.get("allowVolumeExpansion", False)), 0)]
    if k == "PersistentVolumeClaim":
        return [("Status", st.get("phase", ""), 0), ("Volume", s.get("volumeName", ""), 0),
                ("Capacity", (st.get("capacity") or {}).get("storage", ""), 0),
                ("Access Modes", ",".join(MODES.get(m, m) for m in st.get("accessModes") or []), 0),
                ("StorageClass", s.get("storageClassName", ""), 0),
                ("VolumeAttributesClass", "<unset>", 0), ("VolumeMode", s.get("volumeMode", ""), 1)]
    if k == "PersistentVolume":
        ref = s.get("claimRef") or {}
        return [("Capacity", (s.get("capacity") or {}).get("storage", ""), 0),
                ("Access Modes", ",".join(MODES.get(m, m) for m in s.get("accessModes") or []), 0),
                ("Reclaim Policy", s.get("persistentVolumeReclaimPolicy", ""), 0),
                ("Status", st.get("phase", ""), 0),
                ("Claim", "%s/%s" % (ref.get("namespace"), ref.get("name")) if ref else "", 0),
                ("StorageClass", s.get("storageClassName", ""), 0),
                ("VolumeAttributesClass", "<unset>", 0), ("Reason", st.get("reason", ""), 0)]
    if k == "Pod":
        phase = st.get("phase", "")
        shown = {"Succeeded": "Completed", "Failed": "Error"}.get(phase, phase)
        n = len(s.get("containers") or [])
        ready = n if phase == "Running" else 0
        return [("Ready", "%d/%d" % (ready, n), 0), ("Status", shown, 0), ("Restarts", 0, 0)]
    if k == "Job":
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        state = "Complete" if conds.get("Complete") == "True" else \
            "Failed" if conds.get("Failed") == "True" else "Running"
        return [("Status", state, 0),
                ("Completions", "%d/%d" % (st.get("succeeded", 0), s.get("completions", 1)), 0),
                ("Duration", "0s" if st.get("completionTime") else "", 0)]
    if k == "Node":
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []
                 if isinstance(c, dict)}
        state = {"True": "Ready", "False": "NotReady"}.get(conds.get("Ready"), "Unknown")
        if s.get("unschedulable"):
            state += ",SchedulingDisabled"
        roles = sorted(lk.split("/", 1)[1] for lk in (o.get("metadata") or {}).get("labels") or {}
                       if lk.startswith("node-role.kubernetes.io/"))
        ip = next((a.get("address") for a in st.get("addresses") or []
                   if isinstance(a, dict) and a.get("type") == "InternalIP"), "<none>")
        return [("Status", state, 0), ("Roles", ",".join(roles) or "<none>", 0),
                ("Version", (st.get("nodeInfo") or {}).get("kubeletVersion", ""), 0),
                ("Internal-IP", ip, 1), ("External-IP", "<none>", 1)]
    if k == "Deployment":
        return [("Ready", "%d/%d" % (st.get("readyReplicas", 0), s.get("replicas", 1)), 0),
                ("Up-to-date", st.get("updatedReplicas", 0), 0),
                ("Available", st.get("availableReplicas", 0), 0)]
    if k == "StatefulSet":
        return [("Ready", "%d/%d" % (st.get("readyReplicas", 0), s.get("replicas", 1)), 0)]
    if k == "DaemonSet":
        sel = ",".join("%s=%s" % kv for kv in sorted((_v(s, "template", "spec", "nodeSelector")
                                                       or {}).items()))
        return [("Desired", st.get("desiredNumberScheduled", 0), 0),
                ("Current", st.get("currentNumberScheduled", 0), 0),
                ("Ready", st.get("numberReady", 0), 0),
                ("Up-to-date", st.get("updatedNumberScheduled", 0), 0),
                ("Available", st.get("numberAvailable", 0), 0),
                ("Node Selector", sel or "<none>", 0)]
    if k == "Secret":
        return [("Type", o.get("type", ""), 0), ("Data", len(o.get("data") or {}), 0)]
    if k == "ConfigMap":
        return [("Data", len(o.get("data") or {}), 0)]
    if k == "Service":
        ports = ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP"))
                         for p in s.get("ports") or [])
        return [("Type", s.get("type", ""), 0), ("Cluster-IP", s.get("clusterIP", ""), 0),
                ("External-IP", "<none>", 0), ("Port(s)", ports or "<none>", 0)]
    if rt.columns:
        out = []
        for c in rt.columns:
            found, v = get_at(o, tuple(p for p in c.get("jsonPath", "").split(".") if p))
            out.append((c.get("name"), v if found else None, c.get("priority", 0)))
        return out
    return []


def to_table(rt, objs, list_rv=None):
    sample = objs[0] if objs else {"metadata": {}}
    extra = table_columns(rt, sample) if objs else table_columns(rt, {"metadata": {}})
    cols = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."}]
    if rt.kind == "CustomResourceDefinition":
        cols.append({"name": "Created At", "type": "date", "format": "", "priority": 0,
                     "description": "creation time"})
    else:
        cols += [{"name": n, "type": "integer" if isinstance(v, int) and not isinstance(v, bool)
                  else "boolean" if isinstance(v, bool) else "string", "format": "",
                  "priority": p, "description": n} for n, v, p in extra]
        cols.append({"name": "Age", "type": "string", "format": "", "priority": 0,
                     "description": "CreationTimestamp"})
    rows = []
    for o in objs:
        meta = o.get("metadata") or {}
        name = meta.get("name", "")
        if rt.kind == "StorageClass" and (meta.get("annotations") or {}).get(DEFAULT_CLASS) == "true":
            name += " (default)"
        if rt.kind == "CustomResourceDefinition":
            cells = [name, meta.get("creationTimestamp")]
        else:
            cells = [name] + [v for _, v, _ in table_columns(rt, o)] + \
                [human_age(meta.get("creationTimestamp"))]
        rows.append({"cells": cells, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}})
    out = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
           "columnDefinitions": cols, "rows": rows}
    if list_rv:
        out["metadata"]["resourceVersion"] = list_rv
    return out


# ---------------------------------------------------------------------------
# The HTTP layer.

PATCH_TYPES = {"application/apply-patch+yaml": "apply", "application/merge-patch+json": "merge",
               "application/strategic-merge-patch+json": "strategic",
               "application/json-patch+json": "json"}


class Route:
    """A parsed API path."""

    def __init__(self, rt, ns, name, sub):
        self.rt, self.ns, self.name, self.sub = rt, ns, name, sub


class KubeFake(FakeServer):
    def __init__(self, cert, key, token=None, crds=(), controller=False, state=None,
                 verbose=False, ready_delay=READY_DELAY, ontap_ca=None):
        super().__init__(cert=cert, key=key, bearer=token, verbose=verbose)
        self.token_required = token is not None
        self.store = Store(state)
        crdt = self.store.rtype("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        for name in crds:
            make, manager = CRD_SETS[name]
            for c in make():
                if self.store.peek(crdt, None, c["metadata"]["name"]) is None:
                    self.store.create(crdt, None, c, manager)
        self.controller = Controller(self.store, ready_delay, ontap_ca) if controller else None
        if self.controller:
            self.controller.start()

    # Request log ----------------------------------------------------------

    def record_request(self, req):
        """What /_fake/requests shows: no bodies (they may hold secrets) and
        no credentials."""
        return {"method": req.method, "path": req.path, "query": req.query,
                "content_type": req.headers.get("Content-Type", ""),
                "accept": req.headers.get("Accept", ""),
                "user_agent": req.headers.get("User-Agent", ""),
                "auth": req.auth, "time": time.time()}

    # Control endpoints ----------------------------------------------------

    def control(self, req):
        s = self.store
        body = req.json if isinstance(req.json, (dict, list)) else {}
        if req.path == "/_fake/fault" and req.method == "POST":
            if not isinstance(body, dict) or not (body.get("status") or body.get("delay")
                                                  or body.get("drop")):
                return Response(400, json={"message": "a fault needs status, delay or drop"})
            try:
                re.compile(body.get("path_regex", ""))
            except re.error as e:
                return Response(400, json={"message": "bad path_regex: %s" % e})
            with s.lock:
                s.faults.append(dict(body, count=int(body.get("count", 1))))
            return Response(200, json={})
        if req.path == "/_fake/faults" and req.method == "GET":
            with s.lock:
                return Response(200, json=list(s.faults))
        if req.path == "/_fake/concurrent_write" and req.method == "POST":
            if not isinstance(body, dict) or not body.get("path") or \
                    not isinstance(body.get("patch"), dict):
                return Response(400, json={"message": "needs path and patch"})
            with s.lock:
                s.concurrent.append({"path": body["path"], "patch": body["patch"],
                                     "count": int(body.get("count", 1)),
                                     "manager": body.get("manager", "other")})
            return Response(200, json={})
        if req.path == "/_fake/reset" and req.method == "POST":
            with s.lock:
                s.faults.clear()
                s.concurrent.clear()
            with self.lock:
                self.requests.clear()
            return Response(200, json={})
        if req.path == "/_fake/objects" and req.method == "GET":
            # Everything stored, for debugging tests; Secret data is left out.
            with s.lock:
                out = []
                for (g, p), bucket in s.objects.items():
                    for o in bucket.values():
                        o = copy.deepcopy(o)
                        if o.get("kind") == "Secret":
                            o.pop("data", None)
                        out.append(o)
            return Response(200, json=out)
        return super().control(req)

    # Dispatch -------------------------------------------------------------

    def dispatch(self, req):
        try:
            fault = self.take_fault(req)
            if fault is not None:
                if fault.get("delay"):
                    time.sleep(float(fault["delay"]))
                if fault.get("drop"):
                    return Response(close=True)
                if fault.get("status"):
                    return self.fault_response(fault, req)
            if self.token_required and req.auth != "bearer":
                return self.status_response(ApiError(401, "Unauthorized", "Unauthorized"))
            return self.route(req)
        except ApiError as e:
            return self.status_response(e)
        except Exception:       # a bug in the fake: say where, never the data
            et, _, tb = sys.exc_info()
            sys.stderr.write("kube fake: internal error %s\n%s" %
                             (et.__name__, "".join(traceback.format_tb(tb))))
            return self.status_response(ApiError(500, "InternalError",
                                                 "Internal error occurred: fake bug (%s)" % et.__name__))

    def take_fault(self, req):
        s = self.store
        with s.lock:
            for f in s.faults:
                if f.get("count", 1) <= 0:
                    continue
                if f.get("method") and f["method"].upper() not in (req.method, "*"):
                    continue
                if not re.search(f.get("path_regex", ""), req.path):
                    continue
                f["count"] -= 1
                s.faults[:] = [x for x in s.faults if x.get("count", 1) > 0]
                return f
        return None

    def fault_response(self, f, req):
        code = int(f["status"])
        if code == 429 and req.path.rstrip("/").endswith("/eviction") and "message" not in f:
            # What a PodDisruptionBudget that allows no disruption answers
            # (no Retry-After: kubectl drain retries every 5 s by itself).
            err = ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the "
                           "pod's disruption budget.", {"causes": [{
                               "reason": "DisruptionBudget", "message": "The disruption budget "
                               "%s needs 1 healthy pods and has 1 currently" %
                               f.get("budget", "fake-pdb")}]})
            if f.get("retry_after") is not None:
                err.headers["Retry-After"] = str(int(f["retry_after"]))
            return self.status_response(err)
        reasons = {429: ("TooManyRequests", "Too many requests, please try again later."),
                   500: ("InternalError", "Internal error occurred: injected fault"),
                   503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
                   504: ("Timeout", "the server was unable to return a response in the time allotted")}
        reason, msg = reasons.get(code, ("InternalError", "injected fault"))
        err = ApiError(code, reason, f.get("message", msg))
        if code == 429:
            ra = int(f.get("retry_after", 1))
            err.details = {"retryAfterSeconds": ra}
            err.headers["Retry-After"] = str(ra)
        elif f.get("retry_after") is not None:
            err.headers["Retry-After"] = str(int(f["retry_after"]))
        return self.status_response(err)

    @staticmethod
    def status_response(err):
        return Response(err.code, json=err.status(), headers=err.headers)

    def parse_path(self, path):
        """Route for /api/v1/... and /apis/G/V/..., or None."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        s = self.store
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            rt = s.rtype(group, version, rest[2])
            if rt is not None and rt.namespaced:
                ns, rest = rest[1], rest[2:]
        if not rest:
            return None
        rt = s.rtype(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if ns is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub and not rt.has_sub(sub):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Route(rt, ns, name, sub)

    def route(self, req):
        path = req.path.rstrip("/") or "/"
        disc = self.discovery(req, path)
        if disc is not None:
            return disc
        r = self.parse_path(path)
        if r is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        q = {k: v[-1] for k, v in req.query.items()}
        if r.rt.namespaced and r.name is not None and r.ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if req.method == "GET":
            if q.get("watch") in ("true", "1"):
                return self.watch(req, r, q)
            if r.name is None:
                lst = self.store.list(r.rt, r.ns, q.get("labelSelector"), q.get("fieldSelector"))
                if "as=Table" in req.headers.get("Accept", ""):
                    objs = lst["items"]
                    return Response(200, json=to_table(r.rt, objs, lst["metadata"]["resourceVersion"]))
                return Response(200, json=lst)
            if r.sub == "log":
                return self.pod_log(r, q)
            if r.sub == "eviction":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource")
            if r.sub == "scale":
                return Response(200, json=self.scale_of(r.rt, self.store.get(r.rt, r.ns, r.name)))
            obj = self.store.get(r.rt, r.ns, r.name)
            if "as=Table" in req.headers.get("Accept", ""):
                return Response(200, json=to_table(r.rt, [obj]))
            return Response(200, json=obj)
        return self.write(req, r, q)

    def write(self, req, r, q):
        s = self.store
        dry = self.dry_run(req, q)
        manager = q.get("fieldManager") or (req.headers.get("User-Agent") or "unknown").split("/")[0]
        if len(manager) > 128:
            raise invalid_error(r.rt, r.name, [FieldError("fieldManager", "Too long",
                                                          "must have at most 128 bytes")])
        if r.sub == "log":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                           "the requested resource")
        if r.sub == "eviction":
            if req.method != "POST":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource")
            return self.evict(req, r, dry)
        if r.sub == "scale":
            return self.write_scale(req, r, q, dry, manager)
        if req.method in ("PUT", "PATCH", "DELETE") and r.name is not None:
            self.concurrent_write(req.path, r)
        if req.method == "POST":
            if r.name is not None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource")
            body = self.body_json(req)
            if r.rt.namespaced and r.ns is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            warning = self.field_validation(r.rt, body, q)
            obj = s.create(r.rt, r.ns, body, manager, dry)
            return Response(201, json=obj, headers=warning)
        if req.method == "PUT":
            if r.name is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource")
            body = self.body_json(req)
            warning = self.field_validation(r.rt, body, q)
            obj = s.update(r.rt, r.ns, r.name, body, manager, dry, r.sub)
            return Response(200, json=obj, headers=warning)
        if req.method == "PATCH":
            if r.name is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource")
            ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            ptype = PATCH_TYPES.get(ctype)
            if ptype is None:
                raise unsupported_media()
            if ptype == "apply" and not q.get("fieldManager"):
                raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: '
                               "fieldManager: Required value: is required for apply patch",
                               {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                                   {"reason": "FieldValueRequired", "field": "fieldManager",
                                    "message": "Required value: is required for apply patch"}]})
            force = q.get("force") in ("true", "1")
            if force and ptype != "apply":
                raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: force: '
                               "Forbidden: may not be specified for non-apply patch")
            patch = self.body_json(req, yaml_ok=ptype == "apply")
            warning = None
            if ptype == "apply":
                unknown = unknown_fields(r.rt, patch)
                if unknown:
                    raise bad_request("failed to create typed patch object (%s/%s; %s, Kind=%s): "
                                      "%s: field not declared in schema" % (
                                          r.ns or "", r.name, r.rt.gv, r.rt.kind,
                                          "." + unknown[0]))
            elif ptype in ("merge", "strategic"):
                warning = self.field_validation(r.rt, patch, q)
            with s.lock:
                existed = s.peek(r.rt, r.ns, r.name) is not None
                obj = s.patch(r.rt, r.ns, r.name, ptype, patch, manager, force, dry, r.sub)
            return Response(200 if existed else 201, json=obj, headers=warning)
        if req.method == "DELETE":
            opts = req.json if isinstance(req.json, dict) else {}
            policy = q.get("propagationPolicy") or opts.get("propagationPolicy")
            if policy is None and (q.get("orphanDependents") == "true" or
                                   opts.get("orphanDependents") is True):
                policy = "Orphan"
            if opts.get("dryRun") == ["All"]:
                dry = True
            if r.name is None:
                return self.delete_collection(r, q, policy, dry)
            obj, warning = s.delete(r.rt, r.ns, r.name, policy, dry, opts.get("preconditions"))
            return Response(200, json=obj, headers={"Warning": warning} if warning else None)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource")

    def evict(self, req, r, dry):
        """POST pods/NAME/eviction: the Eviction API (policy/v1, and the old
        v1beta1). No PodDisruptionBudgets here: the pod is deleted at once;
        a /_fake/fault with status 429 on the eviction path plays a budget
        that refuses (see fault_response)."""
        body = self.body_json(req)
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        if body.get("kind") not in (None, "Eviction") or \
                body.get("apiVersion") not in (None, "policy/v1", "policy/v1beta1"):
            raise bad_request("the kind in the data (%s) does not match the expected kind "
                              "(Eviction)" % body.get("kind"))
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name") and meta["name"] != r.name:
            raise bad_request("name in URL does not match name in Eviction object")
        if meta.get("namespace") and meta["namespace"] != r.ns:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        opts = body.get("deleteOptions") if isinstance(body.get("deleteOptions"), dict) else {}
        if opts.get("dryRun") == ["All"]:
            dry = True
        s = self.store
        with s.lock:
            if s.peek(r.rt, r.ns, r.name) is None:
                raise not_found(r.rt, r.name)
            s.delete(r.rt, r.ns, r.name, opts.get("propagationPolicy"), dry,
                     opts.get("preconditions"))
        return Response(201, json={"kind": "Status", "apiVersion": "v1", "metadata": {},
                                   "status": "Success", "code": 201})

    @staticmethod
    def scale_of(rt, obj):
        """The autoscaling/v1 Scale of a Deployment or StatefulSet."""
        meta = obj["metadata"]
        sel = _v(obj, "spec", "selector", "matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": _v(obj, "spec", "replicas", default=1)},
                "status": {"replicas": _v(obj, "status", "replicas", default=0),
                           "selector": ",".join("%s=%s" % kv for kv in sorted(sel.items()))}}

    def write_scale(self, req, r, q, dry, manager):
        """PUT or PATCH of /scale: changes spec.replicas only."""
        s = self.store
        if req.method not in ("PUT", "PATCH"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                           "the requested resource")
        with s.lock:
            old = s.peek(r.rt, r.ns, r.name)
            if old is None:
                raise not_found(r.rt, r.name)
            cur = self.scale_of(r.rt, old)
            body = self.body_json(req)
            if req.method == "PUT":
                new = body
            else:
                ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                ptype = PATCH_TYPES.get(ctype)
                if ptype in (None, "apply"):
                    raise unsupported_media()
                new = merge_patch(cur, body) if ptype == "merge" else \
                    strategic_merge(cur, body) if ptype == "strategic" else json_patch(cur, body)
            if not isinstance(new, dict):
                raise bad_request("the body of the request is not a JSON object")
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict_modified(r.rt, r.name)
            reps = _v(new, "spec", "replicas")
            if not isinstance(reps, int) or isinstance(reps, bool) or reps < 0:
                raise ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: '
                               'Invalid value: %s: must be greater than or equal to 0'
                               % (r.name, json.dumps(reps)))
            obj = copy.deepcopy(old)
            obj["spec"]["replicas"] = reps
            out = s.commit(r.rt, old, obj, manager, "Update", dry, None)
            return Response(200, json=self.scale_of(r.rt, out))

    @staticmethod
    def field_validation(rt, body, q):
        """fieldValidation: Strict refuses unknown fields (400), Warn (the
        default) and Ignore drop them, Warn with a Warning header."""
        mode = q.get("fieldValidation") or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise bad_request('fieldValidation: Unsupported value: "%s": supported values: '
                              '"Ignore", "Strict", "Warn"' % mode)
        unknown = unknown_fields(rt, body)
        if not unknown:
            return None
        if mode == "Strict":
            raise bad_request('%s in version "%s" cannot be handled as a %s: strict decoding '
                              'error: %s' % (rt.kind, rt.version, rt.kind, ", ".join(
                                  'unknown field "%s"' % u for u in unknown)))
        drop_fields(body, unknown)
        if mode == "Warn":
            return {"Warning": ", ".join('299 - "unknown field \\"%s\\""' % u for u in unknown)}
        return None

    def delete_collection(self, r, q, policy, dry):
        s = self.store
        with s.lock:
            lst = s.list(r.rt, r.ns, q.get("labelSelector"), q.get("fieldSelector"))
            for o in lst["items"]:
                s.delete(r.rt, o["metadata"].get("namespace"), o["metadata"]["name"], policy, dry)
            lst["apiVersion"], lst["kind"] = r.rt.gv, r.rt.kind + "List"
            return Response(200, json=lst)

    @staticmethod
    def dry_run(req, q):
        vals = req.query.get("dryRun") or []
        for v in vals:
            if v != "All":
                raise bad_request("Invalid dry run value: %s" % v)
        return bool(vals)

    @staticmethod
    def body_json(req, yaml_ok=False):
        if not req.body:
            raise bad_request("the body of the request is empty")
        if "protobuf" in (req.headers.get("Content-Type") or ""):
            try:
                return decode_protobuf(req.body)
            except (ValueError, IndexError, UnicodeDecodeError):
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                               "unknown format - accepted media types include: application/json, "
                               "application/yaml (this fake server decodes protobuf for "
                               "Namespace, ConfigMap, Secret and ServiceAccount only)")
        try:
            return json.loads(req.body)
        except ValueError:
            pass
        if yaml_ok:
            obj = tiny_yaml(req.body.decode("utf-8", "replace"))
            if obj is not None:
                return obj
            raise bad_request("error decoding YAML: this fake server accepts JSON-compatible "
                              "YAML and simple block YAML only")
        raise bad_request("the body of the request could not be decoded as JSON")

    def concurrent_write(self, path, r):
        """A pending /_fake/concurrent_write for this path: another manager
        changes the object first (a merge patch), so the request that
        follows meets a newer resourceVersion."""
        s = self.store
        with s.lock:
            for cw in s.concurrent:
                if cw["count"] > 0 and cw["path"].rstrip("/") == path.rstrip("/"):
                    old = s.peek(r.rt, r.ns, r.name)
                    if old is None:
                        return
                    cw["count"] -= 1
                    # "{n}" in the patch's strings counts the writes (1, 2,
                    # ...), so that each one changes the object and bumps
                    # its resourceVersion, as a busy writer would.
                    cw["done"] = cw.get("done", 0) + 1
                    patch = json.loads(json.dumps(cw["patch"]).replace("{n}", str(cw["done"])))
                    new = merge_patch(copy.deepcopy(old), patch)
                    s.commit(r.rt, old, new, cw["manager"], "Update", False, r.sub)
            s.concurrent[:] = [c for c in s.concurrent if c["count"] > 0]

    def pod_log(self, r, q):
        pod = self.store.get(r.rt, r.ns, r.name)
        containers = _v(pod, "spec", "containers") or []
        names = [c.get("name") for c in containers]
        want = q.get("container")
        if want is None and len(names) > 1:
            ann = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
            want = ann
        if want is None and len(names) > 1:
            raise bad_request("a container name must be specified for pod %s, choose one of: [%s]"
                              % (r.name, " ".join(names)))
        c = next((c for c in containers if c.get("name") == (want or names[0] if names else None)), None)
        if c is None:
            raise bad_request("container %s is not valid for pod %s" % (want, r.name))
        if _v(pod, "status", "phase") == "Pending":
            raise bad_request('container "%s" in pod "%s" is waiting to start: ContainerCreating'
                              % (c.get("name"), r.name))
        env = {e.get("name"): e.get("value") for e in c.get("env") or [] if isinstance(e, dict)}
        text = env.get("FAKE_LOG")
        if text is None:
            text = "fake log of pod %s\n" % r.name
        run = self.store.running.get(pod["metadata"]["uid"])
        if run is not None:
            # Still running (FAKE_RUN_S): the lines written so far, in
            # proportion to the time it has run.
            lines = text.splitlines(True)
            part = min(1.0, (time.time() - run[0]) / run[1]) if run[1] > 0 else 1.0
            text = "".join(lines[:int(len(lines) * part)])
        if q.get("tailLines"):
            try:
                n = int(q["tailLines"])
                lines = text.splitlines(True)
                text = "".join(lines[-n:]) if n > 0 else ""
            except ValueError:
                pass
        return Response(200, body=text, headers={"Content-Type": "text/plain"})

    def watch(self, req, r, q):
        """A watch: ADDED events for what exists when no resourceVersion is
        given, then every change after it, as newline-delimited JSON, until
        timeoutSeconds (at most WATCH_MAX) pass or the client goes away."""
        s = self.store
        lreq = parse_label_selector(q.get("labelSelector"))
        fsel = q.get("fieldSelector")
        if r.name is not None:
            fsel = "metadata.name=%s" % r.name + ("," + fsel if fsel else "")
        freq = parse_field_selector(fsel)
        try:
            since = int(q.get("resourceVersion") or 0)
        except ValueError:
            raise bad_request("invalid resourceVersion: %s" % q.get("resourceVersion"))
        timeout = min(float(q.get("timeoutSeconds") or WATCH_MAX), WATCH_MAX)
        key = (r.rt.group, r.rt.plural)

        def wanted(o):
            return (not r.ns or o["metadata"].get("namespace") == r.ns) and \
                labels_match(lreq, o["metadata"].get("labels") or {}) and fields_match(freq, o)

        def line(etype, o):
            o = copy.deepcopy(o)
            o["apiVersion"], o["kind"] = r.rt.gv, r.rt.kind
            return (json.dumps({"type": etype, "object": o}) + "\n").encode()

        with s.lock:
            if since and s.events and since < s.events[0][0] - 1 and since < s.rv:
                raise ApiError(410, "Expired", "too old resource version: %d (%d)"
                               % (since, s.events[0][0]))
            first = []
            if not since:
                first = [line("ADDED", o) for o in s._bucket(r.rt).values() if wanted(o)]
                since = s.rv

        def stream():
            cursor = since
            deadline = time.time() + timeout
            for chunk in first:
                yield chunk
            while time.time() < deadline and not s.stopping:
                with s.lock:
                    if not s.events or s.events[-1][0] <= cursor:
                        s.changed.wait(min(1.0, max(0.0, deadline - time.time())))
                    todo = [e for e in s.events if e[0] > cursor]
                out = []
                for rv, etype, k, o in todo:
                    cursor = rv
                    if k == key and wanted(o):
                        out.append(line(etype, o))
                if out:
                    yield b"".join(out)
        return Response(200, headers={"Content-Type": "application/json"}, stream=stream())

    # Discovery ------------------------------------------------------------

    def discovery(self, req, path):
        s = self.store
        if req.method != "GET":
            if path in ("/api", "/apis", "/version", "/openapi/v2", "/openapi/v3"):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource")
            return None
        if path == "/version":
            return Response(200, json=SERVER_VERSION)
        if path in ("/healthz", "/readyz", "/livez"):
            return Response(200, body="ok")
        if path == "/api":
            return Response(200, json={"kind": "APIVersions", "versions": ["v1"],
                                       "serverAddressByClientCIDRs": [
                                           {"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": "127.0.0.1:%d" % self.port}]})
        with s.lock:
            groups = s.groups()
            if path == "/apis":
                out = []
                for g, versions in groups.items():
                    if not g:
                        continue
                    vs = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in versions]
                    out.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
                return Response(200, json={"kind": "APIGroupList", "apiVersion": "v1",
                                           "groups": out})
            parts = [p for p in path.split("/") if p]
            if parts[:1] == ["apis"] and len(parts) == 2 and parts[1] in groups:
                vs = [{"groupVersion": "%s/%s" % (parts[1], v), "version": v}
                      for v in groups[parts[1]]]
                return Response(200, json={"kind": "APIGroup", "apiVersion": "v1",
                                           "name": parts[1], "versions": vs,
                                           "preferredVersion": vs[0]})
            gv = None
            if parts == ["api", "v1"]:
                gv = ("", "v1")
            elif parts[:1] == ["apis"] and len(parts) == 3:
                gv = (parts[1], parts[2])
            if gv is not None:
                if gv[1] not in groups.get(gv[0], []):
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                res = []
                for rt in s.types.values():
                    if (rt.group, rt.version) == gv:
                        res += rt.discovery()
                return Response(200, json={"kind": "APIResourceList", "apiVersion": "v1",
                                           "groupVersion": "/".join(p for p in gv if p),
                                           "resources": res})
        if path == "/openapi/v3":
            with s.lock:
                return Response(200, json={"paths": {
                    ("api/" if not g else "apis/%s/" % g) + v:
                        {"serverRelativeURL": "/openapi/v3/%s%s?hash=%s" % (
                            "api/" if not g else "apis/%s/" % g, v, self.gv_hash(g, v))}
                    for g, vs in s.groups().items() for v in vs}})
        if path.startswith("/openapi/v3/"):
            parts = path[len("/openapi/v3/"):].split("/")
            gv = ("", parts[1]) if parts[0] == "api" and len(parts) == 2 else \
                (parts[1], parts[2]) if parts[0] == "apis" and len(parts) == 3 else None
            with s.lock:
                if gv is None or gv[1] not in s.groups().get(gv[0], []):
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return Response(200, json=openapi_v3(s, *gv))
        if path.startswith("/openapi/"):
            # No OpenAPI v2 (swagger) document: see docs/fakes.md.
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return None

    def gv_hash(self, group, version):
        with self.store.lock:
            names = sorted("%s/%s" % (rt.plural, rt.kind) for rt in self.store.types.values()
                           if (rt.group, rt.version) == (group, version))
        return "%016X" % (hash(tuple(names)) & 0xFFFFFFFFFFFFFFFF)


def openapi_v3(store, group, version):
    """The OpenAPI v3 document of a group version: its paths and operations
    with their query parameters (kubectl reads fieldValidation support from
    there) but no schemas (components are empty: see docs/fakes.md)."""
    prefix = "/api/%s" % version if not group else "/apis/%s/%s" % (group, version)
    paths = {}

    def param(name):
        return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}

    for rt in store.types.values():
        if (rt.group, rt.version) != (group, version):
            continue
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        base = prefix + ("/namespaces/{namespace}/" if rt.namespaced else "/") + rt.plural
        write = [param(n) for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
        json_body = {"content": {"*/*": {"schema": {"type": "object"}}}}
        ok = {"responses": {"200": {"description": "OK"}}}

        def op(action, params, body=None, gvk=gvk, ok=ok):
            o = dict(ok, **{"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                            "parameters": params})
            if body:
                o["requestBody"] = body
            return o
        patch_body = {"content": {t: {"schema": {"type": "object"}} for t in (
            "application/apply-patch+yaml", "application/json-patch+json",
            "application/merge-patch+json")}}
        paths[base] = {"get": op("list", [param("labelSelector"), param("fieldSelector")]),
                       "post": op("post", write, json_body),
                       "delete": op("deletecollection", [param("labelSelector")])}
        paths[base + "/{name}"] = {
            "get": op("get", []), "put": op("put", write, json_body),
            "patch": op("patch", write + [param("force")], patch_body),
            "delete": op("delete", [param("dryRun"), param("propagationPolicy")])}
        if rt.status:
            paths[base + "/{name}/status"] = {
                "get": op("get", []), "put": op("put", write, json_body),
                "patch": op("patch", write + [param("force")], patch_body)}
        if rt.evict:
            paths[base + "/{name}/eviction"] = {"post": dict(
                op("post", write, json_body), **{"x-kubernetes-group-version-kind": {
                    "group": "policy", "version": "v1", "kind": "Eviction"}})}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (aicp fake)",
                                          "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


def _pb_varint(data, i):
    out = shift = 0
    while True:
        b = data[i]
        i += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return out, i


def _pb_fields(data):
    """(field number, value) of each field of a protobuf message; length-
    delimited values are bytes, varints ints."""
    i, out = 0, []
    while i < len(data):
        key, i = _pb_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _pb_varint(data, i)
        elif wire == 2:
            n, i = _pb_varint(data, i)
            val, i = data[i:i + n], i + n
        elif wire == 1:
            val, i = data[i:i + 8], i + 8
        elif wire == 5:
            val, i = data[i:i + 4], i + 4
        else:
            raise ValueError("protobuf wire type %d" % wire)
        out.append((num, val))
    return out


def _pb_map(entries, binary=False):
    out = {}
    for e in entries:
        f = dict(_pb_fields(e))
        v = f.get(2, b"")
        out[f.get(1, b"").decode()] = base64.b64encode(v).decode() if binary else v.decode()
    return out


def _pb_meta(data):
    meta, labels, annotations, finalizers = {}, [], [], []
    for num, val in _pb_fields(data):
        if num in (1, 2, 3):
            meta[{1: "name", 2: "generateName", 3: "namespace"}[num]] = val.decode()
        elif num == 11:
            labels.append(val)
        elif num == 12:
            annotations.append(val)
        elif num == 14:
            finalizers.append(val.decode())
    if labels:
        meta["labels"] = _pb_map(labels)
    if annotations:
        meta["annotations"] = _pb_map(annotations)
    if finalizers:
        meta["finalizers"] = finalizers
    return meta


def decode_protobuf(body):
    """The few kinds kubectl's generators send as protobuf (kubectl create
    namespace / configmap / secret / serviceaccount), as JSON objects."""
    if not body.startswith(b"k8s\x00"):
        raise ValueError("no k8s protobuf envelope")
    env = dict(_pb_fields(body[4:]))
    tm = dict(_pb_fields(env.get(1, b"")))
    av, kind = tm.get(1, b"").decode(), tm.get(2, b"").decode()
    obj = {"apiVersion": av, "kind": kind}
    maps = {}
    for num, val in _pb_fields(env.get(2, b"")):
        if num == 1:
            obj["metadata"] = _pb_meta(val)
        elif kind == "Namespace" and num == 2:
            fins = [v.decode() for n, v in _pb_fields(val) if n == 1]
            obj["spec"] = {"finalizers": fins} if fins else {}
        elif kind in ("ConfigMap", "Secret") and num in (2, 3, 4):
            maps.setdefault(num, []).append(val)
        elif kind == "Secret" and num == 5 or kind == "ConfigMap" and num == 4:
            obj["immutable"] = bool(val)
        elif kind == "ServiceAccount" and num == 4:
            obj["automountServiceAccountToken"] = bool(val)
        elif kind not in ("Namespace", "ConfigMap", "Secret", "ServiceAccount"):
            raise ValueError("kind %s" % kind)
    if kind == "ConfigMap":
        if 2 in maps:
            obj["data"] = _pb_map(maps[2])
        if 3 in maps:
            obj["binaryData"] = _pb_map(maps[3], binary=True)
    elif kind == "Secret":
        if 2 in maps:
            obj["data"] = _pb_map(maps[2], binary=True)
        if 3 in maps:
            obj["type"] = maps[3][0].decode()
        if 4 in maps:
            obj["stringData"] = _pb_map(maps[4])
    return obj


def tiny_yaml(text):
    """Block YAML of maps, lists and plain scalars (what an apply body is
    when a client sends real YAML rather than JSON); None when unsure."""
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#") or raw.strip() == "---":
            continue
        if "\t" in raw[:len(raw) - len(raw.lstrip())]:
            return None
        lines.append((len(raw) - len(raw.lstrip()), raw.strip()))

    def scalar(s):
        if s[:1] in ("'", '"'):
            try:
                return json.loads(s) if s[0] == '"' else s[1:-1].replace("''", "'")
            except ValueError:
                return s
        if s[:1] in ("{", "["):
            return json.loads(s)
        if s in ("true", "True"):
            return True
        if s in ("false", "False"):
            return False
        if s in ("null", "~"):
            return None
        if re.match(r"^-?[0-9]+$", s):
            return int(s)
        if re.match(r"^-?[0-9]+\.[0-9]+$", s):
            return float(s)
        return s

    pos = [0]

    def block(indent):
        if pos[0] >= len(lines):
            return None
        ind, s = lines[pos[0]]
        if s.startswith("- ") or s == "-":
            out = []
            while pos[0] < len(lines) and lines[pos[0]][0] == ind and \
                    (lines[pos[0]][1].startswith("- ") or lines[pos[0]][1] == "-"):
                item = lines[pos[0]][1][2:].strip()
                if not item:
                    pos[0] += 1
                    out.append(block(lines[pos[0]][0]) if pos[0] < len(lines) and
                               lines[pos[0]][0] > ind else None)
                elif re.match(r"^[^'\"{\[][^:]*:( |$)", item):
                    lines[pos[0]] = (ind + 2, item)
                    out.append(block(ind + 2))
                else:
                    pos[0] += 1
                    out.append(scalar(item))
            return out
        out = {}
        while pos[0] < len(lines) and lines[pos[0]][0] == ind:
            s = lines[pos[0]][1]
            m = re.match(r"^([^:]+?)\s*:(?:\s+(.*))?$", s)
            if not m:
                raise ValueError("not a mapping line")
            key, val = m.group(1).strip("'\""), (m.group(2) or "").strip()
            pos[0] += 1
            if val and val not in ("|", ">"):
                out[key] = scalar(val)
            elif pos[0] < len(lines) and (lines[pos[0]][0] > ind or
                                          (lines[pos[0]][0] == ind and lines[pos[0]][1].startswith("- "))):
                out[key] = block(lines[pos[0]][0])
            else:
                out[key] = None
        return out

    try:
        out = block(lines[0][0]) if lines else None
        return out if isinstance(out, dict) and pos[0] == len(lines) else None
    except (ValueError, IndexError):
        return None


def crd_sets(text):
    """--crds: a comma list of CRD_SETS names."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CRD_SETS]
    if bad or not names:
        raise argparse.ArgumentTypeError("invalid choice: %r (choose from %s)" % (
            bad[0] if bad else text, ", ".join(sorted(CRD_SETS))))
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="server key (PEM)")
    ap.add_argument("--token-file", help="file holding the bearer token every request needs")
    ap.add_argument("--crds", action="append", default=[], type=crd_sets,
                    metavar="SET[,SET...]",
                    help="pre-install sets of CRDs: %s (repeatable, or a comma list)"
                    % ", ".join(sorted(CRD_SETS)))
    ap.add_argument("--controller", action="store_true",
                    help="run the controller stand-in (Trident backends, PVCs, Jobs, Nodes, "
                    "Deployments, StatefulSets, DaemonSets, Notebooks, VolumeSnapshots)")
    ap.add_argument("--ready-delay", type=float, default=READY_DELAY, metavar="SECONDS",
                    help="how long the controller stand-in takes to roll out a workload "
                    "(default %(default)s)")
    ap.add_argument("--ontap-ca", metavar="FILE",
                    help="the Trident stand-in makes each new volume on the backend's ONTAP "
                         "(its managementLIF, over HTTPS verified with this CA), as Trident does")
    ap.add_argument("--state", help="keep the objects in this JSON file across restarts")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            sys.stderr.write("kube_apiserver: the token file is empty\n")
            return 2
    srv = KubeFake(args.cert, args.key, token=token,
                   crds=[c for group in args.crds for c in group],
                   controller=args.controller, state=args.state, verbose=args.verbose,
                   ready_delay=args.ready_delay, ontap_ca=args.ontap_ca)

    def stop(*_):
        threading.Thread(target=srv.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_stdin():
        # os.read, not sys.stdin: a daemon thread blocked in a buffered
        # read makes the interpreter abort at exit.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop()
    threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write("PORT %d\n" % srv.port)
    sys.stdout.flush()
    srv.serve()
    srv.store.stopping = True
    srv.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
