"""The Prometheus exposition of a View.

The family catalogue (``families``), the incremental block renderer (``renderer``) and the output buffer handed to
HTTP (``exposition``). The text format itself is ``base.textformat``.
"""
