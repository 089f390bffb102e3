"""The one ``Settings`` object: command-line flags, each with an environment-variable fallback (``FTE_<FLAG>``).

The bottom layer of the product with ``vocabulary``: it imports nothing that does work. Every default is
written once, on the dataclasses below; the parser reads its defaults from them.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NoReturn

from exporter import __version__
from exporter.durations import format_duration, parse_duration
from exporter.errors import UserError
from exporter.kinds import FLUX_KINDS
from exporter.vocabulary import DETAILS, INFO_LABELS, Detail, InfoLabel

KIND_IDS = tuple(k.id for k in FLUX_KINDS)
ENV_PREFIX = "FTE_"
Command = Literal["serve", "report", "demo", "get"]
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
ReportFormat = Literal["json", "table"]


@dataclass(frozen=True, slots=True)
class StuckThresholds:
    """How long a condition may last before the object is stuck (seconds)."""

    #: Ready=False (or Stalled) for longer than this
    not_ready: float = 15 * 60
    #: the same, for sources (their retries are slower)
    source_not_ready: float = 30 * 60
    #: reconciling beyond the object's spec.timeout plus this
    progressing_margin: float = 5 * 60
    #: the spec.timeout assumed when an object has none
    default_timeout: float = 10 * 60
    #: metadata.generation ahead of status.observedGeneration for longer than this
    generation_lag: float = 15 * 60
    #: a reconcile.fluxcd.io/requestedAt not acknowledged for longer than this
    request_unhandled: float = 15 * 60


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """Tuning of the list/watch loop."""

    page_size: int = 500
    #: server-side watch timeout, drawn uniformly from this range (client-go: 5-10 minutes)
    server_timeout: tuple[int, int] = (300, 600)
    #: no bytes for this long (bookmarks included) means a dead stream: reconnect from the same resourceVersion
    inactivity_timeout: float = 120.0
    backoff_initial: float = 0.8
    backoff_max: float = 30.0
    #: a run this long without errors resets the backoff (so does a successful list or watch request)
    backoff_reset_after: float = 120.0
    #: how often an absent CRD is looked for again
    rediscover_interval: float = 60.0
    label_selector: str | None = None


GetWhat = Literal["tenants", "tenant", "resources"]
GetOutput = Literal["table", "json", "yaml"]


@dataclass(frozen=True, slots=True)
class GetSettings:
    """What ``get`` prints, and from where."""

    what: GetWhat = "tenants"
    #: the tenant of ``get tenant NAME``
    name: str | None = None
    #: ``get resources -t TENANT``
    tenant: str | None = None
    state: str | None = None
    category: str | None = None
    owner: str | None = None
    output: GetOutput = "table"
    watch: bool = False
    #: a running exporter to read; None: run the watcher in-process
    url: str | None = None
    #: how often ``--watch`` reads ``--url`` again
    interval: float = 2.0


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once at start-up."""

    command: Command = "serve"
    kubeconfig: str | None = None
    context: str | None = None
    listen_address: str = "0.0.0.0"  # noqa: S104 - a metrics endpoint listens on all interfaces in a pod
    port: int = 9897
    kinds: tuple[str, ...] = KIND_IDS
    namespaces: tuple[str, ...] = ()
    label_selector: str | None = None
    tenant_label: str = "toolkit.fluxcd.io/tenant"
    platform_namespaces: tuple[str, ...] = ("flux-system",)
    tenant_mapping: Path | None = None
    thresholds: StuckThresholds = field(default_factory=StuckThresholds)
    watch: WatchSettings = field(default_factory=WatchSettings)
    gotk_compat: bool = False
    #: ask the API server for gzip-compressed responses
    api_compression: bool = False
    #: the shortest time between two publishes (batches bursts of events)
    publish_interval: float = 0.05
    #: re-evaluate time-based state (stuck) at least this often
    refresh_interval: float = 15.0
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    #: Flux object labels copied onto fluxtenant_resource_info as label_<sanitised key> (an allow-list)
    resource_labels: tuple[str, ...] = ()
    #: only these metric families (empty: all), then minus the deny-list
    metrics_allowlist: tuple[str, ...] = ()
    metrics_denylist: tuple[str, ...] = ()
    #: per-object series for every object, only for objects needing attention, or none (tenant totals only)
    detail: Detail = "failing"
    #: labels left off fluxtenant_resource_info (and gotk_resource_info)
    drop_info_labels: tuple[InfoLabel, ...] = ()
    #: per-object series for at most this many objects (0: no limit); tenant totals still count every object
    object_limit: int = 0
    # report
    input: str = "-"
    output_format: ReportFormat = "json"
    # demo
    demo_exit_after_ready: bool = False
    get: GetSettings = field(default_factory=GetSettings)

    def summary(self) -> dict[str, Any]:
        """The effective settings for the start-up log line (nothing secret is in here)."""
        data = asdict(self)
        data["tenant_mapping"] = str(self.tenant_mapping) if self.tenant_mapping else None
        return data


DEFAULTS = Settings()
_STUCK = DEFAULTS.thresholds
_WATCH = DEFAULTS.watch


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _env(name: str) -> str | None:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"))


def _env_or(name: str, default: str) -> str:
    value = _env(name)
    return default if value is None else value


def _env_bool(name: str, default: bool) -> bool:  # noqa: FBT001 - a flag's default
    value = _env(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    msg = f"{ENV_PREFIX}{name.upper()}={value!r} is not a boolean (true or false)"
    raise UserError(msg)


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def resource_label_name(key: str) -> str:
    """A label key as a Prometheus label name: ``app.kubernetes.io/part-of`` -> ``label_app_kubernetes_io_part_of``."""
    return "label_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


def _resource_labels(value: str) -> tuple[str, ...]:
    keys = _csv(value)
    bad = [k for k in keys if not _LABEL_KEY.match(k) or len(k) > 316]  # noqa: PLR2004 - 253 prefix + / + 63 name
    if bad:
        msg = f"not a Kubernetes label key: {', '.join(bad)}"
        raise argparse.ArgumentTypeError(msg)
    names: dict[str, str] = {}
    for key in keys:
        other = names.setdefault(resource_label_name(key), key)
        if other != key:
            msg = f"label keys {other} and {key} both become {resource_label_name(key)}"
            raise argparse.ArgumentTypeError(msg)
    return tuple(dict.fromkeys(keys))


def _info_labels(value: str) -> tuple[InfoLabel, ...]:
    labels = _csv(value)
    unknown = [v for v in labels if v not in INFO_LABELS]
    if unknown:
        msg = f"unknown label(s) {', '.join(unknown)}; droppable: {', '.join(INFO_LABELS)}"
        raise argparse.ArgumentTypeError(msg)
    return tuple(v for v in INFO_LABELS if v in labels)


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        msg = f"{value!r} is not a count (0 or more)"
        raise argparse.ArgumentTypeError(msg)
    return count


def _duration(value: str) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        msg = f"{value!r} is not a duration like 30s, 15m or 1h"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:  # noqa: PLR2004 - the TCP port range
        msg = f"{value!r} is not a TCP port (0-65535)"
        raise argparse.ArgumentTypeError(msg)
    return port


def _kinds(value: str) -> tuple[str, ...]:
    kinds = tuple(k.lower() for k in _csv(value))
    unknown = [k for k in kinds if k not in KIND_IDS]
    if unknown:
        msg = f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KIND_IDS)}"
        raise argparse.ArgumentTypeError(msg)
    return kinds


def build_parser() -> argparse.ArgumentParser:
    """The CLI: ``serve`` (default), ``report`` and ``demo``."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = OneLineParser(
        prog="flux-tenant-exporter",
        description="Which Flux tenant is broken, why, and since when: Prometheus metrics and a /tenants JSON API.",
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    serve = sub.add_parser("serve", help="watch the cluster and serve /metrics, /tenants (the default)",
                           formatter_class=fmt)
    report = sub.add_parser("report", help="classify a `kubectl get ... -o json` dump offline and print it",
                            formatter_class=fmt)
    demo = sub.add_parser("demo", help="start a local cluster with a demo fleet and serve it (development "
                          "harness only)", formatter_class=fmt)
    get = _get_parser(sub, fmt)
    for p in (parser, serve, report, demo, get):
        _common(p)
    for p in (parser, serve, demo):
        _serving(p)
    report.add_argument("--input", "-i", default=_env_or("input", DEFAULTS.input),
                        help="JSON or YAML file, '-' for stdin [FTE_INPUT]")
    report.add_argument("--format", dest="output_format", choices=("json", "table"),
                        default=_env_or("format", DEFAULTS.output_format), help="output format [FTE_FORMAT]")
    demo.add_argument("--exit-after-ready", dest="demo_exit_after_ready", action="store_true",
                      help="print the /tenants summary and the time to ready, then stop (for scripts)")
    return parser


def _get_parser(sub: Any, fmt: type[argparse.HelpFormatter]) -> argparse.ArgumentParser:
    """``get tenants|tenant NAME|resources``: the parser of the terminal view (exporter/get.py runs it)."""
    from exporter.vocabulary import CATEGORIES, OWNERS, STATES  # noqa: PLC0415 - only this parser needs them

    get = sub.add_parser("get", help="print tenants or resources (-o table|json|yaml), live with --watch",
                         formatter_class=fmt)
    get.add_argument("what", choices=("tenants", "tenant", "resources"), help="what to print")
    get.add_argument("name", nargs="?", help="the tenant, for `get tenant NAME`")
    get.add_argument("-t", "--tenant", help="only this tenant's resources")
    get.add_argument("--state", choices=STATES, help="only resources in this state")
    get.add_argument("--category", choices=CATEGORIES, metavar="CATEGORY",
                     help=f"only resources failing in this category, one of: {', '.join(CATEGORIES)}")
    get.add_argument("--owner", choices=OWNERS, help="only resources whose failure this owner fixes")
    get.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table", help="output format")
    get.add_argument("-w", "--watch", action="store_true", help="print again on every change")
    get.add_argument("--url", default=_env("url"),
                     help="read a running exporter (http://host:9897) instead of watching the cluster [FTE_URL]")
    get.add_argument("--interval", type=_duration, default="2s", help="how often --watch reads --url again")
    get.add_argument("--kubeconfig", default=_env("kubeconfig") or os.environ.get("KUBECONFIG"),
                     help="kubeconfig of the cluster to watch in-process (default ~/.kube/config) "
                          "[FTE_KUBECONFIG, KUBECONFIG]")
    get.add_argument("--context", default=_env("context"), help="kubeconfig context [FTE_CONTEXT]")
    get.add_argument("--namespaces", default=_env_or("namespaces", ",".join(DEFAULTS.namespaces)),
                     help="in-process: watch only these namespaces (an identity with only Roles) [FTE_NAMESPACES]")
    get.add_argument("--kinds", type=_kinds, default=_env_or("kinds", ",".join(DEFAULTS.kinds)),
                     help=f"in-process: the kinds to watch, of: {', '.join(KIND_IDS)} [FTE_KINDS]")
    return get  # type: ignore[no-any-return]


def _get_settings(ns: argparse.Namespace) -> GetSettings:
    return GetSettings(what=ns.what, name=ns.name, tenant=ns.tenant, state=ns.state, category=ns.category,
                       owner=ns.owner, output=ns.output, watch=ns.watch, url=ns.url, interval=ns.interval)


def _duration_flag(p: argparse.ArgumentParser, flag: str, default: float, text: str) -> None:
    env = flag.removeprefix("--").replace("-", "_")
    p.add_argument(flag, type=_duration, default=_env_or(env, format_duration(default)),
                   help=f"{text} [FTE_{env.upper()}]")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant-label", default=_env_or("tenant_label", DEFAULTS.tenant_label),
                   help="namespace label naming the tenant [FTE_TENANT_LABEL]")
    p.add_argument("--platform-namespaces",
                   default=_env_or("platform_namespaces", ",".join(DEFAULTS.platform_namespaces)),
                   help="comma-separated namespaces forming the tenant 'platform' [FTE_PLATFORM_NAMESPACES]")
    p.add_argument("--tenant-mapping", default=_env("tenant_mapping"),
                   help="YAML file mapping tenants to namespaces/regexes [FTE_TENANT_MAPPING]")
    _duration_flag(p, "--stuck-after", _STUCK.not_ready, "Ready=False for longer than this is stuck")
    _duration_flag(p, "--source-stuck-after", _STUCK.source_not_ready, "the same, for sources")
    _duration_flag(p, "--progressing-margin", _STUCK.progressing_margin,
                   "reconciling beyond spec.timeout plus this is stuck")
    _duration_flag(p, "--generation-stuck-after", _STUCK.generation_lag,
                   "a new generation not observed by the controller for longer than this is stuck")
    _duration_flag(p, "--request-stuck-after", _STUCK.request_unhandled,
                   "a reconcile.fluxcd.io/requestedAt not acknowledged for longer than this is stuck")
    p.add_argument("--log-format", choices=("auto", "json", "console"),
                   default=_env_or("log_format", DEFAULTS.log_format),
                   help="log renderer; auto = console on a terminal, else JSON [FTE_LOG_FORMAT]")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default=_env_or("log_level", DEFAULTS.log_level),
                   help="debug also prints the traceback of an error [FTE_LOG_LEVEL]")


def _serving(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=_env("kubeconfig") or os.environ.get("KUBECONFIG"),
                   help="kubeconfig file (default: in-cluster config, else ~/.kube/config) "
                        "[FTE_KUBECONFIG, KUBECONFIG]")
    p.add_argument("--context", default=_env("context"), help="kubeconfig context [FTE_CONTEXT]")
    p.add_argument("--listen-address", default=_env_or("listen_address", DEFAULTS.listen_address),
                   help="HTTP listen address [FTE_LISTEN_ADDRESS]")
    p.add_argument("--port", type=_port, default=_env_or("port", str(DEFAULTS.port)),
                   help="HTTP port for /metrics, /tenants, /healthz, /readyz [FTE_PORT]")
    p.add_argument("--kinds", type=_kinds, default=_env_or("kinds", ",".join(DEFAULTS.kinds)),
                   help=f"comma-separated kinds to watch, of: {', '.join(KIND_IDS)} [FTE_KINDS]")
    p.add_argument("--namespaces", default=_env_or("namespaces", ",".join(DEFAULTS.namespaces)),
                   help="comma-separated allow-list: watch only these namespaces, one watch each [FTE_NAMESPACES]")
    p.add_argument("--label-selector", default=_env("label_selector"),
                   help="only Flux objects matching it, e.g. sharding.fluxcd.io/key=shard1 [FTE_LABEL_SELECTOR]")
    p.add_argument("--gotk-resource-info", dest="gotk_compat", action=argparse.BooleanOptionalAction,
                   default=_env_bool("gotk_resource_info", DEFAULTS.gotk_compat),
                   help="also emit gotk_resource_info for the official Flux dashboards [FTE_GOTK_RESOURCE_INFO]")
    p.add_argument("--api-compression", action=argparse.BooleanOptionalAction,
                   default=_env_bool("api_compression", DEFAULTS.api_compression),
                   help="ask the API server for gzip responses (for slow links to it; costs its CPU on every "
                        "list) [FTE_API_COMPRESSION]")
    p.add_argument("--resource-labels", type=_resource_labels,
                   default=_env_or("resource_labels", ",".join(DEFAULTS.resource_labels)),
                   help="comma-separated Flux object label keys copied onto fluxtenant_resource_info as "
                        "label_<key, sanitised>, e.g. team,app.kubernetes.io/part-of [FTE_RESOURCE_LABELS]")
    p.add_argument("--metrics-allowlist", default=_env_or("metrics_allowlist", ",".join(DEFAULTS.metrics_allowlist)),
                   help="comma-separated metric families to expose (default: all) [FTE_METRICS_ALLOWLIST]")
    p.add_argument("--metrics-denylist", default=_env_or("metrics_denylist", ",".join(DEFAULTS.metrics_denylist)),
                   help="comma-separated metric families not to expose [FTE_METRICS_DENYLIST]")
    p.add_argument("--detail", choices=DETAILS, default=_env_or("detail", DEFAULTS.detail),
                   help="per-object series for all objects, only those needing attention (failing), or none "
                        "(tenants) [FTE_DETAIL]")
    p.add_argument("--drop-info-labels", type=_info_labels,
                   default=_env_or("drop_info_labels", ",".join(DEFAULTS.drop_info_labels)),
                   help=f"labels to leave off the info series, of: {', '.join(INFO_LABELS)} [FTE_DROP_INFO_LABELS]")
    p.add_argument("--object-limit", type=_count, default=_env_or("object_limit", str(DEFAULTS.object_limit)),
                   help="per-object series for at most this many objects, 0 = no limit [FTE_OBJECT_LIMIT]")
    _duration_flag(p, "--inactivity-timeout", _WATCH.inactivity_timeout,
                   "reconnect a watch that sent nothing (not even a bookmark) for this long")
    _duration_flag(p, "--rediscover-interval", _WATCH.rediscover_interval,
                   "how often to look again for an absent CRD")


_SERVING_FIELDS = ("kubeconfig", "context", "listen_address", "port", "kinds", "label_selector", "gotk_compat",
                   "api_compression", "resource_labels", "detail", "drop_info_labels", "object_limit")


def from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse ``argv`` (default: sys.argv) into Settings; a usage error is one line and exit code 2."""
    ns = build_parser().parse_args(argv)
    # argparse applies type= to string defaults too: durations are seconds and kinds a tuple here.
    values = vars(ns)
    command: Command = ns.command or "serve"
    thresholds = replace(_STUCK, not_ready=ns.stuck_after, source_not_ready=ns.source_stuck_after,
                         progressing_margin=ns.progressing_margin, generation_lag=ns.generation_stuck_after,
                         request_unhandled=ns.request_stuck_after)
    watch = _WATCH
    if "inactivity_timeout" in values:
        watch = replace(_WATCH, label_selector=ns.label_selector or None, inactivity_timeout=ns.inactivity_timeout,
                        rediscover_interval=ns.rediscover_interval)
    serving: dict[str, Any] = {name: values[name] for name in _SERVING_FIELDS if name in values}
    if "namespaces" in values:
        serving["namespaces"] = _csv(ns.namespaces)
        serving["metrics_allowlist"] = _csv(ns.metrics_allowlist)
        serving["metrics_denylist"] = _csv(ns.metrics_denylist)
    serving["label_selector"] = serving.get("label_selector") or None
    other = {name: values[name] for name in ("input", "output_format", "demo_exit_after_ready") if name in values}
    return replace(
        DEFAULTS,
        command=command,
        tenant_label=ns.tenant_label,
        platform_namespaces=_csv(ns.platform_namespaces),
        tenant_mapping=Path(ns.tenant_mapping) if ns.tenant_mapping else None,
        thresholds=thresholds,
        watch=watch,
        log_format=ns.log_format,
        log_level=ns.log_level,
        **serving,
        **other,
        get=_get_settings(ns) if command == "get" else DEFAULTS.get,
    )
