"""The command line, the top layer.

The entry point and its one error boundary (``main``), the flags (``flags``), ``get`` and ``report``. It may
import every package below it; only ``__main__`` imports it.
"""
