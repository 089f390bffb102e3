"""The in-memory state: the store (classify once, on write), the derived View and its published records.

``store`` keeps the slim records and verdicts; ``view`` derives the immutable ``View`` incrementally with the
``rules`` (root causes, drift, tenancy policy, a tenant's roll-up); ``published`` holds the records every reader
(metrics, JSON, the status page, ``report``) reads. May import ``flux`` and below.
"""
