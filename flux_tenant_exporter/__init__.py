"""flux-tenant-exporter: which Flux tenant is broken, why, and since when.

The packages are the layers of one direction of data, each importing only those below it (``make lint`` enforces
it with import-linter; see ``[tool.importlinter]`` in ``pyproject.toml``)::

    cli        entry point, flags, get, report
    serve      the running exporter (wiring, publisher) and its HTTP API
    ingest     reflector (list/watch) and sinks      |  render   Prometheus text, JSON documents, status page, tables
    state      store (classify on write), view, published records, rules (root cause, drift, policy, roll-up)
    flux       Flux schema, model, projection, interning, classification, tenants
    kube       kubeconfig, API client, generic codec |  telemetry  the exporter's own metrics and per-kind sync
    base       vocabulary, errors, kinds, config, text format, durations, time, redaction, logs
"""

__version__ = "0.1.0"
