#!/usr/bin/env python3
"""Validate a multi-document Kubernetes YAML (what `aigw deploy render` writes) offline.

usage: python targets/deploy/validate.py FILE|-

Each document is checked against the Kubernetes OpenAPI schemas that the kubernetes-validate
package ships, for Kubernetes 1.34 (the newest version the package has, if it has no 1.34), in
strict mode: a field the schema does not know is an error, as a type or a missing required
field is. Beyond the schemas, and as an API server or `kubectl apply` would refuse them too:
a YAML error, a key twice in one mapping, an empty document, a document that is not an object
with apiVersion, kind and metadata.name, a kind with no schema, and two documents with the same
kind, namespace and name.

Prints `ok Kind/namespace/name` (`ok Kind/name` for a cluster-scoped object) per valid
document and exits 0; at the first invalid document prints `invalid ...: reason` on stderr and
exits 1. Exit 2 on usage or I/O errors.
"""

import sys

import kubernetes_validate
import kubernetes_validate.utils
import yaml

WANTED = "1.34"


def kubernetes_version():
    """1.34 when the package has its schemas, otherwise the newest version it has."""
    have = {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    if WANTED in have:
        return WANTED
    return kubernetes_validate.utils.major_minor(kubernetes_validate.utils.latest_version())


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def describe(doc):
    meta = doc.get("metadata") or {}
    namespace = meta.get("namespace")
    if namespace:
        return f"{doc.get('kind')}/{namespace}/{meta.get('name')}"
    return f"{doc.get('kind')}/{meta.get('name')}"


def fail(where, reason):
    print(f"invalid {where}: {reason}", file=sys.stderr)
    sys.exit(1)


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print("usage: validate.py FILE|-", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as e:
        print(f"cannot read {path}: {e}", file=sys.stderr)
        return 2
    version = kubernetes_version()
    print(f"kubernetes-validate {kubernetes_validate.version.__version__}: schemas of Kubernetes "
          f"{version}, strict", file=sys.stderr)

    try:
        docs = list(yaml.load_all(text, Loader=StrictLoader))
    except yaml.YAMLError as e:
        fail(path, f"YAML: {e}")
    if not docs:
        fail(path, "no document")

    seen = {}
    for number, doc in enumerate(docs, start=1):
        where = f"document {number}"
        if doc is None:
            fail(where, "empty document")
        if not isinstance(doc, dict):
            fail(where, f"not an object but {type(doc).__name__}")
        for field in ("apiVersion", "kind"):
            if not isinstance(doc.get(field), str) or not doc[field]:
                fail(where, f"no {field}")
        if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
            fail(where, "no metadata.name")
        where = f"{where} {describe(doc)}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            at = ".".join(str(p) for p in e.path) or "(the document)"
            fail(where, f"{at}: {e.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
            fail(where, e.message)
        key = (doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else "",
               doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        if key in seen:
            fail(where, f"the same object as document {seen[key]}")
        seen[key] = number
        print(f"ok {describe(doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
