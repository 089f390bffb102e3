"""Kubernetes access: kubeconfig reading, the API client (requests, streams, typed API errors), the generic codec.

Knows nothing of Flux; may import ``base`` only. aiohttp's client side lives here.
"""
