"""Kubernetes API objects as plain dicts: errors, patches, selectors, pod templates. Pure."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
ROLLOUT_REVISION_ANNOTATION = "rollout.argoproj.io/revision"
HASH_LABEL = "pod-template-hash"
ROLLOUT_HASH_LABEL = "rollouts-pod-template-hash"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


class ApiFailure(Exception):
    """Raised inside handlers; becomes a ``Status`` response."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details


def status_body(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: Obj = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ApiFailure(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(target: Obj, ops: Any) -> Obj:
    """RFC 6902 (add, remove, replace, test)."""
    if not isinstance(ops, list):
        raise ApiFailure(400, "BadRequest", "json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        parts = _pointer(str(op.get("path", "")))
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.get(part)
            if parent is None:
                raise ApiFailure(422, "Invalid", f"path {op.get('path')} does not exist")
        last = parts[-1]
        kind = op.get("op")
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, op.get("value"))
                else:
                    parent[idx] = op.get("value")
            else:
                if kind == "replace" and last not in parent:
                    raise ApiFailure(422, "Invalid", f"path {op.get('path')} does not exist")
                parent[last] = op.get("value")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif last in parent:
                del parent[last]
            else:
                raise ApiFailure(422, "Invalid", f"path {op.get('path')} does not exist")
        elif kind == "test":
            have = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if have != op.get("value"):
                raise ApiFailure(422, "Invalid", f"test operation failed at {op.get('path')}")
        else:
            raise ApiFailure(400, "BadRequest", f"unsupported json patch op {kind!r}")
    return doc


# --- selectors ---------------------------------------------------------------------------


def _split_selector(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


_SET_EXPR = re.compile(r"^(?P<key>[^\s!=]+)\s+(?P<op>in|notin)\s+\((?P<vals>[^)]*)\)$")


def label_selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    for term in _split_selector(selector):
        if m := _SET_EXPR.match(term):
            vals = {v.strip() for v in m.group("vals").split(",") if v.strip()}
            have = labels.get(m.group("key"))
            if m.group("op") == "in" and have not in vals:
                return False
            if m.group("op") == "notin" and have in vals:
                return False
        elif "!=" in term:
            key, val = term.split("!=", 1)
            if labels.get(key.strip()) == val.strip():
                return False
        elif "=" in term:
            key, val = re.split(r"==?", term, maxsplit=1)
            if labels.get(key.strip()) != val.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector`` object (matchLabels + matchExpressions); empty matches all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _field_value(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_selector_matches(selector: str, obj: Obj) -> bool:
    for term in _split_selector(selector):
        if "!=" in term:
            key, val = term.split("!=", 1)
            if _field_value(obj, key.strip()) == val.strip():
                return False
        else:
            key, val = re.split(r"==?", term, maxsplit=1)
            if _field_value(obj, key.strip()) != val.strip():
                return False
    return True


def pod_ready(pod: Obj) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def scaled_count(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def template_hash(template: Obj, hash_label: str = HASH_LABEL) -> str:
    """A stable pod-template-hash (ignoring an existing one), in the controller's alphabet."""
    clean = without_hash(template, hash_label)
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:10])


def without_hash(template: Obj, hash_label: str = HASH_LABEL) -> Obj:
    """A pod template minus the controller's hash label."""
    clean = copy.deepcopy(template)
    labels = (clean.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(hash_label, None)
    return clean


def same_template(a: Obj, b: Obj, hash_label: str = HASH_LABEL) -> bool:
    """Equal but for the hash label: how the deployment controller finds a template's
    ReplicaSet, whatever hash it was created under."""
    return without_hash(a, hash_label) == without_hash(b, hash_label)
