"""Which tenant a namespace belongs to.

In order: the namespace's tenant label (default ``toolkit.fluxcd.io/tenant``, which ``flux create tenant``
sets); the optional mapping file (tenant -> namespaces / namespace regexes); the platform namespaces
(default ``flux-system``), which form the tenant ``platform``; otherwise the namespace's own name.

Mapping file (YAML)::

    tenants:
      team-a:
        namespaces: [team-a, team-a-staging]
        patterns: ["^team-a-.*"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flux_tenant_exporter.base.config import TenancySettings
from flux_tenant_exporter.base.errors import UserError

PLATFORM = "platform"


class MappingError(UserError):
    """The tenant mapping file is not valid; the message says where."""


@dataclass(frozen=True)
class TenantMapping:
    """Explicit namespaces and regexes per tenant, from the mapping file."""

    exact: Mapping[str, str]
    patterns: tuple[tuple[re.Pattern[str], str], ...]

    @classmethod
    def empty(cls) -> TenantMapping:
        """No mapping."""
        return cls({}, ())

    @classmethod
    def load(cls, path: Path) -> TenantMapping:
        """Read and validate a mapping file."""
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            msg = f"cannot read tenant mapping {path}: {err}"
            raise MappingError(msg) from err
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "mapping") -> TenantMapping:
        """Validate a decoded mapping document."""
        tenants = data.get("tenants") if isinstance(data, dict) else None
        if not isinstance(tenants, dict):
            msg = f"{where}: expected a top-level 'tenants:' mapping"
            raise MappingError(msg)
        exact: dict[str, str] = {}
        patterns: list[tuple[re.Pattern[str], str]] = []
        for tenant, spec in tenants.items():
            if not isinstance(spec, dict):
                msg = f"{where}: tenants.{tenant} must be a mapping with 'namespaces' and/or 'patterns'"
                raise MappingError(msg)
            for ns in spec.get("namespaces") or []:
                exact[str(ns)] = str(tenant)
            for pattern in spec.get("patterns") or []:
                try:
                    patterns.append((re.compile(str(pattern)), str(tenant)))
                except re.error as err:
                    msg = f"{where}: tenants.{tenant}.patterns: {pattern!r} is not a valid regex: {err}"
                    raise MappingError(msg) from err
        return cls(exact, tuple(patterns))


@dataclass(frozen=True)
class TenantResolver:
    """Maps namespace names to tenant names."""

    platform_namespaces: frozenset[str] = frozenset({"flux-system"})
    mapping: TenantMapping = TenantMapping.empty()  # noqa: RUF009 - immutable value

    @classmethod
    def from_settings(cls, settings: TenancySettings) -> TenantResolver:
        """The resolver of ``settings``, reading its mapping file (a MappingError says what is wrong with it)."""
        mapping = TenantMapping.load(settings.tenant_mapping) if settings.tenant_mapping else TenantMapping.empty()
        return cls(frozenset(settings.platform_namespaces), mapping)

    def tenant_of(self, namespace: str, label: str | None) -> str:
        """The tenant of ``namespace`` whose tenant label value is ``label`` (None if unlabelled)."""
        if label:
            return label
        if namespace in self.mapping.exact:
            return self.mapping.exact[namespace]
        for pattern, tenant in self.mapping.patterns:
            if pattern.fullmatch(namespace):
                return tenant
        if namespace in self.platform_namespaces:
            return PLATFORM
        return namespace

