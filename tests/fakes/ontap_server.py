#!/usr/bin/env python3
"""A fake NetApp ONTAP REST API server for aicp's tests (python3 standard
library only), built on https_server.py. No ONTAP cluster can run on the
machines the tests run on, so this server follows the ONTAP 9 REST contract
closely enough that the netapp.ontap Ansible collection (use_rest: always)
works against it (tests/integration/test_ontap_fake.sh checks that):
collections with records/num_records, fields= and query filters, async jobs
(return_timeout, 202 + /api/cluster/jobs polling, delays, failures,
vanishing jobs), "temporarily locked" errors, error bodies worded and coded
as ONTAP's, volumes (FlexVol and FlexGroup), snapshots, FlexClones and
splits, NFS export policies and rules, and SnapMirror relationships with
their state machine, lag time and transfers. docs/fakes.md ("The fake ONTAP
server") says how to run it and what it simplifies.

    python3 ontap_server.py --cert SERVER.pem --key SERVER.key \
        --users-file F [--version 9.8.0] [--state FILE] [--verbose]

It binds 127.0.0.1 on a free port, prints "PORT <n>" then "URL
https://127.0.0.1:<n>" when ready, and serves until its stdin reaches EOF or
it gets SIGTERM/SIGINT. The users file holds "username:password" lines;
passwords never go on argv.

Layout: helpers (errors, time, fields/query); the Store (all state, one
RLock); operations per resource (each validates, then commits when asked, so
an async job re-checks at the time it runs); jobs; the HTTP layer
(OntapFake.dispatch and the /_fake control endpoints); main.
"""

import argparse
import base64
import copy
import fnmatch
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid as uuidlib
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from https_server import FakeServer, Response  # noqa: E402

MB = 1024 * 1024
GB = 1024 * MB
TB = 1024 * GB
MIN_VOLUME_SIZE = 20 * MB

# Error codes. Those marked (ONTAP) are what ONTAP answers; the others are
# the fake's choices, listed in docs/fakes.md.
E_NOT_AUTHORIZED = "6"              # (ONTAP) 401
E_ENTRY_NOT_FOUND = "4"             # (ONTAP) "entry doesn't exist", 404
E_API_NOT_FOUND = "3"               # (ONTAP) unknown endpoint
E_UNEXPECTED_ARG = "262179"         # (ONTAP) unknown field / query argument
E_FIELD_NOT_SETTABLE = "262196"     # (ONTAP) field cannot be set in this operation
E_INVALID_VALUE = "262186"
E_REQUIRED = "262197"
E_SVM_NOT_FOUND = "2621462"         # (ONTAP) SVM "x" does not exist.
E_DUPLICATE_VOLUME = "917536"
E_AGGR_NOT_FOUND = "917927"
E_VOLUME_NAME = "917888"
E_VOLUME_SIZE = "917534"
E_VOLUME_MOUNTED = "917933"         # must be unmounted before offline/delete
E_VOLUME_OFFLINE = "917930"
E_VOLUME_HAS_CLONES = "917946"
E_VOLUME_SM_DEST = "917947"
E_JUNCTION_IN_USE = "917932"
E_NOT_A_CLONE = "917951"
E_POLICY_NOT_FOUND = "917939"       # export or snapshot policy unknown
E_LOCKED = "917505"                 # "temporarily locked", HTTP 409
E_SNAPSHOT_DUP = "1638413"
E_SNAPSHOT_BUSY = "1638555"
E_SNAPSHOT_DP = "1638556"
E_EXPORT_DUP = "1703954"
E_EXPORT_IN_USE = "1703957"
E_EXPORT_DEFAULT = "1703952"
E_SM_DUP = "13303812"
E_SM_TRANSITION = "13303825"
E_SM_NOT_DP = "13303819"
E_SM_TRANSFERRING = "13303826"
E_SM_NOT_FOUND_VOL = "13303824"
E_SM_POLICY = "13303817"
E_VERSION = "262198"
E_JOB_FAILED = "460770"             # default code of an injected job failure
E_FAULT = "2"                       # plain injected 5xx

# Query parameters that are not filters.
CONTROL_PARAMS = {"fields", "return_records", "return_timeout", "max_records",
                  "order_by", "return_all", "sizing_method", "new_index",
                  "list_destinations_only", "source_only", "destination_only",
                  "source_info_only", "force", "allow_delete_while_mapped"}

VOLUME_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,202}$")
ENUMS = {
    "style": ("flexvol", "flexgroup"),
    "state": ("online", "offline", "restricted"),
    "type": ("rw", "dp"),
    "nas.security_style": ("unix", "ntfs", "mixed"),
    "guarantee.type": ("none", "volume"),
    "tiering.policy": ("all", "auto", "backup", "none", "snapshot_only"),
}
RULE_AUTH = ("any", "none", "never", "krb5", "krb5i", "krb5p", "ntlm", "sys")
RULE_PROTOCOLS = ("any", "nfs", "nfs3", "nfs4", "cifs", "flexcache", "nfs4.1", "nfs4.2")
SM_POLICIES = {"MirrorAllSnapshots": "async", "MirrorAndVault": "async",
               "Asynchronous": "async", "MirrorLatest": "async", "DailyBackup": "async",
               "Unified7year": "async", "XDPDefault": "async",
               "Sync": "sync", "StrictSync": "sync"}
SNAPSHOT_POLICIES = ("default", "default-1weekly", "none")


class OntapError(Exception):
    """An error answered as ONTAP does: {"error": {"message", "code", "target"}}."""

    def __init__(self, status, message, code, target=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = str(code)
        self.target = target
        self.headers = headers or {}

    def body(self):
        e = {"message": self.message, "code": self.code}
        if self.target:
            e["target"] = self.target
        return {"error": e}


def not_found(target="uuid"):
    return OntapError(404, "entry doesn't exist", E_ENTRY_NOT_FOUND, target)


def bad(message, code=E_INVALID_VALUE, target=None):
    return OntapError(400, message, code, target)


def now_iso(t=None):
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%S+00:00")


def iso_duration(seconds):
    """ONTAP's ISO 8601 durations: P1DT2H3M4S, PT0S."""
    s = max(0, int(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    out = "P" + ("%dD" % d if d else "")
    t = ("%dH" % h if h else "") + ("%dM" % m if m else "") + ("%dS" % s if s or not (d or h or m) else "")
    return out + ("T" + t if t else "")


def new_uuid():
    return str(uuidlib.uuid4())


def expand_dotted(body):
    """ONTAP accepts {"svm.name": "x"} for {"svm": {"name": "x"}}."""
    if not isinstance(body, dict):
        return body
    out = {}
    for k, v in body.items():
        v = expand_dotted(v) if isinstance(v, dict) else v
        parts = k.split(".")
        d = out
        for p in parts[:-1]:
            nxt = d.get(p)
            if not isinstance(nxt, dict):
                nxt = d[p] = {}
            d = nxt
        if isinstance(v, dict) and isinstance(d.get(parts[-1]), dict):
            deep_merge(d[parts[-1]], v)
        else:
            d[parts[-1]] = v
    return out


def deep_merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


def get_path(obj, path, default=None):
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return cur


def set_path(obj, path, value):
    parts = path.split(".")
    for p in parts[:-1]:
        if not isinstance(obj.get(p), dict):
            obj[p] = {}
        obj = obj[p]
    obj[parts[-1]] = value


def leaf_values(obj, parts):
    """Every value at a field path, descending into lists."""
    if isinstance(obj, list):
        out = []
        for x in obj:
            out.extend(leaf_values(x, parts))
        return out
    if not parts:
        return [obj]
    if not isinstance(obj, dict) or parts[0] not in obj:
        return []
    return leaf_values(obj[parts[0]], parts[1:])


def _scalar_str(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def match_one(value, expr):
    """ONTAP query syntax for one value: wildcards (*), !x, <x, >x, <=x,
    >=x, a..b; strings compare case-insensitively."""
    if isinstance(value, (dict, list)):
        return False
    neg = expr.startswith("!")
    if neg:
        expr = expr[1:]
    sv = _scalar_str(value)
    m = re.match(r"^(<=|>=|<|>)(.*)$", expr)
    if m:
        a, b = _num(sv), _num(m.group(2))
        ok = a is not None and b is not None and {
            "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[m.group(1)]
    elif ".." in expr and all(_num(x) is not None for x in expr.split("..", 1)):
        lo, hi = (float(x) for x in expr.split("..", 1))
        a = _num(sv)
        ok = a is not None and lo <= a <= hi
    elif expr == "null":
        ok = value is None
    elif "*" in expr:
        ok = fnmatch.fnmatchcase(sv.lower(), expr.lower())
    else:
        a, b = _num(sv), _num(expr)
        ok = (a == b) if (a is not None and b is not None and not isinstance(value, str)) \
            else sv.lower() == expr.lower()
    return ok != neg


def record_matches(rec, filters):
    for key, exprs in filters:
        vals = leaf_values(rec, key.split("."))
        for expr in exprs:
            alts = expr.split("|")
            if not any(match_one(v, a) for v in vals for a in alts):
                return False
    return True


def project(obj, fields, keys):
    """The record as GET ?fields= returns it: the asked-for fields plus the
    keys; fields=* or ** is everything."""
    if any(f in ("*", "**") for f in fields):
        return copy.deepcopy(obj)
    out = {}
    for k in keys:
        if k in obj:
            out[k] = copy.deepcopy(obj[k])
    for f in fields:
        _put(out, obj, f.split("."))
    return out


def _put(dst, src, parts):
    if not isinstance(src, dict):
        return
    if parts[0] in ("*", "**"):
        deep_merge(dst, src)
        return
    if parts[0] not in src:
        return
    v = src[parts[0]]
    if len(parts) == 1 or not isinstance(v, (dict, list)):
        if isinstance(v, dict) and isinstance(dst.get(parts[0]), dict):
            deep_merge(dst[parts[0]], v)
        else:
            dst[parts[0]] = copy.deepcopy(v)
        return
    if isinstance(v, dict):
        if not isinstance(dst.get(parts[0]), dict):
            dst[parts[0]] = {}
        _put(dst[parts[0]], v, parts[1:])
        return
    cur = dst.get(parts[0])
    if not isinstance(cur, list) or len(cur) != len(v):
        cur = dst[parts[0]] = [{} for _ in v]
    for i, item in enumerate(v):
        if isinstance(item, dict):
            _put(cur[i], item, parts[1:])
        else:
            cur[i] = item


def strip_internal(obj):
    """Records keep a few fake-only keys (prefixed _fake); never shown."""
    if isinstance(obj, dict):
        return {k: strip_internal(v) for k, v in obj.items() if not k.startswith("_fake")}
    if isinstance(obj, list):
        return [strip_internal(v) for v in obj]
    return obj


def check_allowed(body, allowed, what):
    for k in body:
        if k not in allowed:
            raise bad('Unexpected argument "%s".' % k, E_UNEXPECTED_ARG, k)


def check_enum(field, value):
    """ONTAP takes an enum only as it spells it: "UNIX" or "snapshot-only"
    is refused (262186) as a real cluster refuses it."""
    allowed = ENUMS[field]
    if not isinstance(value, str) or value not in allowed:
        raise bad('The value "%s" is invalid for field "%s" (valid values: %s).'
                  % (value, field, ", ".join(allowed)), E_INVALID_VALUE, field)
    return value


def parse_size(value, field="size"):
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise bad('The value "%s" is invalid for field "%s" (an integer number of bytes).'
              % (value, field), E_INVALID_VALUE, field)


def parse_unix_permissions(value):
    """755, "755", "0755" or "---rwxr-xr-x" -> 755 (ONTAP returns the octal
    digits as an integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip()
        if re.fullmatch(r"0?[0-7]{3,4}", v):
            return int(v)
        if re.fullmatch(r"[-dlrwxsStT]{10,12}", v):
            bits = v[-9:]
            digits = ""
            for i in range(0, 9, 3):
                t = bits[i:i + 3]
                digits += str((t[0] == "r") * 4 + (t[1] == "w") * 2 + (t[2] in "xst") * 1)
            return int(digits)
    raise bad('The value "%s" is invalid for field "nas.unix_permissions".' % (value,),
              E_INVALID_VALUE, "nas.unix_permissions")


# ---------------------------------------------------------------------------
# The store: every object, one lock.

class Store:
    def __init__(self, version, state_file=None):
        self.lock = threading.RLock()
        self.version = version
        self.state_file = state_file
        self.config = self.default_config()
        self.faults = []
        self.jobs = {}
        self.reset_objects()
        if state_file and os.path.exists(state_file):
            self.load(state_file)

    @staticmethod
    def default_config():
        return {"job_delay": 0.0, "transfer_time": 0.0, "force_async": False,
                "snapmirror_lag": None}

    def reset_objects(self):
        gen, major, minor = self.version
        self.cluster = {
            "name": "fake-cluster", "uuid": new_uuid(),
            "version": {"full": "NetApp Release %d.%d.%d: Mon Jan 06 12:00:00 UTC 2025"
                        % (gen, major, minor),
                        "generation": gen, "major": major, "minor": minor},
            "location": "aicp tests", "contact": "",
            "management_interfaces": [{"name": "cluster_mgmt", "ip": {"address": "127.0.0.1"}}],
        }
        self.node = {"name": "fake-cluster-01", "uuid": new_uuid(),
                     "version": dict(self.cluster["version"]), "state": "up",
                     "model": "FAKE-A800"}
        self.aggregates = {}
        for name, size in (("aggr1", 100 * TB), ("aggr2", 100 * TB)):
            a = {"uuid": new_uuid(), "name": name,
                 "node": {"name": self.node["name"], "uuid": self.node["uuid"]},
                 "state": "online",
                 "block_storage": {"primary": {"disk_type": "ssd", "raid_type": "raid_dp"}},
                 "space": {"block_storage": {"size": size, "available": size, "used": 0}}}
            self.aggregates[a["uuid"]] = a
        self.svms = {}
        for name in ("ontapai_nfs", "svm_dr"):
            s = {"uuid": new_uuid(), "name": name, "state": "running", "subtype": "default",
                 "language": "c.utf_8",
                 "aggregates": [{"name": a["name"], "uuid": a["uuid"]}
                                for a in self.aggregates.values()],
                 "nfs": {"enabled": True}, "cifs": {"enabled": False},
                 "iscsi": {"enabled": False}, "fcp": {"enabled": False}}
            self.svms[s["uuid"]] = s
        self.volumes = {}
        self.snapshots = {}          # volume uuid -> {snapshot uuid: record}
        self.policies = {}           # export policy id -> record (rules inside)
        self.next_policy_id = 12884901889
        for s in self.svms.values():
            self._add_policy("default", s, [])
        self.relationships = {}
        self.transfers = {}          # relationship uuid -> {transfer uuid: record}
        self.peers = {}
        svms = list(self.svms.values())
        for a in svms:
            for b in svms:
                if a is not b:
                    p = {"uuid": new_uuid(), "name": b["name"],
                         "svm": {"name": a["name"], "uuid": a["uuid"]},
                         "peer": {"svm": {"name": b["name"], "uuid": b["uuid"]},
                                  "cluster": {"name": self.cluster["name"]}},
                         "state": "peered", "applications": ["snapmirror"]}
                    self.peers[p["uuid"]] = p

    def _add_policy(self, name, svm, rules):
        pid = self.next_policy_id
        self.next_policy_id += 1
        p = {"id": pid, "name": name, "svm": {"name": svm["name"], "uuid": svm["uuid"]},
             "rules": rules}
        self.policies[pid] = p
        return p

    # Persistence --------------------------------------------------------

    STATE_KEYS = ("cluster", "node", "aggregates", "svms", "volumes", "snapshots",
                  "policies", "next_policy_id", "relationships", "transfers", "peers")

    def save(self):
        if not self.state_file:
            return
        data = {k: getattr(self, k) for k in self.STATE_KEYS}
        data["policies"] = {str(k): v for k, v in self.policies.items()}
        tmp = self.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.state_file)

    def load(self, path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for k in self.STATE_KEYS:
            if k in data:
                setattr(self, k, data[k])
        self.policies = {int(k): v for k, v in self.policies.items()}
        # The version is the command line's, not the saved one.
        self.set_version(self.version)

    def set_version(self, version):
        self.version = tuple(version)
        gen, major, minor = self.version
        self.cluster["version"] = {
            "full": "NetApp Release %d.%d.%d: Mon Jan 06 12:00:00 UTC 2025" % (gen, major, minor),
            "generation": gen, "major": major, "minor": minor}
        self.node["version"] = dict(self.cluster["version"])

    # Lookups ------------------------------------------------------------

    def svm_by(self, ref, target="svm.name"):
        """An SVM from {"name"} or {"uuid"}; 400 SVM "x" does not exist."""
        if not isinstance(ref, dict) or not (ref.get("name") or ref.get("uuid")):
            raise bad('"%s" is a required field' % target.split(".")[0], E_REQUIRED, target)
        for s in self.svms.values():
            if (ref.get("uuid") and s["uuid"] == ref["uuid"]) or \
                    (not ref.get("uuid") and s["name"] == ref.get("name")):
                return s
        raise bad('SVM "%s" does not exist.' % (ref.get("name") or ref.get("uuid")),
                  E_SVM_NOT_FOUND, target)

    def svm_named(self, name):
        return next((s for s in self.svms.values() if s["name"] == name), None)

    def volume_named(self, svm_name, name):
        return next((v for v in self.volumes.values()
                     if v["name"] == name and v["svm"]["name"] == svm_name), None)

    def volume(self, vuuid):
        v = self.volumes.get(vuuid)
        if v is None:
            raise not_found()
        return v

    def aggregate_by(self, ref):
        for a in self.aggregates.values():
            if (ref.get("uuid") and a["uuid"] == ref["uuid"]) or \
                    (not ref.get("uuid") and a["name"] == ref.get("name")):
                return a
        raise bad('Aggregate "%s" does not exist.' % (ref.get("name") or ref.get("uuid")),
                  E_AGGR_NOT_FOUND, "aggregates.name")

    def policy_named(self, svm_name, name):
        return next((p for p in self.policies.values()
                     if p["name"] == name and p["svm"]["name"] == svm_name), None)

    def clones_of(self, vol):
        return [v for v in self.volumes.values()
                if get_path(v, "clone.is_flexclone") and
                get_path(v, "clone.parent_volume.uuid") == vol["uuid"]]

    def relationship_for_dest(self, path):
        return next((r for r in self.relationships.values()
                     if r["destination"]["path"] == path), None)

    def refresh_space(self, v):
        size = v["size"]
        used = min(size, 1 * MB + sum(s.get("size", 0) for s in
                                      self.snapshots.get(v["uuid"], {}).values()))
        reserve = size * get_path(v, "space.snapshot.reserve_percent", 0) // 100
        sp = v.setdefault("space", {})
        sp["size"] = size
        sp["used"] = used
        sp["available"] = max(0, size - reserve - used)
        sp.setdefault("snapshot", {})["reserve_size"] = reserve
        self.refresh_aggregates()

    def refresh_aggregates(self):
        for a in self.aggregates.values():
            used = 0
            for v in self.volumes.values():
                if get_path(v, "guarantee.type") != "volume":
                    continue
                names = [x["name"] for x in v.get("aggregates", [])]
                if a["name"] in names:
                    used += v["size"] // max(1, len(names))
            bs = a["space"]["block_storage"]
            bs["used"] = used
            bs["available"] = max(0, bs["size"] - used)


# ---------------------------------------------------------------------------
# The server.

class Fault(dict):
    pass


class OntapFake(FakeServer):
    def __init__(self, cert, key, users, version=(9, 8, 0), state=None, verbose=False):
        super().__init__(cert=cert, key=key, verbose=verbose)
        self.users = users          # {username: password}
        self.store = Store(version, state)

    # Auth and request log -----------------------------------------------

    def classify_auth(self, header):
        if not header:
            return "none"
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return "bad"
        try:
            user, _, pw = base64.b64decode(value.strip(), validate=True) \
                .decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return "bad"
        want = self.users.get(user)
        if want is not None and hmac.compare_digest(pw.encode(), want.encode()):
            return "basic:" + user
        return "bad"

    def record_request(self, req):
        """No bodies (they may hold secrets), no credentials."""
        return {"method": req.method, "path": req.path, "query": req.query,
                "auth": req.auth, "time": time.time()}

    # Control endpoints --------------------------------------------------

    def control(self, req):
        s = self.store
        body = req.json if isinstance(req.json, dict) else {}
        p, m = req.path.rstrip("/"), req.method
        if p == "/_fake/config" and m in ("POST", "PATCH"):
            with s.lock:
                if "version" in body:
                    # The version the cluster reports from now on (tests of
                    # version gating without a second fake): "9.6.0".
                    try:
                        s.set_version(parse_version(str(body["version"])))
                    except argparse.ArgumentTypeError as e:
                        return Response(400, json={"message": str(e)})
                    body = {k: v for k, v in body.items() if k != "version"}
                for k, v in body.items():
                    if k not in s.config:
                        return Response(400, json={"message": "unknown config key " + k})
                    s.config[k] = v
                return Response(200, json=dict(s.config))
        if p == "/_fake/config" and m == "GET":
            with s.lock:
                return Response(200, json=dict(s.config))
        if p == "/_fake/fault" and m == "POST":
            if not any(body.get(k) for k in ("status", "delay", "drop", "locked", "job")):
                return Response(400, json={"message": "a fault needs status, delay, drop, locked or job"})
            if body.get("job") not in (None, "fail", "vanish"):
                return Response(400, json={"message": 'job must be "fail" or "vanish"'})
            try:
                re.compile(body.get("path_regex", ""))
            except re.error as e:
                return Response(400, json={"message": "bad path_regex: %s" % e})
            with s.lock:
                s.faults.append(Fault(body, count=int(body.get("count", 1))))
            return Response(200, json={})
        if p == "/_fake/faults" and m == "GET":
            with s.lock:
                return Response(200, json=list(s.faults))
        if p == "/_fake/reset" and m == "POST":
            with s.lock:
                s.faults.clear()
                s.config = s.default_config()
                if body.get("objects"):
                    s.jobs.clear()
                    s.reset_objects()
                    s.save()
            with self.lock:
                self.requests.clear()
            return Response(200, json={})
        if p == "/_fake/volume" and m == "PATCH":
            return self.fake_volume(body)
        if p == "/_fake/snapmirror" and m == "PATCH":
            return self.fake_snapmirror(body)
        if p == "/_fake/objects" and m == "GET":
            with s.lock:
                return Response(200, json=strip_internal({
                    "cluster": s.cluster, "svms": list(s.svms.values()),
                    "aggregates": list(s.aggregates.values()),
                    "volumes": list(s.volumes.values()),
                    "snapshots": {k: list(v.values()) for k, v in s.snapshots.items()},
                    "export_policies": list(s.policies.values()),
                    "relationships": list(s.relationships.values()),
                    "jobs": list(s.jobs.values())}))
        return super().control(req)

    def fake_volume(self, body):
        """Changes a volume behind the client's back: no checks, no job."""
        s = self.store
        if not body.get("name"):
            return Response(400, json={"message": "needs name (and svm)"})
        with s.lock:
            vols = [v for v in s.volumes.values() if v["name"] == body["name"] and
                    (not body.get("svm") or v["svm"]["name"] == body["svm"])]
            if len(vols) != 1:
                return Response(404 if not vols else 400,
                                json={"message": "%d volumes match" % len(vols)})
            v = vols[0]
            if body.get("delete"):
                self.drop_volume(v)
                s.save()
                return Response(200, json={})
            changes = expand_dotted(body.get("set") or {})
            if "size" in changes:
                changes["size"] = parse_size(changes["size"])
            if "nas" in changes and "unix_permissions" in changes["nas"]:
                changes["nas"]["unix_permissions"] = parse_unix_permissions(
                    changes["nas"]["unix_permissions"])
            deep_merge(v, changes)
            if get_path(v, "nas.path") == "":
                v["nas"].pop("path", None)
            s.refresh_space(v)
            s.save()
            return Response(200, json=strip_internal(v))

    def fake_snapmirror(self, body):
        """Sets a relationship's lag, health or transfer state for tests:
        {"destination": "svm:vol" | "uuid": U, "set": {"lag_seconds": 7200,
        "healthy": false, "unhealthy_reason": "...", "transfer_state": "..."}}."""
        s = self.store
        with s.lock:
            r = s.relationships.get(body.get("uuid")) if body.get("uuid") else \
                s.relationship_for_dest(body.get("destination", ""))
            if r is None:
                return Response(404, json={"message": "no such relationship"})
            st = body.get("set") or {}
            if "lag_seconds" in st:
                r["_fake_last_transfer"] = time.time() - float(st["lag_seconds"])
            if "healthy" in st:
                r["healthy"] = bool(st["healthy"])
                if r["healthy"]:
                    r.pop("unhealthy_reason", None)
                else:
                    r["unhealthy_reason"] = [{"message": st.get("unhealthy_reason",
                                                                "Transfer failed."),
                                              "code": "13303892"}]
            if "transfer_state" in st:
                r.setdefault("transfer", {"uuid": new_uuid()})["state"] = st["transfer_state"]
            if "state" in st:
                r["state"] = st["state"]
            s.save()
            return Response(200, json=self.sm_view(r))

    # Dispatch -----------------------------------------------------------

    def take_fault(self, req, job=False):
        s = self.store
        with s.lock:
            for f in s.faults:
                if f["count"] <= 0 or bool(f.get("job")) != job:
                    continue
                if f.get("method") and f["method"].upper() not in (req.method, "*"):
                    continue
                if not re.search(f.get("path_regex", ""), req.path):
                    continue
                f["count"] -= 1
                s.faults[:] = [x for x in s.faults if x["count"] > 0]
                return f
        return None

    def dispatch(self, req):
        try:
            fault = self.take_fault(req)
            if fault is not None:
                if fault.get("delay"):
                    time.sleep(float(fault["delay"]))
                if fault.get("drop"):
                    return Response(close=True)
                if fault.get("locked"):
                    raise OntapError(int(fault.get("status", 409)), fault.get(
                        "message", "The operation cannot be performed because the object is "
                        "temporarily locked by another operation. Wait a few minutes, then "
                        "try the command again."), fault.get("error_code", E_LOCKED))
                if fault.get("status"):
                    code = int(fault["status"])
                    hdrs = {}
                    if fault.get("retry_after") is not None or code == 429:
                        hdrs["Retry-After"] = str(int(fault.get("retry_after", 1)))
                    msgs = {429: "Too many requests. Try again later.",
                            500: "Internal error. Injected fault.",
                            503: "Service unavailable. Try again later."}
                    raise OntapError(code, fault.get("message", msgs.get(code, "Injected fault.")),
                                     fault.get("error_code", E_FAULT), headers=hdrs)
            if not req.path.startswith("/api/") and req.path != "/api":
                raise OntapError(404, "API not found", E_API_NOT_FOUND)
            if not req.auth.startswith("basic:"):
                raise OntapError(401, "not authorized for that command", E_NOT_AUTHORIZED,
                                 headers={"WWW-Authenticate": 'Basic realm="ONTAP"'})
            return self.route(req)
        except OntapError as e:
            return Response(e.status, json=e.body(), headers=e.headers)
        except Exception:       # a bug in the fake: say where, never the data
            et, _, tb = sys.exc_info()
            sys.stderr.write("ontap fake: internal error %s\n%s" %
                             (et.__name__, "".join(traceback.format_tb(tb))))
            return Response(500, json={"error": {"message": "fake bug (%s)" % et.__name__,
                                                 "code": "1"}})

    ROUTES = [
        (r"^cluster$", "cluster"),
        (r"^cluster/nodes$", "nodes"),
        (r"^cluster/nodes/([^/]+)$", "node"),
        (r"^cluster/jobs$", "jobs"),
        (r"^cluster/jobs/([^/]+)$", "job"),
        (r"^svm/svms$", "svms"),
        (r"^svm/svms/([^/]+)$", "svm"),
        (r"^svm/peers$", "peers"),
        (r"^storage/aggregates$", "aggregates"),
        (r"^storage/aggregates/([^/]+)$", "aggregate"),
        (r"^storage/aggregates/([^/]+)/cloud-stores$", "cloud_stores"),
        (r"^storage/snapshot-policies$", "snapshot_policies"),
        (r"^storage/volumes$", "volumes"),
        (r"^storage/volumes/([^/]+)$", "volume"),
        (r"^storage/volumes/([^/]+)/snapshots$", "snapshots"),
        (r"^storage/volumes/([^/]+)/snapshots/([^/]+)$", "snapshot"),
        (r"^protocols/nfs/export-policies$", "policies"),
        (r"^protocols/nfs/export-policies/([^/]+)$", "policy"),
        (r"^protocols/nfs/export-policies/([^/]+)/rules$", "rules"),
        (r"^protocols/nfs/export-policies/([^/]+)/rules/([^/]+)$", "rule"),
        (r"^snapmirror/policies$", "sm_policies"),
        (r"^snapmirror/relationships$", "relationships"),
        (r"^snapmirror/relationships/([^/]+)$", "relationship"),
        (r"^snapmirror/relationships/([^/]+)/transfers$", "transfers"),
        (r"^snapmirror/relationships/([^/]+)/transfers/([^/]+)$", "transfer"),
    ]

    def route(self, req):
        path = req.path[len("/api/"):].strip("/")
        for rx, name in self.ROUTES:
            m = re.match(rx, path)
            if m:
                fn = getattr(self, "h_%s_%s" % (name, req.method.lower()), None)
                if fn is None:
                    raise OntapError(405, 'The method "%s" is not allowed on /api/%s.'
                                     % (req.method, path), "3")
                if req.method in ("POST", "PATCH"):
                    body = req.json if req.body else {}
                    if not isinstance(body, dict):
                        raise bad("The request body is not valid JSON.", "262187")
                    req.obj = expand_dotted(body)
                    # Query parameters may carry body fields too (ONTAP accepts both).
                return fn(req, *m.groups())
        raise OntapError(404, "API not found", E_API_NOT_FOUND)

    # Generic GET helpers --------------------------------------------------

    @staticmethod
    def fields_of(req):
        out = []
        for f in req.query.get("fields", []):
            out.extend(x.strip() for x in f.split(",") if x.strip())
        return out

    @staticmethod
    def filters_of(req):
        return [(k, v) for k, v in req.query.items() if k not in CONTROL_PARAMS]

    def collection(self, req, records, keys):
        fields = self.fields_of(req)
        filters = self.filters_of(req)
        out = []
        for r in records:
            r = strip_internal(r)
            if not record_matches(r, filters):
                continue
            out.append(project(r, fields, keys) if fields else
                       {k: copy.deepcopy(r[k]) for k in keys if k in r})
        return Response(200, json={"records": out, "num_records": len(out),
                                   "_links": {"self": {"href": req.path}}})

    def single(self, req, record, keys):
        fields = self.fields_of(req)
        r = strip_internal(record)
        return Response(200, json=project(r, fields, keys) if fields else r)

    # Jobs -----------------------------------------------------------------

    def new_job(self, req):
        j = {"uuid": new_uuid(), "description": "%s %s" % (req.method, req.path),
             "state": "running", "message": "", "code": 0,
             "start_time": now_iso(),
             "_links": {"self": {"href": "/api/cluster/jobs/"}}}
        j["_links"]["self"]["href"] += j["uuid"]
        return j

    def run_async(self, req, op, ok_status, created=None):
        """Runs op(commit) as an ONTAP job. op(False) has already passed
        (checked by the caller, under the lock); op(True) re-checks and
        commits when the job runs. created: the record stub a POST with
        return_records=true returns at once."""
        s = self.store
        try:
            rt = int(float((req.query.get("return_timeout") or ["0"])[0]))
        except ValueError:
            raise bad('The value "%s" is invalid for field "return_timeout".'
                      % req.query["return_timeout"][0], E_INVALID_VALUE, "return_timeout")
        if rt < 0 or rt > 120:
            raise bad('Field "return_timeout" must be between 0 and 120.', E_INVALID_VALUE,
                      "return_timeout")
        job = self.new_job(req)
        fault = self.take_fault(req, job=True)
        with s.lock:
            delay = float(s.config.get("job_delay") or 0)
            force_async = bool(s.config.get("force_async"))
            if fault is None or fault.get("job") != "vanish":
                s.jobs[job["uuid"]] = job
        if fault is not None and fault.get("delay"):
            delay = float(fault["delay"])
        ref = {"uuid": job["uuid"], "_links": copy.deepcopy(job["_links"])}
        body = {"job": ref}
        if created is not None and (req.query.get("return_records") or [""])[0].lower() == "true":
            body = {"num_records": 1, "records": [created], "job": ref}
        inline = fault is None and not force_async and delay <= rt
        if inline:
            if delay:
                time.sleep(delay)
            self.finish_job(job, op, None)
            if job["state"] == "failure":
                # Answered as the error itself, with the status the check
                # that failed would have had.
                raise OntapError(job.get("_fake_status", 400), job["message"], str(job["code"]),
                                 job.get("_fake_target"))
            with s.lock:
                if created is not None and body.get("records"):
                    body["records"] = [self.refresh_created(created)]
            return Response(ok_status, json=body)
        if fault is not None and fault.get("job") == "vanish" and not fault.get("delay"):
            # A vanished job finished (or was dropped) and was purged
            # before the client could poll it: its work is done before
            # the 202 goes out, so what the client re-reads is settled.
            self.finish_job(job, op, fault)
            return Response(202, json=body)
        t = threading.Thread(target=self._job_later, args=(job, op, fault, delay), daemon=True)
        t.start()
        return Response(202, json=body)

    def refresh_created(self, stub):
        v = self.store.volumes.get(stub.get("uuid"))
        return {"uuid": v["uuid"], "name": v["name"]} if v else stub

    def _job_later(self, job, op, fault, delay):
        time.sleep(delay)
        self.finish_job(job, op, fault)

    def finish_job(self, job, op, fault):
        s = self.store
        with s.lock:
            if fault is not None and fault.get("job") == "fail":
                job["state"] = "failure"
                job["message"] = fault.get("message", "Injected job failure.")
                job["code"] = int(fault.get("error_code", E_JOB_FAILED))
            elif fault is not None and fault.get("job") == "vanish" and \
                    fault.get("apply", True) is False:
                pass
            else:
                try:
                    op(True)
                    job["state"] = "success"
                    job["message"] = "success"
                except OntapError as e:
                    job["state"] = "failure"
                    job["message"] = e.message
                    job["_fake_status"] = e.status
                    job["_fake_target"] = e.target
                    job["code"] = int(e.code) if e.code.isdigit() else 1
            job["end_time"] = now_iso()
            s.save()

    def h_jobs_get(self, req):
        with self.store.lock:
            return self.collection(req, list(self.store.jobs.values()), ("uuid",))

    def h_job_get(self, req, juuid):
        with self.store.lock:
            j = self.store.jobs.get(juuid)
            if j is None:
                raise not_found()
            return self.single(req, j, ("uuid",))

    # Cluster, nodes, SVMs, aggregates, peers ------------------------------

    def h_cluster_get(self, req):
        with self.store.lock:
            return self.single(req, self.store.cluster, ())

    def h_nodes_get(self, req):
        with self.store.lock:
            return self.collection(req, [self.store.node], ("uuid", "name"))

    def h_node_get(self, req, nuuid):
        with self.store.lock:
            if nuuid != self.store.node["uuid"]:
                raise not_found()
            return self.single(req, self.store.node, ("uuid", "name"))

    def h_svms_get(self, req):
        with self.store.lock:
            return self.collection(req, list(self.store.svms.values()), ("uuid", "name"))

    def h_svm_get(self, req, suuid):
        with self.store.lock:
            s = self.store.svms.get(suuid)
            if s is None:
                raise not_found()
            return self.single(req, s, ("uuid", "name"))

    def h_peers_get(self, req):
        with self.store.lock:
            return self.collection(req, list(self.store.peers.values()), ("uuid", "name"))

    def h_aggregates_get(self, req):
        with self.store.lock:
            return self.collection(req, list(self.store.aggregates.values()), ("uuid", "name"))

    def h_aggregate_get(self, req, auuid):
        with self.store.lock:
            a = self.store.aggregates.get(auuid)
            if a is None:
                raise not_found()
            return self.single(req, a, ("uuid", "name"))

    def h_cloud_stores_get(self, req, auuid):
        with self.store.lock:
            if auuid not in self.store.aggregates:
                raise not_found()
        return Response(200, json={"records": [], "num_records": 0})

    def h_snapshot_policies_get(self, req):
        recs = [{"uuid": "00000000-0000-0000-0000-00000000000%d" % i, "name": n,
                 "enabled": n != "none", "scope": "cluster"}
                for i, n in enumerate(SNAPSHOT_POLICIES)]
        return self.collection(req, recs, ("uuid", "name"))

    # Volumes --------------------------------------------------------------

    VOLUME_POST = {"name", "svm", "style", "size", "state", "type", "aggregates",
                   "constituents_per_aggregate", "nas", "snapshot_policy", "space",
                   "guarantee", "tiering", "comment", "clone", "qos", "efficiency",
                   "encryption", "language", "analytics", "snaplock", "files", "_tags",
                   "autosize", "snapshot_directory_access_enabled"}
    VOLUME_PATCH = {"name", "size", "state", "nas", "snapshot_policy", "space", "guarantee",
                    "tiering", "comment", "clone", "qos", "efficiency", "encryption",
                    "analytics", "files", "_tags", "autosize", "movement", "restore_to",
                    "snapshot_directory_access_enabled", "snaplock"}
    VOLUME_KEYS = ("uuid", "name")

    def h_volumes_get(self, req):
        with self.store.lock:
            return self.collection(req, list(self.store.volumes.values()), self.VOLUME_KEYS)

    def h_volume_get(self, req, vuuid):
        with self.store.lock:
            return self.single(req, self.store.volume(vuuid), self.VOLUME_KEYS)

    def check_volume_name(self, name):
        if not isinstance(name, str) or not VOLUME_NAME_RE.match(name):
            raise bad('Invalid volume name "%s". Volume names must start with a letter or '
                      'an underscore ("_"), contain only letters, digits and underscores, '
                      'and be at most 203 characters long.' % (name,), E_VOLUME_NAME, "name")

    def check_size(self, size):
        if size < MIN_VOLUME_SIZE:
            raise bad('Unable to set volume attribute "size". Reason: Cannot set volume '
                      'size to less than 20MB.', E_VOLUME_SIZE, "size")

    def check_junction(self, svm_name, path, vol=None):
        s = self.store
        if not isinstance(path, str) or (path and not path.startswith("/")):
            raise bad('The junction path "%s" is invalid: it must start with "/".' % (path,),
                      E_INVALID_VALUE, "nas.path")
        for v in s.volumes.values():
            if v is not vol and v["svm"]["name"] == svm_name and path and \
                    get_path(v, "nas.path") == path:
                raise bad('Failed to mount volume. Reason: Junction path "%s" is already '
                          'used by volume "%s" in SVM "%s".' % (path, v["name"], svm_name),
                          E_JUNCTION_IN_USE, "nas.path")

    def check_volume_attrs(self, svm, attrs):
        """Enum fields, policies and permissions of a POST or PATCH body;
        normalises attrs in place."""
        s = self.store
        for field in ("state", "type", "nas.security_style", "guarantee.type",
                      "tiering.policy", "style"):
            val = get_path(attrs, field)
            if val is not None:
                set_path(attrs, field, check_enum(field, val))
        ep = get_path(attrs, "nas.export_policy.name")
        if ep is not None and s.policy_named(svm["name"], ep) is None:
            raise bad('Export policy "%s" does not exist in SVM "%s".' % (ep, svm["name"]),
                      E_POLICY_NOT_FOUND, "nas.export_policy.name")
        sp = get_path(attrs, "snapshot_policy.name")
        if sp is not None and sp not in SNAPSHOT_POLICIES:
            raise bad('Snapshot policy "%s" does not exist.' % sp, E_POLICY_NOT_FOUND,
                      "snapshot_policy.name")
        up = get_path(attrs, "nas.unix_permissions")
        if up is not None:
            set_path(attrs, "nas.unix_permissions", parse_unix_permissions(up))
        rp = get_path(attrs, "space.snapshot.reserve_percent")
        if rp is not None and (not isinstance(rp, int) or isinstance(rp, bool) or
                               not 0 <= rp <= 90):
            raise bad('The value "%s" is invalid for field "space.snapshot.reserve_percent" '
                      '(0 to 90).' % (rp,), E_INVALID_VALUE, "space.snapshot.reserve_percent")

    def h_volumes_post(self, req):
        s = self.store
        b = req.obj
        check_allowed(b, self.VOLUME_POST, "volume")
        if get_path(b, "clone.is_flexclone") or get_path(b, "clone.parent_volume"):
            return self.clone_post(req, b)
        with s.lock:
            if not b.get("name"):
                raise bad('"name" is a required field', E_REQUIRED, "name")
            self.check_volume_name(b["name"])
            svm = s.svm_by(b.get("svm"))
            b["svm"] = {"name": svm["name"], "uuid": svm["uuid"]}
            self.check_volume_attrs(svm, b)
            aggrs = b.get("aggregates")
            if aggrs is not None and (not isinstance(aggrs, list) or
                                      not all(isinstance(a, dict) for a in aggrs)):
                raise bad('The value of field "aggregates" must be a list of aggregates.',
                          E_INVALID_VALUE, "aggregates")
            aggrs = [s.aggregate_by(a) for a in (aggrs or [])]
            style = b.get("style") or ("flexgroup" if len(aggrs) > 1 or
                                       b.get("constituents_per_aggregate") else "flexvol")
            if style == "flexvol" and len(aggrs) > 1:
                raise bad("A FlexVol volume can only be created on a single aggregate. "
                          "Specify style \"flexgroup\" for multiple aggregates.",
                          E_INVALID_VALUE, "aggregates")
            if not aggrs:
                aggrs = [sorted(s.aggregates.values(), key=lambda a: a["name"])[0]]
            cpa = b.get("constituents_per_aggregate")
            if cpa is not None and (style != "flexgroup" or not isinstance(cpa, int) or
                                    not 1 <= cpa <= 1000):
                raise bad('Field "constituents_per_aggregate" is only valid for FlexGroup '
                          'volumes, 1 to 1000.', E_INVALID_VALUE, "constituents_per_aggregate")
            size = parse_size(b["size"]) if "size" in b else MIN_VOLUME_SIZE
            self.check_size(size)
            path = get_path(b, "nas.path")
            if path:
                self.check_junction(svm["name"], path)
                if b.get("state") == "offline":
                    raise bad('Volume "%s" in Vserver "%s" must be unmounted before being '
                              'taken offline or deleted.' % (b["name"], svm["name"]),
                              E_VOLUME_MOUNTED, "nas.path")
            vuuid = new_uuid()
            vol = self.build_volume(b, vuuid, svm, aggrs, style, size, cpa)

            def op(commit):
                if s.volume_named(svm["name"], b["name"]) is not None:
                    raise OntapError(409, 'Duplicate volume name "%s".' % b["name"],
                                     E_DUPLICATE_VOLUME, "name")
                if s.svm_named(svm["name"]) is None:
                    raise bad('SVM "%s" does not exist.' % svm["name"], E_SVM_NOT_FOUND,
                              "svm.name")
                if path:
                    self.check_junction(svm["name"], path)
                if commit:
                    v = copy.deepcopy(vol)
                    v["create_time"] = now_iso()
                    s.volumes[vuuid] = v
                    s.snapshots[vuuid] = {}
                    s.refresh_space(v)
            op(False)
        return self.run_async(req, op, 201, created={"uuid": vuuid, "name": b["name"]})

    def build_volume(self, b, vuuid, svm, aggrs, style, size, cpa):
        nas = b.get("nas") or {}
        vol = {
            "uuid": vuuid, "name": b["name"],
            "svm": {"name": svm["name"], "uuid": svm["uuid"]},
            "style": style, "size": size,
            "state": b.get("state", "online"), "type": b.get("type", "rw"),
            "aggregates": [{"name": a["name"], "uuid": a["uuid"]} for a in aggrs],
            "nas": {"export_policy": {"name": get_path(nas, "export_policy.name", "default")},
                    "security_style": nas.get("security_style", "unix"),
                    "unix_permissions": nas.get("unix_permissions", 755),
                    "uid": nas.get("uid", 0), "gid": nas.get("gid", 0)},
            "snapshot_policy": {"name": get_path(b, "snapshot_policy.name", "default")},
            "space": {"snapshot": {"reserve_percent": get_path(
                b, "space.snapshot.reserve_percent", 0 if style == "flexgroup" else 5)},
                "logical_space": {"enforcement": get_path(b, "space.logical_space.enforcement", False),
                                  "reporting": get_path(b, "space.logical_space.reporting", False)}},
            "guarantee": {"type": get_path(b, "guarantee.type", "volume")},
            "tiering": {"policy": get_path(b, "tiering.policy", "none")},
            "language": b.get("language", svm.get("language", "c.utf_8")),
            "efficiency": {"compression": get_path(b, "efficiency.compression", "none"),
                           "policy": {"name": get_path(b, "efficiency.policy.name", "auto")}},
            "encryption": {"enabled": bool(get_path(b, "encryption.enabled", False))},
            "snaplock": {"type": "non_snaplock"},
            "files": {"maximum": max(1, size // 32768)},
            "clone": {"is_flexclone": False},
            "snapshot_count": 0,
        }
        if nas.get("path"):
            vol["nas"]["path"] = nas["path"]
        if b.get("comment") is not None:
            vol["comment"] = b["comment"]
        if get_path(b, "qos.policy.name"):
            vol["qos"] = {"policy": {"name": get_path(b, "qos.policy.name")}}
        if b.get("_tags") is not None:
            vol["_tags"] = b["_tags"]
        if style == "flexgroup":
            vol["_fake_constituents"] = (cpa or 4) * len(aggrs)
        if get_path(b, "analytics.state"):
            vol["analytics"] = {"state": get_path(b, "analytics.state")}
        return vol

    def clone_post(self, req, b):
        s = self.store
        with s.lock:
            if not b.get("name"):
                raise bad('"name" is a required field', E_REQUIRED, "name")
            self.check_volume_name(b["name"])
            svm = s.svm_by(b.get("svm"))
            pref = get_path(b, "clone.parent_volume") or {}
            if not (pref.get("name") or pref.get("uuid")):
                raise bad('"clone.parent_volume.name" is a required field', E_REQUIRED,
                          "clone.parent_volume.name")
            psvm = s.svm_by(get_path(b, "clone.parent_svm")) if get_path(b, "clone.parent_svm") \
                else svm
            self.check_volume_attrs(svm, b)
            path = get_path(b, "nas.path")
            if path:
                self.check_junction(svm["name"], path)
            psnap = get_path(b, "clone.parent_snapshot.name")
            vuuid = new_uuid()

            def find_parent():
                if pref.get("uuid"):
                    p = s.volumes.get(pref["uuid"])
                else:
                    p = s.volume_named(psvm["name"], pref["name"])
                if p is None:
                    raise OntapError(404, 'Volume "%s" does not exist in SVM "%s".'
                                     % (pref.get("name") or pref.get("uuid"), psvm["name"]),
                                     E_ENTRY_NOT_FOUND, "clone.parent_volume.name")
                return p

            def op(commit):
                if s.volume_named(svm["name"], b["name"]) is not None:
                    raise OntapError(409, 'Duplicate volume name "%s".' % b["name"],
                                     E_DUPLICATE_VOLUME, "name")
                parent = find_parent()
                if parent["state"] != "online":
                    raise bad('Volume "%s" in SVM "%s" is offline.' % (parent["name"],
                                                                       psvm["name"]),
                              E_VOLUME_OFFLINE, "clone.parent_volume.name")
                snaps = s.snapshots.get(parent["uuid"], {})
                snap = None
                if psnap:
                    snap = next((x for x in snaps.values() if x["name"] == psnap), None)
                    if snap is None:
                        raise OntapError(404, 'Snapshot copy "%s" does not exist on volume '
                                         '"%s".' % (psnap, parent["name"]), E_ENTRY_NOT_FOUND,
                                         "clone.parent_snapshot.name")
                if path:
                    self.check_junction(svm["name"], path)
                if not commit:
                    return
                if snap is None:
                    # ONTAP takes a snapshot of the parent for the clone.
                    snap = self.make_snapshot(parent, "clone_%s.%s" % (
                        b["name"], datetime.now(timezone.utc).strftime("%Y-%m-%d_%H%M%S.0")),
                        {})
                aggrs = [s.aggregates[a["uuid"]] for a in parent["aggregates"]
                         if a["uuid"] in s.aggregates]
                nb = copy.deepcopy(b)
                nb.pop("clone", None)
                for k in ("snapshot_policy", "guarantee", "tiering", "space", "language",
                          "efficiency", "encryption"):
                    if k not in nb and k in parent:
                        nb[k] = copy.deepcopy(parent[k])
                nas = nb.setdefault("nas", {})
                for k in ("export_policy", "security_style", "unix_permissions", "uid", "gid"):
                    if k not in nas and k in parent.get("nas", {}):
                        nas[k] = copy.deepcopy(parent["nas"][k])
                v = self.build_volume(nb, vuuid, svm, aggrs, parent["style"], parent["size"],
                                      None)
                v["clone"] = {"is_flexclone": True, "split_initiated": False,
                              "parent_volume": {"name": parent["name"], "uuid": parent["uuid"]},
                              "parent_svm": {"name": parent["svm"]["name"],
                                             "uuid": parent["svm"]["uuid"]},
                              "parent_snapshot": {"name": snap["name"], "uuid": snap["uuid"]}}
                v["create_time"] = now_iso()
                s.volumes[vuuid] = v
                s.snapshots[vuuid] = {}
                s.refresh_space(v)
            op(False)
        return self.run_async(req, op, 201, created={"uuid": vuuid, "name": b["name"]})

    def h_volume_patch(self, req, vuuid):
        s = self.store
        b = req.obj
        with s.lock:
            vol = s.volume(vuuid)
            for k in ("style", "aggregates", "svm", "type", "uuid", "constituents_per_aggregate",
                      "language"):
                if k in b:
                    raise bad('Field "%s" cannot be set in this operation.' % k,
                              E_FIELD_NOT_SETTABLE, k)
            check_allowed(b, self.VOLUME_PATCH, "volume")
            clone = b.get("clone") or {}
            for k in clone:
                if k != "split_initiated":
                    raise bad('Field "clone.%s" cannot be set in this operation.' % k,
                              E_FIELD_NOT_SETTABLE, "clone." + k)
            svm = s.svms[vol["svm"]["uuid"]]
            self.check_volume_attrs(svm, b)
            if "name" in b:
                self.check_volume_name(b["name"])
            size = None
            if "size" in b:
                size = parse_size(b["size"])
                self.check_size(size)

            def op(commit):
                v = s.volume(vuuid)
                if "name" in b and b["name"] != v["name"] and \
                        s.volume_named(v["svm"]["name"], b["name"]) is not None:
                    raise OntapError(409, 'Duplicate volume name "%s".' % b["name"],
                                     E_DUPLICATE_VOLUME, "name")
                new_path = get_path(b, "nas.path", get_path(v, "nas.path", ""))
                new_state = b.get("state", v["state"])
                if new_path and new_path != get_path(v, "nas.path"):
                    self.check_junction(v["svm"]["name"], new_path, v)
                    if new_state != "online":
                        raise bad('Volume "%s" in Vserver "%s" is offline: it cannot be '
                                  'mounted.' % (v["name"], v["svm"]["name"]), E_VOLUME_OFFLINE,
                                  "nas.path")
                if new_state != "online" and new_path:
                    raise bad('Volume "%s" in Vserver "%s" must be unmounted before being '
                              'taken offline or deleted.' % (v["name"], v["svm"]["name"]),
                              E_VOLUME_MOUNTED, "state")
                if clone.get("split_initiated") and not get_path(v, "clone.is_flexclone"):
                    raise bad('Volume "%s" in Vserver "%s" is not a FlexClone volume.'
                              % (v["name"], v["svm"]["name"]), E_NOT_A_CLONE,
                              "clone.split_initiated")
                if not commit:
                    return
                upd = copy.deepcopy(b)
                upd.pop("clone", None)
                upd.pop("movement", None)
                upd.pop("restore_to", None)
                if size is not None:
                    upd["size"] = size
                deep_merge(v, upd)
                if get_path(v, "nas.path") == "":
                    v["nas"].pop("path", None)
                if clone.get("split_initiated"):
                    # The split finishes when the job does: the volume is no
                    # longer a clone (ONTAP keeps the parent's snapshot).
                    v["clone"] = {"is_flexclone": False}
                s.refresh_space(v)
            op(False)
        return self.run_async(req, op, 200)

    def h_volume_delete(self, req, vuuid):
        s = self.store
        with s.lock:
            s.volume(vuuid)

            def op(commit):
                v = s.volume(vuuid)
                where = (v["name"], v["svm"]["name"])
                if get_path(v, "nas.path"):
                    raise bad('Volume "%s" in Vserver "%s" must be unmounted before being '
                              'taken offline or deleted.' % where, E_VOLUME_MOUNTED, "nas.path")
                clones = s.clones_of(v)
                if clones:
                    raise bad('Volume "%s" in Vserver "%s" cannot be deleted because it has '
                              'FlexClone volumes: %s. Split or delete them first.'
                              % (where + (", ".join(c["name"] for c in clones),)),
                              E_VOLUME_HAS_CLONES, "uuid")
                r = s.relationship_for_dest("%s:%s" % (v["svm"]["name"], v["name"]))
                if r is not None:
                    raise bad('Volume "%s" in Vserver "%s" is the destination of a SnapMirror '
                              'relationship. Delete the relationship first.' % where,
                              E_VOLUME_SM_DEST, "uuid")
                if commit:
                    # ONTAP's REST DELETE takes an online volume offline itself.
                    self.drop_volume(v)
            op(False)
        return self.run_async(req, op, 200)

    def drop_volume(self, v):
        s = self.store
        s.volumes.pop(v["uuid"], None)
        s.snapshots.pop(v["uuid"], None)
        s.refresh_aggregates()

    # Snapshots ------------------------------------------------------------

    SNAP_KEYS = ("uuid", "name")

    def make_snapshot(self, vol, name, b):
        s = self.store
        snap = {"uuid": new_uuid(), "name": name,
                "volume": {"name": vol["name"], "uuid": vol["uuid"]},
                "svm": {"name": vol["svm"]["name"], "uuid": vol["svm"]["uuid"]},
                "create_time": now_iso(), "state": "valid", "size": 4096,
                "_fake_time": time.time()}
        for k in ("comment", "snapmirror_label", "expiry_time"):
            if b.get(k) is not None:
                snap[k] = b[k]
        s.snapshots.setdefault(vol["uuid"], {})[snap["uuid"]] = snap
        vol["snapshot_count"] = len(s.snapshots[vol["uuid"]])
        return snap

    def h_snapshots_get(self, req, vuuid):
        s = self.store
        with s.lock:
            s.volume(vuuid)
            recs = sorted(s.snapshots.get(vuuid, {}).values(), key=lambda x: x["_fake_time"])
            return self.collection(req, recs, self.SNAP_KEYS)

    def h_snapshot_get(self, req, vuuid, suuid):
        s = self.store
        with s.lock:
            s.volume(vuuid)
            snap = s.snapshots.get(vuuid, {}).get(suuid)
            if snap is None:
                raise not_found()
            return self.single(req, snap, self.SNAP_KEYS)

    def h_snapshots_post(self, req, vuuid):
        s = self.store
        b = req.obj
        check_allowed(b, {"name", "svm", "volume", "comment", "snapmirror_label",
                          "expiry_time", "snaplock_expiry_time"}, "snapshot")
        with s.lock:
            s.volume(vuuid)
            if not b.get("name"):
                raise bad('"name" is a required field', E_REQUIRED, "name")

            def op(commit):
                v = s.volume(vuuid)
                if any(x["name"] == b["name"] for x in s.snapshots.get(vuuid, {}).values()):
                    raise OntapError(409, 'Snapshot copy "%s" of volume "%s" on Vserver "%s" '
                                     'already exists.' % (b["name"], v["name"], v["svm"]["name"]),
                                     E_SNAPSHOT_DUP, "name")
                if v["state"] != "online":
                    raise bad('Volume "%s" in Vserver "%s" is offline.' % (v["name"],
                                                                          v["svm"]["name"]),
                              E_VOLUME_OFFLINE, "volume")
                if v["type"] == "dp":
                    raise bad('Cannot create Snapshot copy "%s": volume "%s" is a data '
                              'protection volume.' % (b["name"], v["name"]), E_SNAPSHOT_DP,
                              "volume")
                if commit:
                    self.make_snapshot(v, b["name"], b)
                    s.refresh_space(v)
            op(False)
        return self.run_async(req, op, 201)

    def h_snapshot_patch(self, req, vuuid, suuid):
        s = self.store
        b = req.obj
        check_allowed(b, {"name", "comment", "snapmirror_label", "expiry_time"}, "snapshot")
        with s.lock:
            s.volume(vuuid)
            if suuid not in s.snapshots.get(vuuid, {}):
                raise not_found()

            def op(commit):
                snaps = s.snapshots.get(vuuid, {})
                snap = snaps.get(suuid)
                if snap is None:
                    raise not_found()
                if "name" in b and b["name"] != snap["name"] and \
                        any(x["name"] == b["name"] for x in snaps.values()):
                    raise OntapError(409, 'Snapshot copy "%s" already exists.' % b["name"],
                                     E_SNAPSHOT_DUP, "name")
                if commit:
                    old = snap["name"]
                    for k, val in b.items():
                        if val is None or val == "":
                            snap.pop(k, None) if k != "name" else None
                        else:
                            snap[k] = val
                    if snap["name"] != old:
                        for v in s.volumes.values():
                            if get_path(v, "clone.parent_snapshot.uuid") == suuid:
                                v["clone"]["parent_snapshot"]["name"] = snap["name"]
            op(False)
        return self.run_async(req, op, 200)

    def h_snapshot_delete(self, req, vuuid, suuid):
        s = self.store
        with s.lock:
            s.volume(vuuid)
            if suuid not in s.snapshots.get(vuuid, {}):
                raise not_found()

            def op(commit):
                snap = s.snapshots.get(vuuid, {}).get(suuid)
                if snap is None:
                    raise not_found()
                users = [v["name"] for v in s.volumes.values()
                         if get_path(v, "clone.is_flexclone") and
                         get_path(v, "clone.parent_snapshot.uuid") == suuid]
                if users:
                    raise OntapError(409, 'Snapshot copy "%s" is busy: it is the parent of '
                                     'FlexClone volume "%s".' % (snap["name"], users[0]),
                                     E_SNAPSHOT_BUSY, "uuid")
                if commit:
                    s.snapshots[vuuid].pop(suuid, None)
                    v = s.volumes.get(vuuid)
                    if v is not None:
                        v["snapshot_count"] = len(s.snapshots[vuuid])
                        s.refresh_space(v)
            op(False)
        return self.run_async(req, op, 200)

    # Export policies and rules (synchronous in ONTAP) --------------------

    POLICY_KEYS = ("id", "name")
    RULE_FIELDS = {"clients", "protocols", "ro_rule", "rw_rule", "superuser", "anonymous_user",
                   "allow_suid", "allow_device_creation", "chown_mode", "ntfs_unix_security",
                   "index"}

    def policy(self, pid):
        try:
            p = self.store.policies.get(int(pid))
        except ValueError:
            p = None
        if p is None:
            raise not_found("id")
        return p

    def h_policies_get(self, req):
        with self.store.lock:
            return self.collection(req, sorted(self.store.policies.values(),
                                               key=lambda p: p["id"]), self.POLICY_KEYS)

    def h_policy_get(self, req, pid):
        with self.store.lock:
            return self.single(req, self.policy(pid), self.POLICY_KEYS)

    def build_rule(self, b, index):
        check_allowed(b, self.RULE_FIELDS, "rule")
        for k in ("clients", "ro_rule", "rw_rule"):
            if not b.get(k):
                raise bad('"%s" is a required field' % k, E_REQUIRED, k)
        clients = b["clients"]
        if not isinstance(clients, list) or not all(isinstance(c, dict) and c.get("match")
                                                    for c in clients):
            raise bad('The value of field "clients" must be a list of {"match": ...}.',
                      E_INVALID_VALUE, "clients")
        rule = {"index": index, "clients": [{"match": c["match"]} for c in clients]}
        for k, allowed, dflt in (("protocols", RULE_PROTOCOLS, ["any"]),
                                 ("ro_rule", RULE_AUTH, None), ("rw_rule", RULE_AUTH, None),
                                 ("superuser", RULE_AUTH, ["any"])):
            val = b.get(k, dflt)
            if isinstance(val, str):
                val = [val]
            if not isinstance(val, list) or not all(isinstance(x, str) and x in allowed
                                                    for x in val):
                raise bad('The value "%s" is invalid for field "%s" (valid values: %s).'
                          % (val, k, ", ".join(allowed)), E_INVALID_VALUE, k)
            rule[k] = list(val)
        rule["anonymous_user"] = str(b.get("anonymous_user", "65534"))
        rule["allow_suid"] = bool(b.get("allow_suid", True))
        rule["allow_device_creation"] = bool(b.get("allow_device_creation", True))
        rule["chown_mode"] = b.get("chown_mode", "restricted")
        rule["ntfs_unix_security"] = b.get("ntfs_unix_security", "fail")
        return rule

    def h_policies_post(self, req):
        s = self.store
        b = req.obj
        check_allowed(b, {"name", "svm", "rules"}, "export policy")
        with s.lock:
            if not b.get("name"):
                raise bad('"name" is a required field', E_REQUIRED, "name")
            svm = s.svm_by(b.get("svm"))
            if s.policy_named(svm["name"], b["name"]) is not None:
                raise OntapError(409, 'Duplicate export policy name "%s" in SVM "%s".'
                                 % (b["name"], svm["name"]), E_EXPORT_DUP, "name")
            rules = [self.build_rule(r, i + 1) for i, r in enumerate(b.get("rules") or [])]
            p = s._add_policy(b["name"], svm, rules)
            s.save()
            body = {}
            if (req.query.get("return_records") or [""])[0].lower() == "true":
                body = {"num_records": 1, "records": [copy.deepcopy(p)]}
            return Response(201, json=body)

    def h_policy_patch(self, req, pid):
        s = self.store
        b = req.obj
        check_allowed(b, {"name", "rules"}, "export policy")
        with s.lock:
            p = self.policy(pid)
            if "name" in b and b["name"] != p["name"]:
                if p["name"] == "default":
                    raise bad('The export policy "default" cannot be renamed.', E_EXPORT_DEFAULT,
                              "name")
                if s.policy_named(p["svm"]["name"], b["name"]) is not None:
                    raise OntapError(409, 'Duplicate export policy name "%s" in SVM "%s".'
                                     % (b["name"], p["svm"]["name"]), E_EXPORT_DUP, "name")
            rules = None
            if "rules" in b:
                rules = [self.build_rule(r, i + 1) for i, r in enumerate(b["rules"] or [])]
            if "name" in b and b["name"] != p["name"]:
                for v in s.volumes.values():
                    if v["svm"]["name"] == p["svm"]["name"] and \
                            get_path(v, "nas.export_policy.name") == p["name"]:
                        v["nas"]["export_policy"]["name"] = b["name"]
                p["name"] = b["name"]
            if rules is not None:
                p["rules"] = rules
            s.save()
            return Response(200, json={})

    def h_policy_delete(self, req, pid):
        s = self.store
        with s.lock:
            p = self.policy(pid)
            if p["name"] == "default":
                raise bad('The export policy "default" cannot be deleted.', E_EXPORT_DEFAULT,
                          "id")
            users = [v["name"] for v in s.volumes.values()
                     if v["svm"]["name"] == p["svm"]["name"] and
                     get_path(v, "nas.export_policy.name") == p["name"]]
            if users:
                raise bad('Cannot delete export policy "%s" in SVM "%s": it is in use by '
                          'volume "%s".' % (p["name"], p["svm"]["name"], users[0]),
                          E_EXPORT_IN_USE, "id")
            s.policies.pop(p["id"], None)
            s.save()
            return Response(200, json={})

    def h_rules_get(self, req, pid):
        with self.store.lock:
            p = self.policy(pid)
            recs = []
            for r in p["rules"]:
                r = dict(r, policy={"id": p["id"], "name": p["name"]})
                recs.append(r)
            return self.collection(req, recs, ("index",))

    def rule(self, p, idx):
        try:
            i = int(idx)
        except ValueError:
            raise not_found("index")
        r = next((x for x in p["rules"] if x["index"] == i), None)
        if r is None:
            raise not_found("index")
        return r

    def h_rule_get(self, req, pid, idx):
        with self.store.lock:
            p = self.policy(pid)
            return self.single(req, dict(self.rule(p, idx),
                                         policy={"id": p["id"], "name": p["name"]}), ("index",))

    def h_rules_post(self, req, pid):
        s = self.store
        with s.lock:
            p = self.policy(pid)
            b = dict(req.obj)
            b.pop("index", None)
            idx = max([r["index"] for r in p["rules"]] + [0]) + 1
            rule = self.build_rule(b, idx)
            p["rules"].append(rule)
            s.save()
            body = {}
            if (req.query.get("return_records") or [""])[0].lower() == "true":
                body = {"num_records": 1, "records": [copy.deepcopy(rule)]}
            return Response(201, json=body)

    def h_rule_patch(self, req, pid, idx):
        s = self.store
        with s.lock:
            p = self.policy(pid)
            r = self.rule(p, idx)
            b = req.obj
            check_allowed(b, self.RULE_FIELDS, "rule")
            merged = dict(r)
            merged.update(b)
            merged.pop("index", None)
            new = self.build_rule(merged, r["index"])
            ni = (req.query.get("new_index") or [None])[0]
            if ni is not None:
                try:
                    ni = int(ni)
                except ValueError:
                    raise bad('The value "%s" is invalid for field "new_index".' % ni,
                              E_INVALID_VALUE, "new_index")
                if ni < 1:
                    raise bad('Field "new_index" must be at least 1.', E_INVALID_VALUE,
                              "new_index")
                # ONTAP moves the rule and shifts the others.
                rest = [x for x in p["rules"] if x is not r]
                rest.sort(key=lambda x: x["index"])
                rest.insert(min(ni, len(rest) + 1) - 1, new)
                for i, x in enumerate(rest):
                    x["index"] = i + 1
                p["rules"] = rest
            else:
                r.clear()
                r.update(new)
            s.save()
            return Response(200, json={})

    def h_rule_delete(self, req, pid, idx):
        s = self.store
        with s.lock:
            p = self.policy(pid)
            r = self.rule(p, idx)
            p["rules"] = [x for x in p["rules"] if x is not r]
            s.save()
            return Response(200, json={})

    # SnapMirror -------------------------------------------------------------

    SM_KEYS = ("uuid",)

    def h_sm_policies_get(self, req):
        recs = [{"uuid": "5bd2e5b6-0000-11ea-8000-00000000%04d" % i, "name": n, "type": t,
                 "scope": "cluster"}
                for i, (n, t) in enumerate(sorted(SM_POLICIES.items()))]
        return self.collection(req, recs, ("uuid", "name"))

    def sm_view(self, r):
        """A relationship as GET shows it: lag_time computed now."""
        v = strip_internal(r)
        last = r.get("_fake_last_transfer")
        if last is not None and r["state"] != "uninitialized":
            v["lag_time"] = iso_duration(time.time() - last)
        return v

    def h_relationships_get(self, req):
        s = self.store
        with s.lock:
            recs = [self.sm_view(r) for r in s.relationships.values()]
            return self.collection(req, recs, self.SM_KEYS)

    def relationship(self, ruuid):
        r = self.store.relationships.get(ruuid)
        if r is None:
            raise not_found()
        return r

    def h_relationship_get(self, req, ruuid):
        with self.store.lock:
            return self.single(req, self.sm_view(self.relationship(ruuid)), self.SM_KEYS)

    @staticmethod
    def split_path(path, target):
        if not isinstance(path, str) or ":" not in path:
            raise bad('The value "%s" is invalid for field "%s": expected "svm:volume".'
                      % (path, target), E_INVALID_VALUE, target)
        svm, _, vol = path.partition(":")
        return svm, vol

    def h_relationships_post(self, req):
        s = self.store
        b = req.obj
        check_allowed(b, {"source", "destination", "create_destination", "policy", "state",
                          "transfer_schedule", "identity_preservation", "throttle",
                          "restore", "backoff_level"}, "relationship")
        with s.lock:
            src = get_path(b, "source.path")
            dst = get_path(b, "destination.path")
            if not src:
                raise bad('"source.path" is a required field', E_REQUIRED, "source.path")
            if not dst:
                raise bad('"destination.path" is a required field', E_REQUIRED,
                          "destination.path")
            ssvm, svol = self.split_path(src, "source.path")
            dsvm, dvol = self.split_path(dst, "destination.path")
            create = bool(get_path(b, "create_destination.enabled"))
            if create and s.version < (9, 7, 0):
                raise bad('Field "create_destination" requires ONTAP 9.7 or later.',
                          E_VERSION, "create_destination")
            throttle = self.check_throttle(b)
            policy = get_path(b, "policy.name") or "MirrorAllSnapshots"
            if policy not in SM_POLICIES:
                raise bad('SnapMirror policy "%s" does not exist.' % policy, E_SM_POLICY,
                          "policy.name")
            want = b.get("state")
            if want not in (None, "snapmirrored", "uninitialized", "in_sync"):
                raise bad('The value "%s" is invalid for field "state" on create '
                          '(snapmirrored, in_sync or uninitialized).' % want, E_INVALID_VALUE,
                          "state")
            if want == "in_sync" and SM_POLICIES[policy] != "sync":
                raise bad('State "in_sync" requires a synchronous policy.', E_INVALID_VALUE,
                          "state")
            for sv, target in ((ssvm, "source.path"), (dsvm, "destination.path")):
                if s.svm_named(sv) is None:
                    raise bad('SVM "%s" does not exist.' % sv, E_SVM_NOT_FOUND, target)
            ruuid = new_uuid()

            def op(commit):
                if s.relationship_for_dest(dst) is not None:
                    raise OntapError(409, 'Relationship with destination "%s" already exists.'
                                     % dst, E_SM_DUP, "destination.path")
                sv = s.volume_named(ssvm, svol)
                if sv is None:
                    raise bad('Source volume "%s" does not exist.' % src, E_SM_NOT_FOUND_VOL,
                              "source.path")
                dv = s.volume_named(dsvm, dvol)
                if create and dv is not None:
                    raise OntapError(409, 'Cannot create destination volume "%s": a volume '
                                     'with that name already exists.' % dst,
                                     E_DUPLICATE_VOLUME, "destination.path")
                if not create and dv is None:
                    raise bad('Destination volume "%s" does not exist. Create a volume of '
                              'type "dp" or set "create_destination.enabled".' % dst,
                              E_SM_NOT_FOUND_VOL, "destination.path")
                if not create and dv["type"] != "dp":
                    raise bad('Destination volume "%s" must be a data protection (type "dp") '
                              'volume.' % dst, E_SM_NOT_DP, "destination.path")
                if not create and dv is not None:
                    self.check_volume_name(dvol)
                if not commit:
                    return
                if create:
                    svmrec = s.svm_named(dsvm)
                    aggrs = sorted(s.aggregates.values(), key=lambda a: a["name"])
                    aggr = aggrs[-1] if dsvm != ssvm else aggrs[0]
                    nb = {"name": dvol, "type": "dp", "guarantee": {"type": "none"},
                          "snapshot_policy": {"name": "none"}}
                    if get_path(b, "create_destination.tiering.policy"):
                        nb["tiering"] = {"policy": get_path(b, "create_destination.tiering.policy")}
                    dv = self.build_volume(nb, new_uuid(), svmrec,
                                           [aggr] if sv["style"] == "flexvol" else
                                           [s.aggregates[a["uuid"]] for a in sv["aggregates"]],
                                           sv["style"], sv["size"], None)
                    dv["create_time"] = now_iso()
                    s.volumes[dv["uuid"]] = dv
                    s.snapshots[dv["uuid"]] = {}
                    s.refresh_space(dv)
                r = {"uuid": ruuid,
                     "source": {"path": src, "svm": {"name": ssvm, "uuid": sv["svm"]["uuid"]}},
                     "destination": {"path": dst, "svm": {"name": dsvm,
                                                          "uuid": dv["svm"]["uuid"]}},
                     "policy": {"name": policy, "type": SM_POLICIES[policy]},
                     "state": "uninitialized", "healthy": True,
                     "exported_snapshot": None}
                r.pop("exported_snapshot")
                if get_path(b, "transfer_schedule.name"):
                    r["transfer_schedule"] = {"name": get_path(b, "transfer_schedule.name")}
                if b.get("identity_preservation"):
                    r["identity_preservation"] = b["identity_preservation"]
                r["throttle"] = throttle if throttle is not None else 0
                s.relationships[ruuid] = r
                s.transfers[ruuid] = {}
                if want in ("snapmirrored", "in_sync"):
                    self.start_transfer(r, "initialize", final=want)
            op(False)
        return self.run_async(req, op, 201, created={"uuid": ruuid})

    def start_transfer(self, r, kind, final="snapmirrored"):
        """A transfer: the relationship shows transfer.state transferring
        for transfer_time seconds (config), then success; the source gets a
        snapmirror snapshot, the destination a copy of the source's
        snapshots. Called under the lock."""
        s = self.store
        t = {"uuid": new_uuid(), "state": "transferring",
             "relationship": {"uuid": r["uuid"], "destination": {"path": r["destination"]["path"]}},
             "bytes_transferred": 0, "_fake_kind": kind}
        s.transfers.setdefault(r["uuid"], {})[t["uuid"]] = t
        r["transfer"] = {"uuid": t["uuid"], "state": "transferring", "bytes_transferred": 0}
        r["_fake_final"] = final
        delay = float(s.config.get("transfer_time") or 0)
        if delay <= 0:
            self.complete_transfer(r["uuid"], t["uuid"])
        else:
            def later():
                time.sleep(delay)
                with s.lock:
                    self.complete_transfer(r["uuid"], t["uuid"])
                    s.save()
            threading.Thread(target=later, daemon=True).start()
        return t

    def complete_transfer(self, ruuid, tuuid):
        s = self.store
        r = s.relationships.get(ruuid)
        t = s.transfers.get(ruuid, {}).get(tuuid)
        if r is None or t is None or t["state"] != "transferring":
            return
        ssvm, svol = r["source"]["path"].split(":", 1)
        dsvm, dvol = r["destination"]["path"].split(":", 1)
        sv, dv = s.volume_named(ssvm, svol), s.volume_named(dsvm, dvol)
        if sv is None or dv is None:
            t["state"] = "failed"
            r["transfer"] = {"uuid": tuuid, "state": "failed"}
            r["healthy"] = False
            r["unhealthy_reason"] = [{"message": "Transfer failed: %s volume not found."
                                      % ("source" if sv is None else "destination"),
                                      "code": "13303892"}]
            return
        now = time.time()
        snaps = s.snapshots.setdefault(sv["uuid"], {})
        for k in [k for k, x in snaps.items() if x["name"].startswith("snapmirror.%s_" % ruuid)]:
            snaps.pop(k)
        smname = "snapmirror.%s_%d.%s" % (ruuid, 2147484000 + len(s.transfers[ruuid]),
                                          datetime.now(timezone.utc).strftime("%Y-%m-%d_%H%M%S"))
        self.make_snapshot(sv, smname, {})
        dsnaps = s.snapshots.setdefault(dv["uuid"], {})
        dsnaps.clear()
        for x in snaps.values():
            c = copy.deepcopy(x)
            c["uuid"] = new_uuid()
            c["volume"] = {"name": dv["name"], "uuid": dv["uuid"]}
            c["svm"] = dict(dv["svm"])
            dsnaps[c["uuid"]] = c
        dv["snapshot_count"] = len(dsnaps)
        dv["type"] = "dp"
        t["state"] = "success"
        t["bytes_transferred"] = sv["space"].get("used", 0)
        t["end_time"] = now_iso(now)
        t["snapshot"] = smname
        r["transfer"] = {"uuid": tuuid, "state": "success",
                         "bytes_transferred": t["bytes_transferred"], "end_time": t["end_time"]}
        r["exported_snapshot"] = smname
        r["last_transfer_type"] = t["_fake_kind"]
        r["_fake_last_transfer"] = now
        r["healthy"] = True
        r.pop("unhealthy_reason", None)
        if r["state"] in ("uninitialized", "broken_off"):
            r["state"] = r.get("_fake_final", "snapmirrored")

    def check_throttle(self, b):
        """The relationship's throttle (KB/s, 0: unlimited): aicp gates it
        at 9.8, and so does the fake. None when the body has none."""
        if "throttle" not in b:
            return None
        if self.store.version < (9, 8, 0):
            raise bad('Field "throttle" requires ONTAP 9.8 or later.', E_VERSION, "throttle")
        t = b["throttle"]
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise bad('The value "%s" is invalid for field "throttle".' % (t,), E_INVALID_VALUE,
                      "throttle")
        return t

    def h_relationship_patch(self, req, ruuid):
        s = self.store
        b = req.obj
        check_allowed(b, {"state", "policy", "transfer_schedule", "throttle", "backoff_level"},
                      "relationship")
        throttle = self.check_throttle(b)
        with s.lock:
            self.relationship(ruuid)
            want = b.get("state")
            if want is not None and want not in ("snapmirrored", "paused", "broken_off",
                                                 "in_sync", "uninitialized"):
                raise bad('The value "%s" is invalid for field "state" (snapmirrored, paused, '
                          'broken_off, in_sync).' % want, E_INVALID_VALUE, "state")
            if get_path(b, "policy.name") and get_path(b, "policy.name") not in SM_POLICIES:
                raise bad('SnapMirror policy "%s" does not exist.' % get_path(b, "policy.name"),
                          E_SM_POLICY, "policy.name")

            def op(commit):
                r = self.relationship(ruuid)
                cur = r["state"]
                transferring = get_path(r, "transfer.state") == "transferring"
                action = None
                if want is not None and want != cur:
                    action = self.sm_transition(r, cur, want, transferring)
                if not commit:
                    return
                if get_path(b, "policy.name"):
                    r["policy"] = {"name": b["policy"]["name"],
                                   "type": SM_POLICIES[b["policy"]["name"]]}
                if throttle is not None:
                    r["throttle"] = throttle
                if "transfer_schedule" in b:
                    if get_path(b, "transfer_schedule.name"):
                        r["transfer_schedule"] = {"name": b["transfer_schedule"]["name"]}
                    else:
                        r.pop("transfer_schedule", None)
                if action == "initialize":
                    self.start_transfer(r, "initialize", final=want)
                elif action == "resync":
                    dsvm, dvol = r["destination"]["path"].split(":", 1)
                    dv = s.volume_named(dsvm, dvol)
                    if dv is not None:
                        dv["type"] = "dp"
                    r["state"] = "broken_off"
                    self.start_transfer(r, "resync", final=want)
                elif action == "resume":
                    r["state"] = want
                elif action == "quiesce":
                    r["state"] = "paused"
                elif action == "break":
                    r["state"] = "broken_off"
                    dsvm, dvol = r["destination"]["path"].split(":", 1)
                    dv = s.volume_named(dsvm, dvol)
                    if dv is not None:
                        dv["type"] = "rw"
            op(False)
        return self.run_async(req, op, 200)

    def sm_transition(self, r, cur, want, transferring):
        """ONTAP's state machine at the destination: the action for cur ->
        want, or an error."""
        def refuse(why):
            raise bad('Cannot change the state of relationship "%s" from "%s" to "%s": %s'
                      % (r["destination"]["path"], cur, want, why), E_SM_TRANSITION, "state")
        if want == "uninitialized":
            refuse("a relationship cannot be set back to uninitialized.")
        if cur == "uninitialized":
            if want in ("snapmirrored", "in_sync"):
                return "initialize"
            refuse("the relationship is not initialized.")
        if cur in ("snapmirrored", "in_sync"):
            if want == "paused":
                return "quiesce"
            if want == "broken_off":
                if transferring:
                    raise bad('Cannot break relationship "%s": a transfer is in progress. '
                              'Quiesce it or wait for the transfer to finish.'
                              % r["destination"]["path"], E_SM_TRANSFERRING, "state")
                return "break"
            refuse("use a transfer to update the relationship.")
        if cur == "paused":
            if want in ("snapmirrored", "in_sync"):
                return "resume"
            if want == "broken_off":
                return "break"
        if cur == "broken_off":
            if want in ("snapmirrored", "in_sync"):
                return "resync"
            refuse("a broken-off relationship can only be resynchronized.")
        refuse("unsupported transition.")
        return None

    def h_relationship_delete(self, req, ruuid):
        s = self.store
        with s.lock:
            self.relationship(ruuid)
            source_only = (req.query.get("source_only") or [""])[0].lower() == "true"

            def op(commit):
                r = self.relationship(ruuid)
                if source_only:
                    # Release at the source: the relationship stays at the
                    # destination; the source's snapmirror snapshots go.
                    if commit:
                        r["_fake_released"] = True
                        self.drop_sm_snapshots(r)
                    return
                if get_path(r, "transfer.state") == "transferring":
                    raise bad('Cannot delete relationship "%s": a transfer is in progress.'
                              % r["destination"]["path"], E_SM_TRANSFERRING, "uuid")
                if r["state"] in ("snapmirrored", "in_sync"):
                    raise bad('Cannot delete relationship "%s" in state "%s": quiesce and break '
                              'it first.' % (r["destination"]["path"], r["state"]),
                              E_SM_TRANSITION, "uuid")
                if commit:
                    # DELETE at the destination also releases at the source.
                    self.drop_sm_snapshots(r)
                    s.relationships.pop(ruuid, None)
                    s.transfers.pop(ruuid, None)
            op(False)
        return self.run_async(req, op, 200)

    def drop_sm_snapshots(self, r):
        s = self.store
        ssvm, svol = r["source"]["path"].split(":", 1)
        sv = s.volume_named(ssvm, svol)
        if sv is None:
            return
        snaps = s.snapshots.get(sv["uuid"], {})
        for k in [k for k, x in snaps.items()
                  if x["name"].startswith("snapmirror.%s_" % r["uuid"])]:
            snaps.pop(k)
        sv["snapshot_count"] = len(snaps)

    def h_transfers_get(self, req, ruuid):
        s = self.store
        with s.lock:
            self.relationship(ruuid)
            return self.collection(req, list(s.transfers.get(ruuid, {}).values()), ("uuid",))

    def h_transfer_get(self, req, ruuid, tuuid):
        s = self.store
        with s.lock:
            self.relationship(ruuid)
            t = s.transfers.get(ruuid, {}).get(tuuid)
            if t is None:
                raise not_found()
            return self.single(req, t, ("uuid",))

    def h_transfers_post(self, req, ruuid):
        """An update (or initialize, for an uninitialized relationship)."""
        s = self.store
        check_allowed(req.obj, {"source_snapshot", "storage_efficiency_enabled", "throttle",
                                "files"}, "transfer")
        with s.lock:
            r = self.relationship(ruuid)
            if get_path(r, "transfer.state") == "transferring":
                raise OntapError(409, 'Another transfer is in progress for relationship "%s".'
                                 % r["destination"]["path"], E_SM_TRANSFERRING, "uuid")
            if r["state"] == "paused":
                raise bad('Relationship "%s" is quiesced: resume it (PATCH state '
                          '"snapmirrored") before a transfer.' % r["destination"]["path"],
                          E_SM_TRANSITION, "uuid")
            if r["state"] == "broken_off":
                raise bad('Relationship "%s" is broken off: resync it (PATCH state '
                          '"snapmirrored") before a transfer.' % r["destination"]["path"],
                          E_SM_TRANSITION, "uuid")
            kind = "initialize" if r["state"] == "uninitialized" else "update"
            t = self.start_transfer(r, kind)
            s.save()
            body = {}
            if (req.query.get("return_records") or [""])[0].lower() == "true":
                body = {"num_records": 1, "records": [strip_internal(t)]}
            return Response(201, json=body)

    def h_transfer_patch(self, req, ruuid, tuuid):
        s = self.store
        b = req.obj
        check_allowed(b, {"state"}, "transfer")
        with s.lock:
            r = self.relationship(ruuid)
            t = s.transfers.get(ruuid, {}).get(tuuid)
            if t is None:
                raise not_found()
            if b.get("state") not in ("aborted", "hard_aborted"):
                raise bad('The value "%s" is invalid for field "state" (aborted, hard_aborted).'
                          % b.get("state"), E_INVALID_VALUE, "state")
            if t["state"] == "transferring":
                t["state"] = "aborted"
                r["transfer"] = {"uuid": tuuid, "state": "aborted"}
            s.save()
            return Response(200, json={})


def read_users(path):
    users = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            user, sep, pw = line.partition(":")
            if not sep or not user:
                raise ValueError("a line of the users file is not username:password")
            users[user] = pw
    if not users:
        raise ValueError("the users file has no users")
    return users


def parse_version(s):
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", s)
    if not m:
        raise argparse.ArgumentTypeError("version must look like 9.8.0")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="server key (PEM)")
    ap.add_argument("--users-file", required=True,
                    help="file of username:password lines; every /api request needs one")
    ap.add_argument("--version", type=parse_version, default=(9, 8, 0),
                    help="the ONTAP version the cluster reports (default 9.8.0)")
    ap.add_argument("--state", help="keep the objects in this JSON file across restarts")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)
    try:
        users = read_users(args.users_file)
    except (OSError, ValueError) as e:
        # Say what is wrong, never the file's content.
        sys.stderr.write("ontap_server: %s: %s\n" % (args.users_file, e))
        return 2
    srv = OntapFake(args.cert, args.key, users, version=args.version, state=args.state,
                    verbose=args.verbose)

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
    sys.stdout.write("PORT %d\nURL https://127.0.0.1:%d\n" % (srv.port, srv.port))
    sys.stdout.flush()
    srv.serve()
    srv.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
