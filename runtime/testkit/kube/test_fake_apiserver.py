"""Self-test of fake_apiserver.py, with the official `kubernetes` Python client as
the client, so the wire format is checked by code nobody here wrote.

Run: .venv/bin/python runtime/testkit/kube/test_fake_apiserver.py
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fake_apiserver  # noqa: E402  (in-process use for the load and history tests)

AIG, AIG_V1, AIG_V2 = "aigateway.envoyproxy.io", "v1alpha1", "v1beta1"
APPLY = "application/apply-patch+yaml"


def start_server(*extra):
    """Start the server as a subprocess through its command line; returns (proc, port)."""
    tmp = tempfile.mkdtemp()
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_apiserver.py"), "--port", "0",
                             "--port-file", port_file, *extra], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        assert proc.poll() is None, "fake apiserver exited early"
        assert time.monotonic() < deadline, "no port file"
        time.sleep(0.02)
    with open(port_file) as f:
        return proc, int(f.read())


def route(name, conditions=None, **spec):
    body = {"apiVersion": f"{AIG}/{AIG_V1}", "kind": "AIGatewayRoute",
            "metadata": {"name": name, "labels": {"app": "gw"}}, "spec": spec or {"rules": []}}
    if conditions is not None:
        body["status"] = {"conditions": conditions}
    return body


def cond(t, status, reason="R"):
    return {"type": t, "status": status, "reason": reason, "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}


class FakeApiServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port = start_server("--bookmark-interval", "0.3")
        cls.base = f"http://127.0.0.1:{cls.port}"
        cfg = client.Configuration(host=cls.base)
        cls.api = client.ApiClient(cfg)
        cls.core = client.CoreV1Api(cls.api)
        cls.coord = client.CoordinationV1Api(cls.api)
        cls.custom = client.CustomObjectsApi(cls.api)

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.kill()
            cls.proc.wait()

    # -- helpers --------------------------------------------------------------
    def hook(self, method, path):
        req = urllib.request.Request(self.base + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def raw(self, method, path, body=None, ctype="application/json"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        conn.request(method, path, body=data, headers={"Content-Type": ctype} if data is not None else {})
        r = conn.getresponse()
        data = r.read()
        out = (r.status, r.getheader("Content-Type"), json.loads(data) if "json" in r.getheader("Content-Type") else data)
        conn.close()
        return out

    def current_rv(self):
        return int(self.core.list_namespaced_config_map("nothing-here").metadata.resource_version)

    def apply_status(self, ns, name, conditions, manager):
        body = route(name, conditions)
        return self.custom.patch_namespaced_custom_object_status(
            AIG, AIG_V1, ns, "aigatewayroutes", name, body, field_manager=manager, force=True,
            _content_type=APPLY)

    # -- tests ----------------------------------------------------------------
    def test_version_and_discovery(self):
        v = client.VersionApi(self.api).get_code()
        self.assertEqual((v.major, v.minor, v.git_version), ("1", "34", "v1.34.0"))
        groups = {g.name: g for g in client.ApisApi(self.api).get_api_versions().groups}
        self.assertIn("gateway.networking.k8s.io", groups)
        self.assertEqual(groups["gateway.networking.k8s.io"].preferred_version.version, "v1")
        self.assertEqual(groups[AIG].preferred_version.version, "v1beta1")
        res = {r.name: r for r in self.custom.get_api_resources("gateway.networking.k8s.io", "v1").resources}
        self.assertFalse(res["gatewayclasses"].namespaced)
        self.assertIn("httproutes/status", res)
        self.assertEqual(client.CoreApi(self.api).get_api_versions().versions, ["v1"])

    def test_create_crd_object_and_versions(self):
        created = self.custom.create_namespaced_custom_object(
            AIG, AIG_V1, "crd", "aigatewayroutes", route("r1", [cond("Accepted", "True")]))
        meta = created["metadata"]
        self.assertEqual(meta["namespace"], "crd")
        self.assertEqual(meta["generation"], 1)
        self.assertRegex(meta["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(len(meta["uid"]), 36)
        self.assertNotIn("status", created, "status is only written through /status")
        self.assertEqual(meta["managedFields"][0]["operation"], "Update")
        # Served under every version of the group, with apiVersion rewritten.
        other = self.custom.get_namespaced_custom_object(AIG, AIG_V2, "crd", "aigatewayroutes", "r1")
        self.assertEqual(other["apiVersion"], f"{AIG}/{AIG_V2}")
        self.assertEqual(other["metadata"]["uid"], meta["uid"])
        with self.assertRaises(ApiException) as e:
            self.custom.create_namespaced_custom_object(AIG, AIG_V1, "crd", "aigatewayroutes", route("r1"))
        self.assertEqual(e.exception.status, 409)
        self.assertEqual(json.loads(e.exception.body)["reason"], "AlreadyExists")
        gen = self.custom.create_namespaced_custom_object(
            AIG, AIG_V1, "crd", "aigatewayroutes", {**route(""), "metadata": {"generateName": "r-"}})
        self.assertRegex(gen["metadata"]["name"], r"^r-[a-z0-9]{5}$")
        # Cluster-scoped kinds.
        gc = self.custom.create_cluster_custom_object("gateway.networking.k8s.io", "v1", "gatewayclasses", {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "aigw"}, "spec": {"controllerName": "aigw.dev/controller"}})
        self.assertNotIn("namespace", gc["metadata"])
        ns = self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="made")))
        self.assertEqual(ns.status.phase, "Active")
        with self.assertRaises(ApiException) as e:
            self.custom.get_namespaced_custom_object(AIG, AIG_V1, "crd", "aigatewayroutes", "missing")
        self.assertEqual(e.exception.status, 404)
        self.assertEqual(json.loads(e.exception.body)["message"], 'aigatewayroutes.aigateway.envoyproxy.io "missing" not found')

    def test_secret_and_lease_conflict(self):
        s = self.core.create_namespaced_secret("core", client.V1Secret(
            metadata=client.V1ObjectMeta(name="token"), string_data=None, data={"k": "dmFsdWU="}))
        self.assertEqual(s.data, {"k": "dmFsdWU="})
        self.assertEqual(self.core.read_namespaced_secret("token", "core").metadata.uid, s.metadata.uid)
        lease = self.coord.create_namespaced_lease("core", client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15)))
        stale = lease.metadata.resource_version
        lease.spec.holder_identity = "b"
        renewed = self.coord.replace_namespaced_lease("leader", "core", lease)
        self.assertGreater(int(renewed.metadata.resource_version), int(stale))
        lease.spec.holder_identity = "c"
        lease.metadata.resource_version = stale
        with self.assertRaises(ApiException) as e:
            self.coord.replace_namespaced_lease("leader", "core", lease)
        self.assertEqual(e.exception.status, 409)
        status = json.loads(e.exception.body)
        self.assertEqual(status["reason"], "Conflict")
        self.assertEqual(status["kind"], "Status")
        self.assertEqual(status["message"], 'Operation cannot be fulfilled on leases.coordination.k8s.io "leader": '
                         "the object has been modified; please apply your changes to the latest version and try again")
        self.assertEqual(self.coord.read_namespaced_lease("leader", "core").spec.holder_identity, "b")
        deleted = self.core.delete_namespaced_secret("token", "core")  # the client types this as `object`
        self.assertEqual((deleted["kind"], deleted["status"]), ("Status", "Success"))

    def test_list_pagination_and_selectors(self):
        for i in range(5):
            self.core.create_namespaced_config_map("page", client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"cm{i}", labels={"idx": str(i), "even": str(i % 2 == 0)})))
        first = self.core.list_namespaced_config_map("page", limit=2)
        self.assertEqual([c.metadata.name for c in first.items], ["cm0", "cm1"])
        self.assertTrue(first.metadata._continue)
        self.assertEqual(first.metadata.remaining_item_count, 3)
        # Writes after the first page do not show up in the remaining pages.
        self.core.create_namespaced_config_map("page", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm00")))
        self.core.delete_namespaced_config_map("cm4", "page")
        names, token = [], first.metadata._continue
        while token:
            page = self.core.list_namespaced_config_map("page", limit=2, _continue=token)
            self.assertEqual(page.metadata.resource_version, first.metadata.resource_version)
            names += [c.metadata.name for c in page.items]
            token = page.metadata._continue
        self.assertEqual(names, ["cm2", "cm3", "cm4"])
        now = self.core.list_namespaced_config_map("page")
        self.assertEqual([c.metadata.name for c in now.items], ["cm0", "cm00", "cm1", "cm2", "cm3"])
        sel = lambda **kw: [c.metadata.name for c in self.core.list_namespaced_config_map("page", **kw).items]
        self.assertEqual(sel(label_selector="even=True"), ["cm0", "cm2"])
        self.assertEqual(sel(label_selector="even!=True,idx"), ["cm1", "cm3"])
        self.assertEqual(sel(label_selector="idx in (1,3),even"), ["cm1", "cm3"])
        self.assertEqual(sel(label_selector="!idx"), ["cm00"])
        self.assertEqual(sel(field_selector="metadata.name=cm3"), ["cm3"])
        all_ns = self.core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=page")
        self.assertEqual(len(all_ns.items), 5)
        with self.assertRaises(ApiException) as e:
            self.core.list_namespaced_config_map("page", limit=2, _continue="bm90IGEgdG9rZW4=")
        self.assertEqual(e.exception.status, 400)

    def test_watch_from_resource_version(self):
        rv = self.current_rv()
        events = []

        def run():
            for ev in watch.Watch().stream(self.custom.list_namespaced_custom_object, AIG, AIG_V1, "w",
                                           "aigatewayroutes", resource_version=str(rv), timeout_seconds=5):
                events.append(ev)
                if ev["type"] == "DELETED":
                    break
        t = threading.Thread(target=run)
        t.start()
        self.custom.create_namespaced_custom_object(AIG, AIG_V1, "w", "aigatewayroutes", route("x"))
        self.custom.create_namespaced_custom_object(AIG, AIG_V1, "other", "aigatewayroutes", route("x"))
        self.custom.patch_namespaced_custom_object(AIG, AIG_V1, "w", "aigatewayroutes", "x",
                                                   {"spec": {"rules": [{"a": 1}]}})
        self.custom.delete_namespaced_custom_object(AIG, AIG_V1, "w", "aigatewayroutes", "x")
        t.join(10)
        self.assertEqual([e["type"] for e in events], ["ADDED", "MODIFIED", "DELETED"])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        self.assertEqual(rvs, sorted(rvs))
        self.assertGreater(rvs[0], rv)
        self.assertEqual(events[1]["object"]["metadata"]["generation"], 2)
        # Resuming from the ADDED event's rv replays only what came after it.
        replay = list(watch.Watch().stream(self.custom.list_namespaced_custom_object, AIG, AIG_V1, "w",
                                           "aigatewayroutes", resource_version=str(rvs[0]), timeout_seconds=1))
        self.assertEqual([e["type"] for e in replay], ["MODIFIED", "DELETED"])

    def test_watch_after_compaction_is_gone(self):
        rv = self.current_rv()
        self.core.create_namespaced_config_map("gone", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a")))
        self.hook("POST", "/fake/compact")
        # With timeout_seconds the client does not retry: it raises the ERROR event as ApiException 410.
        with self.assertRaises(ApiException) as e:
            list(watch.Watch().stream(self.core.list_namespaced_config_map, "gone", resource_version=str(rv),
                                      timeout_seconds=2))
        self.assertEqual(e.exception.status, 410)
        self.assertIn("too old resource version", e.exception.reason)
        # The raw stream: HTTP 200 with one ERROR event carrying a Status 410 Expired, then the end.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", f"/api/v1/namespaces/gone/configmaps?watch=true&resourceVersion={rv}")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        lines = r.read().decode().splitlines()
        self.assertEqual(len(lines), 1)
        ev = json.loads(lines[0])
        self.assertEqual(ev["type"], "ERROR")
        self.assertEqual((ev["object"]["code"], ev["object"]["reason"]), (410, "Expired"))
        conn.close()
        # A fresh list gives an rv that can be watched from.
        fresh = self.core.list_namespaced_config_map("gone").metadata.resource_version
        self.core.create_namespaced_config_map("gone", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="b")))
        got = list(watch.Watch().stream(self.core.list_namespaced_config_map, "gone", resource_version=fresh,
                                        timeout_seconds=1))
        self.assertEqual([(e["type"], e["object"].metadata.name) for e in got], [("ADDED", "b")])

    def test_server_side_apply_status(self):
        self.custom.create_namespaced_custom_object(AIG, AIG_V1, "ssa", "aigatewayroutes", route("s"))
        a = self.apply_status("ssa", "s", [cond("Accepted", "True")], "ctl")
        b = self.apply_status("ssa", "s", [cond("ResolvedRefs", "True")], "other")
        self.assertEqual([c["type"] for c in b["status"]["conditions"]], ["Accepted", "ResolvedRefs"])
        c = self.apply_status("ssa", "s", [cond("Accepted", "False", "Broken")], "ctl")
        self.assertEqual([(x["type"], x["status"]) for x in c["status"]["conditions"]],
                         [("Accepted", "False"), ("ResolvedRefs", "True")])
        self.assertEqual(c["metadata"]["generation"], 1, "status writes never bump generation")
        self.assertEqual(c["spec"], {"rules": []})
        entries = {(m["manager"], m["operation"], m.get("subresource")) for m in c["metadata"]["managedFields"]}
        self.assertIn(("ctl", "Apply", "status"), entries)
        self.assertIn(("other", "Apply", "status"), entries)
        ctl = next(m for m in c["metadata"]["managedFields"] if m["manager"] == "ctl")
        self.assertIn('k:{"type":"Accepted"}', ctl["fieldsV1"]["f:status"]["f:conditions"])
        self.assertGreater(int(c["metadata"]["resourceVersion"]), int(a["metadata"]["resourceVersion"]))
        # An identical apply is a no-op: no new resourceVersion.
        again = self.apply_status("ssa", "s", [cond("Accepted", "False", "Broken")], "ctl")
        self.assertEqual(again["metadata"]["resourceVersion"], c["metadata"]["resourceVersion"])
        # A manager that stops applying a condition it owned loses it; others keep theirs.
        d = self.apply_status("ssa", "s", [], "ctl")
        self.assertEqual([x["type"] for x in d["status"]["conditions"]], ["ResolvedRefs"])
        # A YAML body through the raw client (what kubectl sends).
        params = self.api.param_serialize(
            "PATCH", "/apis/{g}/{v}/namespaces/ssa/aigatewayroutes/s/status", path_params={"g": AIG, "v": AIG_V2},
            query_params=[("fieldManager", "yaml-mgr")], header_params={"Content-Type": APPLY},
            body=f"apiVersion: {AIG}/{AIG_V2}\nkind: AIGatewayRoute\nmetadata:\n  name: s\nstatus:\n"
                 "  conditions:\n  - type: Extra\n    status: 'True'\n    lastTransitionTime: 2025-01-01T00:00:00Z\n")
        resp = self.api.call_api(*params)
        resp.read()
        self.assertEqual(resp.status, 200)
        obj = json.loads(resp.data)
        self.assertEqual(obj["apiVersion"], f"{AIG}/{AIG_V2}")
        extra = [x for x in obj["status"]["conditions"] if x["type"] == "Extra"][0]
        self.assertEqual(extra["lastTransitionTime"], "2025-01-01T00:00:00Z")
        # Status apply on a missing object is 404; apply without fieldManager is 400.
        with self.assertRaises(ApiException) as e:
            self.apply_status("ssa", "nope", [cond("Accepted", "True")], "ctl")
        self.assertEqual(e.exception.status, 404)
        with self.assertRaises(ApiException) as e:
            self.custom.patch_namespaced_custom_object(AIG, AIG_V1, "ssa", "aigatewayroutes", "s", route("s"),
                                                       _content_type=APPLY)
        self.assertEqual(e.exception.status, 400)

    def test_apply_creates_and_generation(self):
        patch = lambda body, **kw: self.custom.patch_namespaced_custom_object(
            AIG, AIG_V1, "gen", "aigatewayroutes", "g", body, **kw)
        # An apply that creates answers 201 Created, which this client's CRD patch
        # methods map to None (their OpenAPI lists only 200), so use the raw call.
        resp = self.api.call_api(*self.api.param_serialize(
            "PATCH", f"/apis/{AIG}/{AIG_V1}/namespaces/gen/aigatewayroutes/g",
            query_params=[("fieldManager", "ctl")], header_params={"Content-Type": APPLY},
            body=route("g", rules=[{"x": 1}])))
        resp.read()
        self.assertEqual(resp.status, 201)
        created = json.loads(resp.data)
        self.assertEqual(created["metadata"]["generation"], 1)
        same = patch(route("g", rules=[{"x": 1}]), field_manager="ctl", _content_type=APPLY)
        self.assertEqual(same["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"])
        changed = patch({"spec": {"rules": [{"x": 2}]}})  # merge patch
        self.assertEqual(changed["metadata"]["generation"], 2)
        labelled = patch({"metadata": {"labels": {"new": "1"}}})
        self.assertEqual(labelled["metadata"]["generation"], 2, "metadata changes do not bump generation")
        ignored = patch({"status": {"conditions": [cond("Accepted", "True")]}})
        self.assertNotIn("status", ignored, "the main resource ignores .status")
        self.assertEqual(ignored["metadata"]["resourceVersion"], labelled["metadata"]["resourceVersion"])
        jp = patch([{"op": "test", "path": "/spec/rules/0/x", "value": 2},
                    {"op": "add", "path": "/spec/rules/-", "value": {"x": 3}}],
                   _content_type="application/json-patch+json")
        self.assertEqual(jp["spec"]["rules"], [{"x": 2}, {"x": 3}])
        self.assertEqual(jp["metadata"]["generation"], 3)
        with self.assertRaises(ApiException) as e:
            patch([{"op": "test", "path": "/spec/rules/0/x", "value": 99}], _content_type="application/json-patch+json")
        self.assertEqual(e.exception.status, 422)
        st = self.custom.replace_namespaced_custom_object_status(AIG, AIG_V1, "gen", "aigatewayroutes", "g", {
            **jp, "spec": {"ignored": True}, "status": {"conditions": [cond("Accepted", "True")]}})
        self.assertEqual(st["spec"]["rules"], [{"x": 2}, {"x": 3}])
        self.assertEqual(st["status"]["conditions"][0]["type"], "Accepted")
        self.assertEqual(st["metadata"]["generation"], 3)

    def test_finalizers_delay_deletion(self):
        self.core.create_namespaced_config_map("fin", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="f", finalizers=["aigw.dev/cleanup"])))
        self.core.delete_namespaced_config_map("f", "fin")
        pending = self.core.read_namespaced_config_map("f", "fin")
        self.assertIsNotNone(pending.metadata.deletion_timestamp)
        self.core.patch_namespaced_config_map("f", "fin", {"metadata": {"finalizers": None}})
        with self.assertRaises(ApiException) as e:
            self.core.read_namespaced_config_map("f", "fin")
        self.assertEqual(e.exception.status, 404)

    def test_bookmarks(self):
        rv = self.current_rv()
        events = list(watch.Watch().stream(self.core.list_namespaced_config_map, "bm", resource_version=str(rv),
                                           allow_watch_bookmarks=True, timeout_seconds=1))
        bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
        self.assertGreaterEqual(len(bookmarks), 2)
        obj = bookmarks[0]["raw_object"]
        self.assertEqual((obj["kind"], obj["apiVersion"]), ("ConfigMap", "v1"))
        self.assertGreaterEqual(int(obj["metadata"]["resourceVersion"]), rv)

    def test_send_initial_events(self):
        for n in ("i1", "i2"):
            self.core.create_namespaced_config_map("init", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=n)))
        rv = self.current_rv()
        events = []
        for e in watch.Watch().stream(self.core.list_namespaced_config_map, "init", send_initial_events=True,
                                      resource_version_match="NotOlderThan", allow_watch_bookmarks=True,
                                      timeout_seconds=5):
            events.append(e)
            if e["type"] == "BOOKMARK":
                break
        self.assertEqual([e["type"] for e in events], ["ADDED", "ADDED", "BOOKMARK"])
        meta = events[-1]["raw_object"]["metadata"]
        self.assertEqual(meta["annotations"], {"k8s.io/initial-events-end": "true"})
        self.assertEqual(int(meta["resourceVersion"]), rv)

    def test_requests_log_and_stats(self):
        self.hook("POST", "/fake/requests/clear")
        stats = self.hook("GET", "/fake/stats")
        self.custom.create_namespaced_custom_object(AIG, AIG_V1, "log", "aigatewayroutes", route("l"))
        self.apply_status("log", "l", [cond("Accepted", "True")], "ctl")
        self.core.list_namespaced_config_map("log")
        reqs = self.hook("GET", "/fake/requests")
        self.assertEqual([(r["method"], r["path"]) for r in reqs], [
            ("POST", "/apis/aigateway.envoyproxy.io/v1alpha1/namespaces/log/aigatewayroutes"),
            ("PATCH", "/apis/aigateway.envoyproxy.io/v1alpha1/namespaces/log/aigatewayroutes/l/status")])
        self.assertEqual(reqs[1]["contentType"], APPLY)
        self.assertEqual(reqs[1]["fieldManager"], "ctl")
        self.assertEqual(reqs[1]["query"]["force"], "true")
        self.assertEqual(reqs[1]["body"]["status"]["conditions"][0]["type"], "Accepted")
        self.assertEqual(self.hook("GET", "/fake/stats")["lists"], stats["lists"] + 1)

    def test_close_watches_and_fan_out(self):
        rv = self.current_rv()
        got = [[] for _ in range(20)]

        def run(i):
            for e in watch.Watch().stream(self.core.list_namespaced_config_map, "fan", resource_version=str(rv),
                                          timeout_seconds=30):
                got[i].append(e["object"].metadata.name)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while self.hook("GET", "/fake/stats")["watches"] < 20:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        for i in range(30):
            self.core.create_namespaced_config_map("fan", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}")))
        deadline = time.monotonic() + 10
        while any(len(g) < 30 for g in got) and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        self.hook("POST", "/fake/close-watches")
        for t in threads:
            t.join(10)
        self.assertLess(time.monotonic() - started, 5, "close-watches ends the streams at once")
        self.assertEqual(got, [[f"c{i}" for i in range(30)]] * 20)
        deadline = time.monotonic() + 5
        while self.hook("GET", "/fake/stats")["watches"]:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)

    def test_bad_input(self):
        cm = "/api/v1/namespaces/bad/configmaps"
        code, ctype, body = self.raw("POST", cm, b"{not json")
        self.assertEqual((code, ctype, body["kind"], body["reason"]), (400, "application/json", "Status", "BadRequest"))
        self.assertEqual(self.raw("POST", cm, [1, 2])[0], 400)
        self.assertEqual(self.raw("POST", cm, {"metadata": {"name": "Bad_Name"}})[2]["reason"], "Invalid")
        self.assertEqual(self.raw("POST", cm, {"metadata": {}})[0], 422)
        self.assertEqual(self.raw("GET", "/api/v1/namespaces/bad/widgets")[0], 404)
        self.assertEqual(self.raw("GET", "/apis/aigateway.envoyproxy.io/v9/aigatewayroutes")[0], 404)
        self.assertEqual(self.raw("GET", "/api/v1/configmaps/x")[0], 404)
        self.assertEqual(self.raw("GET", cm + "?labelSelector=a%20b%20c")[0], 400)
        self.assertEqual(self.raw("GET", cm + "?limit=x")[0], 400)
        self.assertEqual(self.raw("POST", cm, {"metadata": {"name": "ok"}})[0], 201)
        self.assertEqual(self.raw("PATCH", cm + "/ok", {"a": 1}, "text/plain")[0], 415)
        code, _, body = self.raw("PATCH", cm + "/ok?fieldManager=m", b"kind: [", APPLY)
        self.assertEqual((code, body["reason"]), (400, "BadRequest"))
        self.assertEqual(self.raw("PATCH", cm + "/ok?fieldManager=m", {"kind": "Secret", "apiVersion": "v1"}, APPLY)[0], 400)
        self.assertEqual(self.raw("PUT", cm + "/ok", {"metadata": {"name": "other"}})[0], 400)
        self.assertEqual(self.raw("PATCH", cm + "/ok", [{"op": "remove", "path": "/nope"}], "application/json-patch+json")[0], 422)
        self.assertEqual(self.raw("GET", cm + "?watch=1&sendInitialEvents=true")[0], 422)
        self.assertEqual(self.raw("GET", "/healthz")[0:2], (200, "text/plain"))
        self.assertEqual(self.raw("PUT", "/api/v1")[0], 404)
        self.assertEqual(self.raw("GET", "/api/v1/namespaces//configmaps")[0], 404)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.putrequest("POST", cm)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders(b"zz\r\n")
        r = conn.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["reason"]), (400, "BadRequest"))
        conn.close()
        # A chunked request body is read like any other.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", cm, body=iter([b'{"metadata":', b'{"name":"chunked"}}']), encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["metadata"]["name"]), (201, "chunked"))
        conn.close()
        # deletecollection with a selector.
        code, _, body = self.raw("DELETE", cm + "?fieldSelector=metadata.name%3Dchunked")
        self.assertEqual((code, [i["metadata"]["name"] for i in body["items"]]), (200, ["chunked"]))
        self.assertEqual(self.raw("GET", cm + "/chunked")[0], 404)

    def test_sigterm_ends_watches_cleanly(self):
        proc, port = start_server()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/v1/namespaces/x/configmaps?watch=true")
        r = conn.getresponse()
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(r.read(), b"", "the stream ends with the terminating chunk, not a reset")
        conn.close()
        self.assertEqual(proc.wait(10), 0)


class InProcessTest(unittest.TestCase):
    """The server class used in-process: a large store and a short history."""

    def test_lists_30000_objects_fast(self):
        srv = fake_apiserver.FakeApiServer(0).start()
        try:
            res = fake_apiserver.RESOURCES[("", "configmaps")]
            for i in range(30000):
                srv.store.write(res, f"ns{i % 10}", f"cm-{i:05d}", lambda old, i=i: (
                    {"metadata": {"labels": {"i": str(i)}}, "data": {"k": "v"}}, None),
                    manager="seed", op="Update", av="v1", create="only")
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            started = time.monotonic()
            conn.request("GET", "/api/v1/configmaps")
            data = conn.getresponse().read()
            elapsed = time.monotonic() - started  # the server's time: parsing is the client's business
            self.assertEqual(len(json.loads(data)["items"]), 30000)
            self.assertLess(elapsed, 0.5)
            started, pages, token, total = time.monotonic(), 0, "", 0
            while True:  # kube's watcher pages with limit=500
                conn.request("GET", "/api/v1/configmaps?limit=500" + (f"&continue={token}" if token else ""))
                page = json.loads(conn.getresponse().read())
                self.assertEqual(page["metadata"]["resourceVersion"], "30000")
                total, pages = total + len(page["items"]), pages + 1
                token = page["metadata"].get("continue")
                if not token:
                    break
            self.assertEqual((total, pages), (30000, 60))
            self.assertLess(time.monotonic() - started, 3.0)
            conn.close()
            print(f"\n  list of 30000: {elapsed * 1000:.0f} ms; 60 pages of 500: "
                  f"{(time.monotonic() - started) * 1000:.0f} ms", file=sys.stderr)
        finally:
            srv.stop()

    def test_history_cap_expires_old_resource_versions(self):
        srv = fake_apiserver.FakeApiServer(0, history=5).start()
        try:
            core = client.CoreV1Api(client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{srv.port}")))
            rvs = [int(core.create_namespaced_config_map("h", client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"c{i}"))).metadata.resource_version) for i in range(8)]
            ok = list(watch.Watch().stream(core.list_namespaced_config_map, "h", resource_version=str(rvs[2]),
                                           timeout_seconds=1))
            self.assertEqual([e["object"].metadata.name for e in ok], ["c3", "c4", "c5", "c6", "c7"])
            with self.assertRaises(ApiException) as e:
                list(watch.Watch().stream(core.list_namespaced_config_map, "h", resource_version=str(rvs[1]),
                                          timeout_seconds=1))
            self.assertEqual(e.exception.status, 410)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
