"""The bottom layer: what every other layer may use, and nothing that does work.

The closed sets (``vocabulary``), the user-error base (``errors``), the watched kinds and their roles (``kinds``),
the configuration dataclasses of every command (``config``; the flags that fill them are in ``cli.flags``), the
Prometheus text format (``textformat``), durations, RFC 3339 times (``timefmt``), credential redaction and logging.
It may import no other package of the product (and none of the outside libraries that talk to a cluster or serve
HTTP).
"""
