#!/usr/bin/env python3
"""The tests' own Kubernetes client: a few kubectl verbs on the official `kubernetes` client,
so that what the fake API server and aigw's controller exchange is also read and written by
code nobody here wrote.

    kubectl.py --server URL apply FILE        server-side apply of every document (manager "kubectl")
    kubectl.py --server URL delete APIVERSION KIND NAMESPACE NAME
    kubectl.py --server URL get APIVERSION KIND NAMESPACE NAME     prints the object as JSON
    kubectl.py --server URL events NAMESPACE                       prints events.k8s.io Events as JSON

Kinds are mapped to their resources by discovery (`/api/v1`, `/apis/GROUP/VERSION`), as
kubectl does. Exit status 1 with the API server's message on a failed call.
"""

import argparse
import json
import sys

import kubernetes
import yaml


def client(server):
    config = kubernetes.client.Configuration()
    config.host = server
    return kubernetes.client.ApiClient(config)


def call(api, method, path, body=None, content_type="application/json", query=None):
    params = api.param_serialize(
        method, path, query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": "application/json"}, body=body)
    response = api.call_api(*params)
    response.read()
    if response.status >= 400:
        sys.stderr.write(f"{method} {path}: {response.status} {response.data.decode()}\n")
        sys.exit(1)
    return json.loads(response.data)


def resource_path(api, api_version, kind, namespace, name=None):
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    listing = call(api, "GET", base)
    found = [r for r in listing["resources"] if r["kind"] == kind and "/" not in r["name"]]
    if not found:
        sys.stderr.write(f"{api_version} {kind}: not served\n")
        sys.exit(1)
    resource = found[0]
    path = base
    if resource.get("namespaced"):
        path += f"/namespaces/{namespace}"
    path += f"/{resource['name']}"
    if name:
        path += f"/{name}"
    return path


def apply(api, file):
    with open(file) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    for doc in documents:
        meta = doc["metadata"]
        path = resource_path(api, doc["apiVersion"], doc["kind"], meta.get("namespace", "default"), meta["name"])
        call(api, "PATCH", path, body=yaml.safe_dump(doc), content_type="application/apply-patch+yaml",
             query=[("fieldManager", "kubectl"), ("force", "true")])
        print(f"{doc['kind']}/{meta.get('namespace', '')}/{meta['name']} applied")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    sub = ap.add_subparsers(dest="verb", required=True)
    sub.add_parser("apply").add_argument("file")
    for verb in ("delete", "get"):
        p = sub.add_parser(verb)
        for arg in ("api_version", "kind", "namespace", "name"):
            p.add_argument(arg)
    sub.add_parser("events").add_argument("namespace")
    args = ap.parse_args()
    api = client(args.server)
    if args.verb == "apply":
        apply(api, args.file)
    elif args.verb == "delete":
        call(api, "DELETE", resource_path(api, args.api_version, args.kind, args.namespace, args.name))
    elif args.verb == "get":
        print(json.dumps(call(api, "GET", resource_path(api, args.api_version, args.kind, args.namespace, args.name))))
    elif args.verb == "events":
        print(json.dumps(call(api, "GET", f"/apis/events.k8s.io/v1/namespaces/{args.namespace}/events")))


if __name__ == "__main__":
    main()
