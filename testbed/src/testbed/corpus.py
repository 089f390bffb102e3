"""Record every condition the real Flux controllers write in the scenarios of ``testbed.cases``.

    python -m testbed.corpus [tests/data/flux-corpus.json]

Starts a real-Flux environment (control plane, source-, kustomize- and helm-controller, Git and Helm
servers), watches every Flux kind in every namespace, sets up all cases, and records each distinct
condition (type, status, reason, message) of every object in order, with the controller versions, until
every case has settled and has been retried at least once more (so the flip of each retry is in). Writes
one JSON document; the classifier's unit tests (tests/test_corpus.py) run over it without controllers.
Regenerate it when a pin changes.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
import time
from pathlib import Path
from typing import Any, Final

import orjson

from flux_tenant_exporter.base.kinds import FLUX_KINDS
from flux_tenant_exporter.kube.client import KubeClient, OversizedLine
from testbed import scenario
from testbed.cases import AUX_NAMESPACE_SUFFIXES, CASES, Case, set_up, settled, subject
from testbed.realflux import RealFlux, real_flux

Obj = dict[str, Any]

DEFAULT_OUTPUT: Final = Path(__file__).resolve().parents[3] / "tests" / "data" / "flux-corpus.json"
#: After a case settles, keep recording this long (one retryInterval and a bit), to catch the flips.
LINGER_SECONDS: Final = 15.0


class Recorder:
    """Every version of every Flux object, from cluster-wide watches."""

    def __init__(self) -> None:
        """Start empty."""
        self.objects: dict[tuple[str, str, str], list[Obj]] = {}

    async def watch(self, client: KubeClient, kind_path: str) -> None:
        """Record every ADDED/MODIFIED object of one collection until cancelled."""
        listing = await client.request("GET", kind_path)
        version = listing["metadata"]["resourceVersion"]
        for item in listing["items"]:
            self._add(item)
        while True:
            params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true",
                      "timeoutSeconds": "300"}
            async with client.stream(kind_path, params=params, inactivity_timeout=330) as lines:
                async for line in lines:
                    if isinstance(line, OversizedLine):
                        continue
                    event = orjson.loads(line)
                    obj = event.get("object") or {}
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event.get("type") in {"ADDED", "MODIFIED"}:
                        self._add(obj)

    def _add(self, obj: Obj) -> None:
        meta = obj["metadata"]
        self.objects.setdefault((obj["kind"], meta["namespace"], meta["name"]), []).append(obj)

    def conditions(self, key: tuple[str, str, str]) -> list[Obj]:
        """The distinct conditions of one object in the order first written (without timestamps)."""
        return scenario.Seen(self.objects.get(key, [])).conditions()


def _slim(cond: Obj) -> Obj:
    return {k: cond.get(k, "") for k in ("type", "status", "reason", "message")}


def _last_version(versions: list[Obj], case: Case) -> Obj | None:
    """The last recorded version of the case's object in its settled state (status and spec, trimmed metadata)."""
    check = settled(case)
    for obj in reversed(versions):
        if check(obj):
            meta = obj["metadata"]
            keep = {k: meta[k] for k in ("name", "namespace", "generation", "annotations") if k in meta}
            return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": keep,
                    "spec": obj.get("spec"), "status": obj.get("status")}
    return None


async def record(env: RealFlux, *, timeout: float = 240) -> Obj:  # noqa: ASYNC109 - a deadline for the run
    """Run every case and return the corpus document."""
    client = await KubeClient.from_kubeconfig(env.control_plane.kubeconfig)
    recorder = Recorder()
    watches = [asyncio.create_task(recorder.watch(client, kind.collection_path(kind.versions[0], None)))
               for kind in FLUX_KINDS]
    started = time.monotonic()
    try:
        for case in CASES:
            await set_up(client, env, case)
        settle_times: dict[str, float] = {}

        async def wait(case: Case) -> None:
            await scenario.wait_for(client, subject(case), settled(case), timeout=timeout)
            settle_times[case.id] = time.monotonic() - started

        results = await asyncio.gather(*(wait(c) for c in CASES), return_exceptions=True)
        unsettled = {c.id: str(r)[:500] for c, r in zip(CASES, results, strict=True) if isinstance(r, BaseException)}
        await asyncio.sleep(LINGER_SECONDS)  # record one more retry of each case; not a wait for a condition
    finally:
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        await client.close()

    cases = []
    for case in CASES:
        namespaces = {case.namespace, *(f"{case.namespace}-{suffix}" for suffix in AUX_NAMESPACE_SUFFIXES)}
        keys = sorted(k for k in recorder.objects if k[1] in namespaces)
        exp = case.expect
        cases.append({
            "id": case.id,
            "namespace": case.namespace,
            "expect": {"kind": exp.kind, "name": exp.name, "status": exp.status, "reason": exp.reason,
                       "message": exp.message, "category": exp.category, "owner": exp.owner,
                       "root": list(exp.root) if exp.root else None, "root_category": exp.root_category},
            "settled_after_seconds": round(settle_times[case.id], 1) if case.id in settle_times else None,
            "unsettled": unsettled.get(case.id),
            "settled_object": _last_version(
                recorder.objects.get((exp.kind, case.namespace, exp.name), []), case),
            "objects": [
                {"kind": k[0], "namespace": k[1], "name": k[2],
                 "conditions": [_slim(c) for c in recorder.conditions(k)]}
                for k in keys
            ],
        })
    return {
        "generated_by": "python -m testbed.corpus",
        "generated_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {**env.controllers.versions, "kubernetes": env.control_plane.assets.versions.get("kubernetes")},
        "intervals": {"interval": scenario.INTERVAL, "retryInterval": scenario.RETRY_INTERVAL},
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    """Record the corpus into the given file (default tests/data/flux-corpus.json)."""
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]) if args else DEFAULT_OUTPUT
    with real_flux() as env:
        doc = asyncio.run(record(env))
    output.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    bad = [c["id"] for c in doc["cases"] if c["unsettled"]]
    sys.stderr.write(f"wrote {output}: {len(doc['cases'])} cases; unsettled: {bad or 'none'}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
