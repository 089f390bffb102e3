"""What the API server serves: every API group with its versions, and the resources (kinds) of chosen groups.

One aggregated discovery request (``apidiscovery.k8s.io/v2``, served since Kubernetes 1.30) answers all of it;
an API server without it is asked the classic way (``/apis``, then ``/apis/<group>/<version>`` for the chosen
groups). The exporter uses it to watch every Flux kind the cluster serves, and to tell a manifest at an API
version its CRD no longer serves from a CRD that is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flux_tenant_exporter.kube.client import KubeClient

_AGGREGATED = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
               "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


@dataclass(frozen=True, slots=True)
class ServedKind:
    """A namespaced kind of a chosen group, with the versions it is served at (the preferred first)."""

    kind: str
    group: str
    plural: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class ServedApis:
    """Every group the API server serves with its versions (the preferred first), and the chosen groups' kinds."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kinds: tuple[ServedKind, ...] = ()
    #: the groups whose kinds were asked for (``kinds`` lists every kind of these)
    described: frozenset[str] = frozenset()

    def versions_of(self, group: str, kind: str) -> tuple[str, ...] | None:
        """The versions ``kind`` is served at, if its group is one whose kinds were asked for; else None."""
        for served in self.kinds:
            if served.group == group and served.kind == kind:
                return served.versions
        return None


async def discover(client: KubeClient, chosen: Callable[[str], bool]) -> ServedApis:
    """The groups and versions the API server serves, and the namespaced kinds of the groups ``chosen`` accepts.

    Raises what the client raises (an ApiError, a connection error): the caller retries later.
    """
    answer = await client.request("GET", "/apis", accept=_AGGREGATED)
    if isinstance(answer, dict) and answer.get("kind") == "APIGroupDiscoveryList":
        return _aggregated(answer, chosen)
    return await _classic(client, answer if isinstance(answer, dict) else {}, chosen)


def _aggregated(answer: Mapping[str, Any], chosen: Callable[[str], bool]) -> ServedApis:
    groups: dict[str, tuple[str, ...]] = {}
    kinds: _Kinds = {}
    for item in answer.get("items") or ():
        group = str((item.get("metadata") or {}).get("name", ""))
        versions = [v for v in item.get("versions") or () if isinstance(v, dict)]
        groups[group] = tuple(str(v.get("version", "")) for v in versions)
        if not chosen(group):
            continue
        for version in versions:
            for resource in version.get("resources") or ():
                kind = str((resource.get("responseKind") or {}).get("kind", ""))
                plural = str(resource.get("resource", ""))
                if kind and plural and resource.get("scope") == "Namespaced":
                    kinds.setdefault((group, kind), (plural, []))[1].append(str(version.get("version", "")))
    return _served(groups, kinds, chosen)


#: (group, kind) -> (plural, the versions it is served at)
_Kinds = dict[tuple[str, str], tuple[str, list[str]]]


def _served(groups: dict[str, tuple[str, ...]], kinds: _Kinds, chosen: Callable[[str], bool]) -> ServedApis:
    return ServedApis(groups, tuple(ServedKind(k, g, plural, tuple(vs)) for (g, k), (plural, vs) in kinds.items()),
                      frozenset(g for g in groups if chosen(g)))


async def _classic(client: KubeClient, answer: Mapping[str, Any], chosen: Callable[[str], bool]) -> ServedApis:
    groups: dict[str, tuple[str, ...]] = {}
    kinds: _Kinds = {}
    for item in answer.get("groups") or ():
        group = str(item.get("name", ""))
        preferred = str((item.get("preferredVersion") or {}).get("version", ""))
        versions = [str(v.get("version", "")) for v in item.get("versions") or ()]
        versions.sort(key=lambda v: v != preferred)
        groups[group] = tuple(versions)
        if not chosen(group):
            continue
        for version in versions:
            listed = await client.request("GET", f"/apis/{group}/{version}")
            for resource in (listed or {}).get("resources") or ():
                plural = str(resource.get("name", ""))
                if "/" in plural or not resource.get("namespaced"):
                    continue
                kinds.setdefault((group, str(resource.get("kind", ""))), (plural, []))[1].append(version)
    return _served(groups, kinds, chosen)
