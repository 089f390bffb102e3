"""The one ``Settings`` object: command-line flags, each with an environment-variable fallback (``FTE_<FLAG>``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exporter import __version__
from exporter.classify import Thresholds
from exporter.kinds import FLUX_KINDS
from exporter.watcher import WatchSettings

DEFAULT_PORT = 9897
KIND_IDS = tuple(k.id for k in FLUX_KINDS)


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once at start-up."""

    command: str = "serve"
    kubeconfig: str | None = None
    context: str | None = None
    listen_address: str = "0.0.0.0"  # noqa: S104 - a metrics endpoint listens on all interfaces in a pod
    port: int = DEFAULT_PORT
    kinds: tuple[str, ...] = KIND_IDS
    namespaces: tuple[str, ...] = ()
    label_selector: str | None = None
    tenant_label: str = "toolkit.fluxcd.io/tenant"
    platform_namespaces: tuple[str, ...] = ("flux-system",)
    tenant_mapping: Path | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    watch: WatchSettings = field(default_factory=WatchSettings)
    gotk_compat: bool = False
    #: ask the API server for gzip-compressed responses
    api_compression: bool = False
    #: the shortest time between two publishes (batches bursts of events)
    publish_interval: float = 0.05
    #: re-evaluate time-based state (stuck) at least this often
    refresh_interval: float = 15.0
    log_format: str = "auto"
    log_level: str = "info"
    # report
    input: str | None = None
    output_format: str = "json"
    # demo
    demo_exit_after_ready: bool = False

    def summary(self) -> dict[str, Any]:
        """The effective settings for the start-up log line (nothing secret is in here)."""
        data = asdict(self)
        data["tenant_mapping"] = str(self.tenant_mapping) if self.tenant_mapping else None
        return data


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get("FTE_" + name.upper().replace("-", "_"), default)


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _duration_flag(value: str) -> float:
    from exporter.model import parse_duration  # noqa: PLC0415 - keep settings import-light

    seconds = parse_duration(value)
    if seconds is None:
        msg = f"{value!r} is not a duration like 30s, 15m or 1h"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The CLI: ``serve`` (default), ``report`` and ``demo``."""
    parser = argparse.ArgumentParser(
        prog="flux-tenant-exporter",
        description="Which Flux tenant is broken, why, and since when: Prometheus metrics and a /tenants JSON API.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="watch the cluster and serve /metrics, /tenants (the default)",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    report = sub.add_parser("report", help="classify a `kubectl get ... -o json` dump offline and print it",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    demo = sub.add_parser("demo", help="start a local control plane with a demo fleet and serve it",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for p in (parser, serve, report, demo):
        _common(p)
    for p in (parser, serve, demo):
        _serving(p)
    report.add_argument("--input", "-i", default=_env("input", "-"),
                        help="JSON or YAML file, '-' for stdin [FTE_INPUT]")
    report.add_argument("--format", dest="output_format", choices=("json", "table"),
                        default=_env("format", "json"), help="output format [FTE_FORMAT]")
    demo.add_argument("--exit-after-ready", dest="demo_exit_after_ready", action="store_true",
                      help="print the /tenants summary and the time to ready, then stop (for scripts)")
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant-label", default=_env("tenant_label", "toolkit.fluxcd.io/tenant"),
                   help="namespace label naming the tenant [FTE_TENANT_LABEL]")
    p.add_argument("--platform-namespaces", default=_env("platform_namespaces", "flux-system"),
                   help="comma-separated namespaces forming the tenant 'platform' [FTE_PLATFORM_NAMESPACES]")
    p.add_argument("--tenant-mapping", default=_env("tenant_mapping"),
                   help="YAML file mapping tenants to namespaces/regexes [FTE_TENANT_MAPPING]")
    p.add_argument("--stuck-after", type=_duration_flag, default=_env("stuck_after", "15m"),
                   help="Ready=False for longer than this is stuck [FTE_STUCK_AFTER]")
    p.add_argument("--source-stuck-after", type=_duration_flag, default=_env("source_stuck_after", "30m"),
                   help="same, for sources [FTE_SOURCE_STUCK_AFTER]")
    p.add_argument("--progressing-margin", type=_duration_flag, default=_env("progressing_margin", "5m"),
                   help="reconciling beyond spec.timeout plus this is stuck [FTE_PROGRESSING_MARGIN]")
    p.add_argument("--log-format", choices=("auto", "json", "console"), default=_env("log_format", "auto"),
                   help="log renderer; auto = console on a terminal, else JSON [FTE_LOG_FORMAT]")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=_env("log_level", "info"),
                   help="[FTE_LOG_LEVEL]")


def _serving(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=_env("kubeconfig", os.environ.get("KUBECONFIG")),
                   help="kubeconfig file (default: in-cluster config, else ~/.kube/config) "
                        "[FTE_KUBECONFIG, KUBECONFIG]")
    p.add_argument("--context", default=_env("context"), help="kubeconfig context [FTE_CONTEXT]")
    p.add_argument("--listen-address", default=_env("listen_address", "0.0.0.0"),  # noqa: S104
                   help="HTTP listen address [FTE_LISTEN_ADDRESS]")
    p.add_argument("--port", type=int, default=int(_env("port", str(DEFAULT_PORT)) or DEFAULT_PORT),
                   help="HTTP port for /metrics, /tenants, /healthz, /readyz [FTE_PORT]")
    p.add_argument("--kinds", default=_env("kinds", ",".join(KIND_IDS)),
                   help=f"comma-separated kinds to watch, of: {', '.join(KIND_IDS)} [FTE_KINDS]")
    p.add_argument("--namespaces", default=_env("namespaces", ""),
                   help="comma-separated allow-list: watch only these namespaces, one watch each [FTE_NAMESPACES]")
    p.add_argument("--label-selector", default=_env("label_selector"),
                   help="only Flux objects matching it, e.g. sharding.fluxcd.io/key=shard1 [FTE_LABEL_SELECTOR]")
    p.add_argument("--gotk-resource-info", dest="gotk_compat", action=argparse.BooleanOptionalAction,
                   default=(_env("gotk_resource_info", "false") or "").lower() in {"1", "true", "yes"},
                   help="also emit gotk_resource_info for the official Flux dashboards [FTE_GOTK_RESOURCE_INFO]")
    p.add_argument("--api-compression", action=argparse.BooleanOptionalAction,
                   default=(_env("api_compression", "false") or "").lower() in {"1", "true", "yes"},
                   help="ask the API server for gzip responses (for slow links to it; costs its CPU on every "
                        "list) [FTE_API_COMPRESSION]")
    p.add_argument("--inactivity-timeout", type=_duration_flag, default=_env("inactivity_timeout", "2m"),
                   help="reconnect a watch that sent nothing (not even a bookmark) for this long "
                        "[FTE_INACTIVITY_TIMEOUT]")
    p.add_argument("--rediscover-interval", type=_duration_flag, default=_env("rediscover_interval", "1m"),
                   help="how often to look again for an absent CRD [FTE_REDISCOVER_INTERVAL]")


def from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse ``argv`` (default: sys.argv) into Settings; exits with a usage error on bad input."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    command = ns.command or "serve"
    kinds = _csv(getattr(ns, "kinds", ",".join(KIND_IDS)))
    unknown = [k for k in kinds if k.lower() not in KIND_IDS]
    if unknown:
        parser.error(f"--kinds: unknown kind(s) {', '.join(unknown)}; known: {', '.join(KIND_IDS)}")
    # argparse applies type= to string defaults too: the duration flags are seconds here.
    thresholds = Thresholds(not_ready=ns.stuck_after, source_not_ready=ns.source_stuck_after,
                            progressing_margin=ns.progressing_margin, generation_lag=ns.stuck_after,
                            request_unhandled=ns.stuck_after)
    watch = WatchSettings()
    if command != "report":
        watch = WatchSettings(label_selector=ns.label_selector or None, inactivity_timeout=ns.inactivity_timeout,
                              rediscover_interval=ns.rediscover_interval)
    return Settings(
        command=command,
        kubeconfig=getattr(ns, "kubeconfig", None),
        context=getattr(ns, "context", None),
        listen_address=getattr(ns, "listen_address", "0.0.0.0"),  # noqa: S104
        port=getattr(ns, "port", DEFAULT_PORT),
        kinds=tuple(k.lower() for k in kinds),
        namespaces=_csv(getattr(ns, "namespaces", "")),
        label_selector=getattr(ns, "label_selector", None) or None,
        tenant_label=ns.tenant_label,
        platform_namespaces=_csv(ns.platform_namespaces),
        tenant_mapping=Path(ns.tenant_mapping) if ns.tenant_mapping else None,
        thresholds=thresholds,
        watch=watch,
        gotk_compat=getattr(ns, "gotk_compat", False),
        api_compression=getattr(ns, "api_compression", False),
        log_format=ns.log_format,
        log_level=ns.log_level,
        input=getattr(ns, "input", None),
        output_format=getattr(ns, "output_format", "json"),
        demo_exit_after_ready=getattr(ns, "demo_exit_after_ready", False),
    )
