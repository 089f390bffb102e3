"""What readers get from a View.

The Prometheus exposition (``prometheus``), the ``/tenants`` JSON documents, the HTML status page and the terminal
tables: pure functions of the published records, no I/O. May import ``state`` and below.
"""
