"""What the exporter knows of Flux: its objects' schema, the slim records, projection, classification, tenants.

``schema`` declares the fields read off the wire; ``projection`` turns them into the records of ``model``, sharing
strings through an ``interning.Interner``; ``classify`` gives each object its verdict (state, category, stuck
deadline) from its own status; ``tenants`` maps namespaces to tenants. May import ``kube`` (the generic codec) and
``base``.
"""
