"""flux-tenant-exporter: which Flux tenant is broken, why, and since when."""

__version__ = "0.1.0"
