"""Kubernetes access through lightkube's ``AsyncClient``: a thin, dict-based wrapper.

Objects come back as plain dicts shaped like the API's JSON, so actions can read them
without wading through optional model fields. Every API failure becomes a
:class:`KubernetesError` whose ``message`` a person on call can act on.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx
from lightkube import ALL_NS, AsyncClient, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.core.resource import Resource
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment, ReplicaSet, StatefulSet
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.core_v1 import Node, Pod
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import PatchType

Obj = dict[str, Any]
PatchKind = Literal["merge", "strategic", "json"]

ScaledObject = create_namespaced_resource("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects")
# Argo Rollouts: a Deployment-like workload with canary / blue-green strategies.
Rollout = create_namespaced_resource("argoproj.io", "v1alpha1", "Rollout", "rollouts")

# kind → (lightkube resource, plural as RBAC names it, namespaced)
_KINDS: dict[str, tuple[type[Resource], str, bool]] = {
    "Pod": (Pod, "pods", True),
    "Node": (Node, "nodes", False),
    "Deployment": (Deployment, "deployments", True),
    "ReplicaSet": (ReplicaSet, "replicasets", True),
    "StatefulSet": (StatefulSet, "statefulsets", True),
    "HorizontalPodAutoscaler": (HorizontalPodAutoscaler, "horizontalpodautoscalers", True),
    "PodDisruptionBudget": (PodDisruptionBudget, "poddisruptionbudgets", True),
    "ScaledObject": (ScaledObject, "scaledobjects", True),
    "Rollout": (Rollout, "rollouts", True),
}
_SCALE_KINDS: dict[str, type[Resource]] = {
    "Deployment": Deployment.Scale,
    "StatefulSet": StatefulSet.Scale,
    "ReplicaSet": ReplicaSet.Scale,
    "Rollout": Rollout.Scale,
}
_PATCH_TYPES = {
    "merge": PatchType.MERGE,
    "strategic": PatchType.STRATEGIC,
    "json": PatchType.JSON,
}


class KubernetesError(Exception):
    """A Kubernetes API call that failed; ``message`` says what it means in plain words."""

    def __init__(self, status: int, reason: str, message: str, api_message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.api_message = api_message

    def __str__(self) -> str:
        return self.message


def _where(kind: str, namespace: str | None, name: str | None) -> str:
    if name:
        return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    return f"{kind}s in namespace {namespace}" if namespace else f"{kind}s"


def explain(
    exc: ApiError, verb: str, resource: str, kind: str, namespace: str | None, name: str | None
) -> KubernetesError:
    """An ``ApiError`` as a :class:`KubernetesError` with a message someone can act on."""
    status = exc.status
    code = int(status.code or exc.response.status_code)
    reason = status.reason or ""
    api_message = status.message or ""
    what = _where(kind, namespace, name)
    scope = f"in namespace {namespace}" if namespace else "(cluster-wide)"
    if code == 403:
        text = (
            f"the bot's service account may not {verb} {resource} {scope}; "
            f"grant it in the bot's Role/ClusterRole. Kubernetes said: {api_message}"
        )
    elif code == 401:
        text = f"Kubernetes rejected the bot's credentials (401): {api_message}"
    elif code == 404:
        text = f"{what} was not found (it may have been deleted or renamed)"
    elif code == 409:
        text = f"{what} changed while the bot was updating it (409 conflict); re-read and try again"
    elif code == 429 and resource == "pods/eviction":
        causes = "; ".join(
            c.message
            for c in ((status.details.causes if status.details else None) or [])
            if c.message
        )
        text = (
            f"evicting pod {namespace}/{name} would violate its PodDisruptionBudget "
            f"right now{': ' + causes if causes else ''}"
        )
    elif code == 429:
        text = f"Kubernetes refused to {verb} {what} for now (429 {reason}): {api_message}"
    elif code == 422:
        text = f"Kubernetes rejected the change to {what} as invalid: {api_message}"
    else:
        text = f"Kubernetes API error {code} ({reason or 'unknown'}) on {what}: {api_message}"
    return KubernetesError(code, reason, text, api_message)


@dataclass(frozen=True)
class KubeTarget:
    """How to reach a cluster: a kubeconfig context, the in-cluster service account, or a URL."""

    kube_context: str | None = None
    in_cluster: bool = False
    base_url: str | None = None
    token: str | None = None
    namespace: str = "default"
    timeout_s: float = 10.0


def build_config(target: KubeTarget) -> KubeConfig:
    if target.base_url:
        cluster: Obj = {"server": target.base_url}
        if target.base_url.startswith("http://"):
            # no TLS to verify (a `kubectl proxy`, a stand-in): without this the client
            # would still load every CA certificate of the system into a context unused
            cluster["insecure-skip-tls-verify"] = True
        conf: Obj = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "target", "cluster": cluster}],
            "users": [{"name": "bot", "user": {"token": target.token} if target.token else {}}],
            "contexts": [
                {
                    "name": "target",
                    "context": {
                        "cluster": "target",
                        "user": "bot",
                        "namespace": target.namespace,
                    },
                }
            ],
            "current-context": "target",
        }
        return KubeConfig.from_dict(conf)
    try:
        if target.in_cluster:
            return KubeConfig.from_service_account()
        return KubeConfig.from_env()
    except ConfigError as exc:
        raise KubernetesError(
            0, "ConfigError", f"no usable Kubernetes configuration: {exc}"
        ) from exc


class KubeClient:
    """Async, dict-in/dict-out access to the few API calls the actions make."""

    def __init__(self, client: AsyncClient) -> None:
        # lightkube's overloads want concrete resource classes; we pick them at run time.
        self._client: Any = client

    @classmethod
    def connect(cls, target: KubeTarget, field_manager: str = "vllm-chatops") -> KubeClient:
        config = build_config(target)
        chosen: KubeConfig | SingleConfig = config
        if target.kube_context:
            try:
                single = config.get(target.kube_context)
            except ConfigError:
                single = None
            if single is None:
                raise KubernetesError(
                    0, "ConfigError", f"kubeconfig has no context {target.kube_context!r}"
                )
            chosen = single
        try:
            client = AsyncClient(
                chosen,
                namespace=target.namespace,
                timeout=httpx.Timeout(target.timeout_s),
                field_manager=field_manager,
                trust_env=False,
            )
        except ConfigError as exc:
            raise KubernetesError(0, "ConfigError", f"bad Kubernetes configuration: {exc}") from exc
        return cls(client)

    @classmethod
    def for_server(cls, url: str, token: str, namespace: str = "default") -> KubeClient:
        return cls.connect(KubeTarget(base_url=url, token=token, namespace=namespace))

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- calls -------------------------------------------------------------------------

    @staticmethod
    def _kind(kind: str) -> tuple[type[Resource], str, bool]:
        try:
            return _KINDS[kind]
        except KeyError:
            raise ValueError(f"unsupported kind {kind!r}; known: {', '.join(_KINDS)}") from None

    @staticmethod
    def _ns(namespaced: bool, namespace: str | None) -> dict[str, Any]:
        return {"namespace": namespace} if namespaced else {}

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        res, plural, namespaced = self._kind(kind)
        try:
            obj = await self._client.get(res, name, **self._ns(namespaced, namespace))
        except ApiError as exc:
            raise explain(exc, "get", plural, kind, namespace, name) from exc
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return _to_dict(obj)

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> list[Obj]:
        res, plural, namespaced = self._kind(kind)
        # A namespaced kind without a namespace lists across all namespaces.
        kwargs: dict[str, Any] = {"namespace": namespace or ALL_NS} if namespaced else {}
        if labels:
            kwargs["labels"] = dict(labels)
        if fields:
            kwargs["fields"] = dict(fields)
        try:
            return [_to_dict(o) async for o in self._client.list(res, **kwargs)]
        except ApiError as exc:
            raise explain(exc, "list", plural, kind, namespace, None) from exc
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc

    async def patch(
        self,
        kind: str,
        name: str,
        body: Obj | builtins.list[Obj],
        namespace: str | None = None,
        *,
        patch_type: PatchKind = "merge",
        dry_run: bool = False,
    ) -> Obj:
        res, plural, namespaced = self._kind(kind)
        try:
            obj = await self._client.patch(
                res,
                name,
                body,
                patch_type=_PATCH_TYPES[patch_type],
                dry_run=dry_run,
                **self._ns(namespaced, namespace),
            )
        except ApiError as exc:
            raise explain(exc, "patch", plural, kind, namespace, name) from exc
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return _to_dict(obj)

    async def replace(self, kind: str, obj: Obj, *, dry_run: bool = False) -> Obj:
        res, plural, _ = self._kind(kind)
        meta = obj.get("metadata") or {}
        try:
            new = await self._client.replace(res.from_dict(obj), dry_run=dry_run)  # type: ignore[attr-defined]
        except ApiError as exc:
            raise explain(
                exc, "update", plural, kind, meta.get("namespace"), meta.get("name")
            ) from exc
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return _to_dict(new)

    async def get_scale(self, kind: str, name: str, namespace: str) -> Obj:
        res = self._scale_kind(kind)
        plural = _KINDS[kind][1]
        try:
            obj = await self._client.get(res, name, namespace=namespace)
        except ApiError as exc:
            raise explain(exc, "get", f"{plural}/scale", kind, namespace, name) from exc
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return _to_dict(obj)

    async def patch_scale(
        self,
        kind: str,
        name: str,
        namespace: str,
        replicas: int,
        *,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        res = self._scale_kind(kind)
        plural = _KINDS[kind][1]
        body: Obj = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            obj = await self._client.patch(
                res, name, body, namespace=namespace, patch_type=PatchType.MERGE, dry_run=dry_run
            )
        except ApiError as exc:
            raise explain(exc, "patch", f"{plural}/scale", kind, namespace, name) from exc
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return _to_dict(obj)

    async def evict(
        self, name: str, namespace: str, *, dry_run: bool = False, uid: str | None = None
    ) -> None:
        """Evict a pod through the Eviction API (PDBs are enforced by the API server).

        With ``uid``, only that pod: a newer pod of the same name (a StatefulSet's
        replacement) is left alone, and the API server answers 409 Conflict instead.
        """
        body: Obj = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        if uid:
            body["deleteOptions"] = {"preconditions": {"uid": uid}}
        eviction = Pod.Eviction.from_dict(body)  # type: ignore[no-untyped-call]
        try:
            await self._client.create(eviction, name=name, namespace=namespace, dry_run=dry_run)
        except ApiError as exc:
            raise explain(exc, "create", "pods/eviction", "Pod", namespace, name) from exc
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc

    @staticmethod
    def _scale_kind(kind: str) -> type[Resource]:
        try:
            return _SCALE_KINDS[kind]
        except KeyError:
            raise ValueError(f"{kind} has no scale subresource") from None


def _to_dict(obj: Any) -> Obj:
    data = obj.to_dict()
    assert isinstance(data, dict)
    return data


def _unreachable(exc: httpx.HTTPError) -> KubernetesError:
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return KubernetesError(
            code,
            exc.response.reason_phrase,
            f"Kubernetes API answered {code} {exc.response.reason_phrase} "
            f"for {exc.request.method} {exc.request.url.path}",
        )
    if isinstance(exc, httpx.TimeoutException):
        return KubernetesError(
            0, "Timeout", f"the Kubernetes API did not answer in time ({type(exc).__name__})"
        )
    detail = f": {exc}" if str(exc) else ""
    return KubernetesError(
        0, "Unreachable", f"could not reach the Kubernetes API: {type(exc).__name__}{detail}"
    )


__all__ = [
    "KubeClient",
    "KubeTarget",
    "KubernetesError",
    "Obj",
    "build_config",
    "explain",
]
