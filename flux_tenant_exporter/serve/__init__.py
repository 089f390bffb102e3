"""The running exporter: wiring (watchers, publisher, HTTP server, supervised together) and the HTTP API.

May import every layer below; aiohttp's server side lives here.
"""
