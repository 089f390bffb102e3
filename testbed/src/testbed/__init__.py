"""The development harness: a real local control plane, writers of Flux objects and statuses, and the demo.

It is installed in the development and test environment (``make``), never in the product wheel or image.
The product does not import it; ``flux-tenant-exporter demo`` finds the demo through the
``flux_tenant_exporter.commands`` entry point that this distribution declares.
"""
