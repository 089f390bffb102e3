"""The one text-format module: numbers, escaping and headers as the Prometheus text format requires them, read back
by prometheus-client's parser (what Prometheus itself accepts)."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flux_tenant_exporter.base.textformat import escape, header, label_name, number, sample


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (1, "1"), (-3, "-3"), (1.0, "1"), (0.25, "0.25"), (1_733_400_000, "1733400000"),
    (1_733_400_000.125, "1733400000.125"), (1.5e-07, "1.5e-07"), (2.0**53, "9007199254740992.0"), (1e300, "1e+300"),
    (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (True, "1"),
])
def test_numbers_are_written_as_the_format_requires(value: float, text: str) -> None:
    """Integral values without a fraction (exact up to 2**53), others as the shortest float that reads back the
    same, and the special values as NaN, +Inf and -Inf."""
    assert number(value) == text


@pytest.mark.parametrize("value", [0.1, 1 / 3, 2.0**53, 1e300, -1e-300, 123456789.987654321, 2.0**-1074])
def test_a_written_number_reads_back_as_the_same_float(value: float) -> None:
    """No digit is lost: the text parses to the very same float."""
    assert float(number(value)) == value


def test_a_family_with_special_values_and_awkward_labels_parses_back() -> None:
    """Header, label escaping (backslash, quote, line feed) and NaN/+Inf/-Inf survive prometheus-client's parser."""
    labels = (("path", 'a\\b "c"\nd'), ("le", "x"))
    text = header("weird_value", "Help with a \\ and a\nline feed.", "gauge")
    text += sample("weird_value", labels, math.nan) + sample("weird_value", (("k", "inf"),), math.inf)
    text += sample("weird_value", (("k", "minus"),), -math.inf) + sample("weird_value", (), 2.5)
    (family,) = text_string_to_metric_families(text)
    assert family.documentation == "Help with a \\ and a\nline feed."
    values = [s.value for s in family.samples]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 2.5]
    assert family.samples[0].labels == {"path": 'a\\b "c"\nd', "le": "x"}


def test_escaping_leaves_plain_text_alone_and_label_names_are_sanitised() -> None:
    """A value without special characters is returned as it is; a label key becomes a valid label name."""
    plain = "team-a/apps"
    assert escape(plain) is plain
    assert label_name("app.kubernetes.io/part-of") == "app_kubernetes_io_part_of"
