"""The exporter's own health: its self-metrics (``fluxtenant_exporter_*``, ``process_*``) and each kind's sync state.

``instruments`` are the counters, gauges and histograms (prometheus-client collectors that keep their lines);
``selfmetrics`` declares the families; ``sync`` keeps each watched kind's status and implements the observer the
reflectors report to. May import ``base`` only; prometheus-client lives here.
"""
