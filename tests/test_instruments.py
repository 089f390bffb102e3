"""The self-metrics' instruments write what prometheus-client's generate_latest writes for the same registry."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flux_tenant_exporter.base.textformat import number
from flux_tenant_exporter.telemetry.instruments import Counter, Gauge, Histogram, Instruments, ProcessMetrics
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics
from flux_tenant_exporter.telemetry.sync import KindSync, KindTelemetry

#: the process collector's values move between two renderings (CPU time, resident memory)
_PROCESS_VALUES = re.compile(rb"(?m)^(process_[a-z_]+) \S+$")
#: a sample's value, and a histogram bucket's bound: numbers as the text format module writes them
_VALUE = re.compile(rb"(?m)^([^#\n][^\n]*) (\S+)$")
_BOUND = re.compile(rb'le="([^"]+)"')


def _number(match: re.Match[bytes], group: int) -> bytes:
    return number(float(match.group(group))).encode()


def _comparable(text: bytes) -> bytes:
    """``text`` with its numbers spelled as ``base.textformat`` spells them (``1`` where prometheus-client writes
    ``1.0``), and the process values (which move between two renderings) hidden."""
    text = _VALUE.sub(lambda m: m.group(1) + b" " + _number(m, 2), text)
    text = _BOUND.sub(lambda m: b'le="' + _number(m, 1) + b'"', text)
    return _PROCESS_VALUES.sub(rb"\1 <value>", text)


def busy_self_metrics() -> SelfMetrics:
    metrics = SelfMetrics(CollectorRegistry(auto_describe=True))
    for kind in ("Kustomization", "GitRepository"):
        KindTelemetry(KindSync(kind, status="synced", last_contact=1_795_000_000.25), metrics)
    metrics.watch_requests.labels("Kustomization", "gone").inc(3)
    metrics.events.labels("Kustomization", "MODIFIED").inc(12_345_678)  # Go's exponent form: 1.2345678e+07
    metrics.last_event.labels("Kustomization").set(1_795_000_123.5)
    metrics.api_version.labels("Kustomization", "v1beta2").set(1)
    metrics.api_version.remove("Kustomization", "v1beta2")
    metrics.api_version.labels("Kustomization", "v1").set(1)
    metrics.objects_over_limit.set(7)
    for seconds in (0.0004, 0.004, 0.03, 0.03, 0.7, 9.0):
        metrics.publish_duration.observe(seconds)
        metrics.scrape_duration.observe(seconds)
    return metrics


def test_the_self_metrics_render_as_generate_latest_writes_them() -> None:
    """Every family, in registration order, line for line: zeros, counts, large counts, histogram buckets, a removed
    series; the numbers are the text format module's (``1``, ``12345678``, ``0.005``)."""
    metrics = busy_self_metrics()
    rendered = metrics.render()
    assert _comparable(rendered) == _comparable(generate_latest(metrics.registry))
    assert b'fluxtenant_exporter_kind_api_version_info{kind="Kustomization",version="v1beta2"}' not in rendered
    assert b'fluxtenant_exporter_events_total{kind="Kustomization",type="MODIFIED"} 12345678\n' in rendered
    assert b'fluxtenant_exporter_publish_duration_seconds_bucket{le="0.005"} 2\n' in rendered
    assert b'fluxtenant_exporter_publish_duration_seconds_bucket{le="1"} 5\n' in rendered
    assert b"fluxtenant_exporter_publish_duration_seconds_count 6\n" in rendered
    assert b"process_resident_memory_bytes " in rendered
    assert b'fluxtenant_exporter_build_info{python_version="' in rendered


def test_a_sharded_exporter_labels_its_own_series_with_the_shard() -> None:
    """Every fluxtenant_exporter_* series carries the shard (the process families are the process's), and the text
    still matches what generate_latest writes for the same registry."""
    metrics = SelfMetrics(CollectorRegistry(auto_describe=True), shard="shard-1")
    KindTelemetry(KindSync("Kustomization", status="synced"), metrics)
    metrics.publish_duration.observe(0.02)
    rendered = metrics.render()
    assert _comparable(rendered) == _comparable(generate_latest(metrics.registry))
    own = [line for line in rendered.decode().splitlines() if line.startswith("fluxtenant_exporter_")]
    assert own
    assert all('shard="shard-1"' in line for line in own)
    assert 'fluxtenant_exporter_publish_duration_seconds_count{shard="shard-1"} 1' in rendered.decode()


def test_a_changed_value_is_rendered_again() -> None:
    """A series' line is reused while its value stays, and follows every change (NaN and infinities too)."""
    instruments = Instruments(CollectorRegistry())
    gauge = instruments.add(Gauge("g", "A gauge.", ["a"]))
    series = gauge.labels("x")
    lines = []
    for value in (1, 1, 2.5, math.inf, math.nan, 0):
        series.set(value)
        lines.append(instruments.render().decode().splitlines()[-1])
    assert lines == ['g{a="x"} 1', 'g{a="x"} 1', 'g{a="x"} 2.5', 'g{a="x"} +Inf', 'g{a="x"} NaN', 'g{a="x"} 0']


def test_label_values_are_escaped_and_the_registry_reads_the_same_samples() -> None:
    """Quotes, backslashes and newlines in label values and help text survive a parse; get_sample_value agrees."""
    registry = CollectorRegistry(auto_describe=True)
    instruments = Instruments(registry)
    counter = instruments.add(Counter("weird", "Help with a \\ and a\nnewline.", ["b", "a"]))
    counter.labels('say "hi"', "back\\slash\nnext").inc(2)
    histogram = instruments.add(Histogram("h_seconds", "A histogram.", buckets=(1, 0.1)))
    histogram.observe(0.1)  # a bound belongs to its own bucket
    histogram.observe(5)
    text = instruments.render()
    assert _comparable(text) == _comparable(generate_latest(registry))
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    (sample,) = families["weird"].samples
    assert sample.labels == {"b": 'say "hi"', "a": "back\\slash\nnext"}
    assert sample.value == 2
    assert families["weird"].documentation == "Help with a \\ and a\nnewline."
    assert registry.get_sample_value("weird_total", {"b": 'say "hi"', "a": "back\\slash\nnext"}) == 2
    assert registry.get_sample_value("h_seconds_bucket", {"le": "0.1"}) == 1
    assert registry.get_sample_value("h_seconds_bucket", {"le": "+Inf"}) == 2
    assert registry.get_sample_value("h_seconds_sum") == 5.1


def test_misuse_is_refused() -> None:
    """A counter does not go down, a series takes exactly its labels, and a name is registered once."""
    registry = CollectorRegistry(auto_describe=True)
    instruments = Instruments(registry)
    counter = instruments.add(Counter("c", "A counter.", ["kind"]))
    with pytest.raises(ValueError, match="cannot decrease"):
        counter.labels("x").inc(-1)
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("x", "y")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        instruments.add(Counter("c", "The same name again.", ["kind"]))


def test_the_process_families_are_prometheus_clients_with_the_same_values() -> None:
    """ProcessMetrics exposes ProcessCollector's families (names, help, types, order) with its values: the same
    start time and file limit; open descriptors, memory and CPU time of this process within what moves between
    two readings."""
    theirs = list(ProcessCollector(registry=None).collect())
    ours = ProcessMetrics().collect()
    assert [(f.name, f.documentation, f.type) for f in ours] == [(f.name, f.documentation, f.type) for f in theirs]
    values = {f.name: (f.samples[0].value, g.samples[0].value) for f, g in zip(ours, theirs, strict=True)}
    for exact in ("process_start_time_seconds", "process_max_fds"):
        assert values[exact][0] == values[exact][1], exact
    assert abs(values["process_open_fds"][0] - values["process_open_fds"][1]) <= 2
    for name in ("process_virtual_memory_bytes", "process_resident_memory_bytes"):
        assert abs(values[name][0] - values[name][1]) < 2**20, name
    assert abs(values["process_cpu_seconds"][0] - values["process_cpu_seconds"][1]) <= 0.05
    out: list[str] = []
    ProcessMetrics().render(out)
    assert {f.name: f.type for f in text_string_to_metric_families("".join(out))} == {f.name: f.type for f in theirs}


def test_without_proc_there_are_no_process_families(tmp_path: Path) -> None:
    """Where /proc is missing (not Linux), nothing is exposed, as with ProcessCollector."""
    metrics = ProcessMetrics(proc=str(tmp_path))
    out: list[str] = []
    metrics.render(out)
    assert out == []
    assert metrics.collect() == []
