"""Feeding the store: the list/watch reflector (client-go semantics) and the sinks that parse into the store.

Reports how each kind stands through the narrow ``KindObserver`` protocol (``telemetry.sync`` implements it), so
nothing here writes metrics. May import ``state``, ``flux``, ``kube`` and ``base``.
"""
