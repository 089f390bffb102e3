"""The JSON contract as a real client reads it: every body checked against ``openapi.yaml`` with
openapi-schema-validator (the validator of openapi-core and of many generated clients), formats included.

Shared by tests/test_contract.py (the hand-written fleet) and tests/test_demo.py (the demo fleet on the real
controllers).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yaml
from openapi_schema_validator import OAS31Validator

ROOT = Path(__file__).resolve().parent.parent
SPEC: dict[str, Any] = yaml.safe_load((ROOT / "flux_tenant_exporter" / "openapi.yaml").read_text())
#: what `get ... -o json` prints, by what it gets
GET_OUTPUTS = {"tenants": "TenantList", "tenant": "TenantDetail", "resources": "ResourceList"}


def schema_errors(schema: dict[str, Any], body: Any) -> list[str]:
    """Every way ``body`` breaks ``schema`` (which may $ref the spec's components), as readable lines."""
    root = {**schema, "components": SPEC["components"]}
    validator = OAS31Validator(root, format_checker=OAS31Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(body)]


def response_schema(path: str, status: int) -> dict[str, Any]:
    """The JSON schema the spec gives the answer ``status`` of GET ``path`` (a path template of the spec)."""
    response = SPEC["paths"][path]["get"]["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def response_headers(path: str, status: int) -> dict[str, Any]:
    """The headers the spec gives the answer ``status`` of GET ``path``."""
    response = SPEC["paths"][path]["get"]["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    headers: dict[str, Any] = response.get("headers", {})
    return headers


def component(name: str) -> dict[str, Any]:
    """A ``$ref`` to a named schema of the spec."""
    return {"$ref": f"#/components/schemas/{name}"}


async def check_every_body(base: str, tenants: list[str] | None = None, *,
                           token: str | None = None) -> tuple[int, list[str]]:
    """GET every JSON body the exporter at ``base`` serves and check each against the spec.

    /tenants (with each filter and a bad one), every /tenants/{name} (with a filter), an unknown and an overlong
    tenant, /readyz and /healthz; with access control on (a ``token``) also the refusals: no token and a bad one
    (401), /metrics for a caller who may not read it (403), each with the headers the spec names. Returns how many
    bodies were checked and every error found.
    """
    checked = 0
    errors: list[str] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"} if token else None) as session:

        async def check(path: str, template: str, want: int, headers: dict[str, str] | None = None) -> Any:
            nonlocal checked
            async with session.get(base + path, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
                missing = [h for h in response_headers(template, status) if h not in resp.headers]
                errors.extend(f"GET {path} ({status}): no {h} header" for h in missing)
            if status != want:
                errors.append(f"GET {path}: {status}, want {want}")
                return None
            doc = orjson.loads(body)
            checked += 1
            errors.extend(f"GET {path} ({status}): {e}" for e in schema_errors(response_schema(template, status), doc))
            return doc

        listing = await check("/tenants", "/tenants", 200)
        names = tenants if tenants is not None else [t["name"] for t in (listing or {}).get("tenants", [])]
        for query in ("state=failing", "state=ready", "category=source_not_ready", "owner=tenant", "owner=platform",
                      "stuck=true", "stuck=false", "state=failing&owner=tenant"):
            await check(f"/tenants?{query}", "/tenants", 200)
        await check("/tenants?state=sleeping", "/tenants", 400)
        await check("/tenants?colour=red", "/tenants", 400)
        for name in names:
            await check(f"/tenants/{quote(name, safe='')}", "/tenants/{name}", 200)
            await check(f"/tenants/{quote(name, safe='')}?state=failing", "/tenants/{name}", 200)
        await check("/tenants/no-such-tenant", "/tenants/{name}", 404)
        await check("/tenants/" + "x" * 300, "/tenants/{name}", 400)
        await check("/tenants/team-a?stuck=maybe", "/tenants/{name}", 400)
        await check("/readyz", "/readyz", 200)
        await check("/healthz", "/healthz", 200)
        if token is not None:
            await check("/tenants", "/tenants", 401, {"Authorization": "Bearer not-a-token"})
            await check("/tenants/team-a", "/tenants/{name}", 401, {"Authorization": "Basic eDp5"})
            await check("/metrics", "/metrics", 403)
    return checked, errors


async def check_get_outputs(url: str, tenant: str) -> tuple[int, list[str]]:
    """`get tenants|tenant NAME|resources -o json --url URL` (the real command) checked against the spec."""
    checked, errors = 0, []
    for what, extra in (("tenants", []), ("tenant", [tenant]), ("resources", []), ("resources", ["-t", tenant])):
        argv = [sys.executable, "-m", "flux_tenant_exporter", "get", what, *extra, "-o", "json", "--url", url]
        proc = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            errors.append(f"get {what} {' '.join(extra)}: exit {proc.returncode}: {proc.stderr.strip()}")
            continue
        checked += 1
        schema = component(GET_OUTPUTS[what])
        errors.extend(f"get {what} -o json: {e}" for e in schema_errors(schema, orjson.loads(proc.stdout)))
    return checked, errors
