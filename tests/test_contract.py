"""The JSON contract holds for real clients: the spec is valid OpenAPI 3.1, and every JSON body the exporter serves
(and `get -o json` prints) validates against it with a real validator; a field the spec lacks fails.

The same check runs on the demo fleet on the real controllers in tests/test_demo.py.
"""

from __future__ import annotations

import copy

from contract import SPEC, check_every_body, check_get_outputs, component, schema_errors
from openapi_spec_validator import validate

from flux_tenant_exporter.kube.client import KubeClient
from testbed import fleet
from testbed.running import StartExporter
from testbed.synthetic import load_synthetic_fleet

DEMO_NAMESPACES = ("flux-system", "team-a", "team-a-web", "team-b", "team-c", "team-d")


def test_the_spec_is_valid_openapi_3_1() -> None:
    """openapi-spec-validator accepts the document (what `make lint` runs too)."""
    validate(copy.deepcopy(SPEC))
    assert SPEC["openapi"].startswith("3.1")


def test_a_body_with_a_field_the_spec_lacks_or_a_wrong_null_fails() -> None:
    """The checker is strict: an unknown field of a resource, a null where the spec has none, a string outside an
    enum and a malformed time are each an error; null where the spec allows it is not."""
    resource: dict[str, object] = {
        "kind": "Kustomization", "namespace": "a", "name": "app", "tenant": "a", "state": "ready", "category": None,
        "owner": None, "reason": "", "message": "", "detail": None, "since": "2026-12-05T12:00:00Z",
        "since_source": "condition",
        "stuck": False, "stuck_reason": None, "stuck_root": False, "root_cause": None, "root_category": None,
        "violations": [], "revision": None, "suspended": False, "drift": {"source_since": None, "attempt_since": None},
        "generation_lag": 0, "last_success": None,
    }
    assert schema_errors(component("Resource"), resource) == []
    assert schema_errors(component("Resource"), resource | {"colour": "red"})
    assert schema_errors(component("Resource"), resource | {"stuck": None})
    assert schema_errors(component("Resource"), resource | {"category": "on_fire"})
    assert schema_errors(component("Resource"), resource | {"since": "yesterday"})
    tenant = {"name": "a", "namespaces": ["a"], "status": "healthy", "partial": False, "failures": [],
              "violations": [],
              "counts": dict.fromkeys(("total", "ready", "progressing", "failing", "suspended", "unknown", "stuck"), 0)}
    assert schema_errors(component("Tenant"), tenant) == []
    assert schema_errors(component("Tenant"), tenant | {"resources": []})  # only a tenant's detail lists them
    assert schema_errors(component("TenantDetail"), tenant | {"resources": [resource],
                                                              "generated_at": "2026-12-05T12:00:00Z"}) == []


async def test_every_json_body_and_get_output_validates(admin: KubeClient, start_exporter: StartExporter) -> None:
    """On the hand-written fleet (every failure category, roots, stuck, drift, violations, suspended, a tenant with
    markup in a message): /tenants with each filter, every /tenants/{name}, the 400 and 404 errors, /readyz,
    /healthz, and `get tenants|tenant|resources -o json`, each valid against openapi.yaml."""
    await load_synthetic_fleet(admin)
    await fleet.create(admin, fleet.namespace("team-x", "team-x"), exist_ok=True)
    exporter = await start_exporter(namespaces=(*DEMO_NAMESPACES, "team-x"))
    base = f"http://127.0.0.1:{exporter.port}"
    checked, errors = await check_every_body(base)
    assert errors == []
    assert checked > 20
    checked, errors = await check_get_outputs(base, "team-a")
    assert errors == []
    assert checked == 4
