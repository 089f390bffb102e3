"""The command line: one argparse parser per command, each flag with an ``FTE_<FLAG>`` environment fallback.

Each flag is defined once, in the group that owns it (cluster, watching, serving, tenancy, thresholds, logging),
and each command adds the groups it uses; choices come from the ``vocabulary`` Literals and defaults from the
settings dataclasses of ``base.config``. ``parse`` returns the settings of the command given (``serve`` when none
is): each subparser names the function that builds its settings, so nothing is guessed from which flags exist.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from flux_tenant_exporter import __version__
from flux_tenant_exporter.base.config import (
    AccessSettings,
    DemoSettings,
    GetQuery,
    GetSettings,
    LogSettings,
    ReportSettings,
    ServeSettings,
    StuckThresholds,
    TenancySettings,
    TlsSettings,
    WatchSettings,
    check_families,
    check_kinds,
    check_resource_labels,
    check_shard,
)
from flux_tenant_exporter.base.durations import format_duration, parse_duration
from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.base.kinds import FLUX_KIND_IDS
from flux_tenant_exporter.base.vocabulary import (
    AUTH_MODES,
    CATEGORIES,
    DETAILS,
    GET_OUTPUTS,
    GET_WHATS,
    INFO_LABELS,
    LOG_FORMATS,
    LOG_LEVELS,
    OWNERS,
    REPORT_FORMATS,
    STATES,
    InfoLabel,
    MetricFamily,
)

PROG = "flux-tenant-exporter"
ENV_PREFIX = "FTE_"
_SERVE = ServeSettings()
_TENANCY = TenancySettings()
_STUCK = StuckThresholds()
_WATCH = WatchSettings()
_LOG = LogSettings()
_ACCESS = AccessSettings()
_TLS = TlsSettings()
_GET = GetSettings()
_REPORT = ReportSettings()
_T = TypeVar("_T")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# -- environment fallbacks and value types ------------------------------------------------------------------


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.removeprefix("--").upper().replace("-", "_")


def _env(flag: str, default: str | None = None) -> str | None:
    """The flag's ``FTE_*`` environment value, else ``default``."""
    value = os.environ.get(_env_name(flag))
    return default if value is None else value


def _env_bool(flag: str, default: bool) -> bool:  # noqa: FBT001 - a flag's default
    value = _env(flag)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    msg = f"{_env_name(flag)}={value!r} is not a boolean (true or false)"
    raise UserError(msg)


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _checked(check: Callable[[tuple[str, ...]], _T]) -> Callable[[str], _T]:
    """An argparse type for a comma-separated list checked by ``check`` (its UserError becomes a usage error)."""

    def convert(value: str) -> _T:
        try:
            return check(_csv(value))
        except UserError as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    return convert


def _info_labels(values: tuple[str, ...]) -> tuple[InfoLabel, ...]:
    unknown = [v for v in values if v not in INFO_LABELS]
    if unknown:
        msg = f"unknown label(s) {', '.join(unknown)}; droppable: {', '.join(INFO_LABELS)}"
        raise UserError(msg)
    return tuple(v for v in INFO_LABELS if v in values)


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


def _shard(value: str) -> str | None:
    try:
        return check_shard(value)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _duration_flag(p: argparse.ArgumentParser, flag: str, default: float, text: str) -> None:
    p.add_argument(flag, type=_duration, default=_env(flag, format_duration(default)),
                   help=f"{text} [{_env_name(flag)}]")


# -- flag groups: each flag is defined here once ------------------------------------------------------------


def _cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=_env("--kubeconfig") or os.environ.get("KUBECONFIG"),
                   help="kubeconfig file (default: in-cluster config, else ~/.kube/config) "
                        "[FTE_KUBECONFIG, KUBECONFIG]")
    p.add_argument("--context", default=_env("--context"), help="kubeconfig context [FTE_CONTEXT]")


def _watching(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kinds", type=_checked(check_kinds), default=_env("--kinds"),
                   help="comma-separated kinds to watch (default: every Flux kind the cluster serves, a kind the "
                        f"exporter does not know included), of: {', '.join(FLUX_KIND_IDS)} [FTE_KINDS]")
    p.add_argument("--namespaces", default=_env("--namespaces", ",".join(_SERVE.namespaces)),
                   help="comma-separated allow-list: watch only these namespaces, one watch each (an identity with "
                        "only Roles) [FTE_NAMESPACES]")


def _tenancy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant-label", default=_env("--tenant-label", _TENANCY.tenant_label),
                   help="namespace label naming the tenant [FTE_TENANT_LABEL]")
    p.add_argument("--platform-namespaces",
                   default=_env("--platform-namespaces", ",".join(_TENANCY.platform_namespaces)),
                   help="comma-separated namespaces forming the tenant 'platform' [FTE_PLATFORM_NAMESPACES]")
    p.add_argument("--tenant-mapping", default=_env("--tenant-mapping"),
                   help="YAML file mapping tenants to namespaces/regexes [FTE_TENANT_MAPPING]")


def _thresholds(p: argparse.ArgumentParser) -> None:
    _duration_flag(p, "--stuck-after", _STUCK.not_ready, "Ready=False for longer than this is stuck")
    _duration_flag(p, "--source-stuck-after", _STUCK.source_not_ready, "the same, for sources")
    _duration_flag(p, "--progressing-margin", _STUCK.progressing_margin,
                   "reconciling beyond spec.timeout plus this is stuck")
    _duration_flag(p, "--generation-stuck-after", _STUCK.generation_lag,
                   "a new generation not observed by the controller for longer than this is stuck")
    _duration_flag(p, "--request-stuck-after", _STUCK.request_unhandled,
                   "a reconcile.fluxcd.io/requestedAt not acknowledged for longer than this is stuck")


def _logging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=LOG_FORMATS, default=_env("--log-format", _LOG.format),
                   help="log renderer; auto = console on a terminal, else JSON [FTE_LOG_FORMAT]")
    p.add_argument("--log-level", choices=LOG_LEVELS, default=_env("--log-level", _LOG.level),
                   help="debug also prints the traceback of an error [FTE_LOG_LEVEL]")


def _common(p: argparse.ArgumentParser) -> None:
    """The groups every command takes."""
    _tenancy(p)
    _thresholds(p)
    _logging(p)


def _serving(p: argparse.ArgumentParser) -> None:
    _cluster(p)
    _watching(p)
    p.add_argument("--listen-address", default=_env("--listen-address", _SERVE.listen_address),
                   help="HTTP listen address [FTE_LISTEN_ADDRESS]")
    p.add_argument("--port", type=_port, default=_env("--port", str(_SERVE.port)),
                   help="HTTP port for /metrics, /tenants, /healthz, /readyz [FTE_PORT]")
    p.add_argument("--label-selector", default=_env("--label-selector"),
                   help="only Flux objects matching it, e.g. sharding.fluxcd.io/key=shard1 [FTE_LABEL_SELECTOR]")
    p.add_argument("--shard", type=_shard, default=_env("--shard"),
                   help="the shard this exporter serves (with --label-selector): a shard label on every series, so "
                        "queries add shards up and count replicas once [FTE_SHARD]")
    p.add_argument("--gotk-resource-info", dest="gotk_compat", action=argparse.BooleanOptionalAction,
                   default=_env_bool("--gotk-resource-info", _SERVE.gotk_compat),
                   help="also emit gotk_resource_info for the official Flux dashboards [FTE_GOTK_RESOURCE_INFO]")
    p.add_argument("--api-compression", action=argparse.BooleanOptionalAction,
                   default=_env_bool("--api-compression", _SERVE.api_compression),
                   help="ask the API server for gzip responses (for slow links to it; costs its CPU on every "
                        "list) [FTE_API_COMPRESSION]")
    p.add_argument("--resource-labels", type=_checked(check_resource_labels),
                   default=_env("--resource-labels", ",".join(_SERVE.resource_labels)),
                   help="comma-separated Flux object label keys copied onto fluxtenant_resource_info as "
                        "label_<key, sanitised>, e.g. team,app.kubernetes.io/part-of [FTE_RESOURCE_LABELS]")
    p.add_argument("--metrics-allowlist", type=_checked(check_families),
                   default=_env("--metrics-allowlist", ",".join(_SERVE.metrics_allowlist)),
                   help="comma-separated metric families to expose (default: all) [FTE_METRICS_ALLOWLIST]")
    p.add_argument("--metrics-denylist", type=_checked(check_families),
                   default=_env("--metrics-denylist", ",".join(_SERVE.metrics_denylist)),
                   help="comma-separated metric families not to expose [FTE_METRICS_DENYLIST]")
    p.add_argument("--detail", choices=DETAILS, default=_env("--detail", _SERVE.detail),
                   help="per-object series for all objects, only those needing attention (failing), or none "
                        "(tenants) [FTE_DETAIL]")
    p.add_argument("--drop-info-labels", type=_checked(_info_labels),
                   default=_env("--drop-info-labels", ",".join(_SERVE.drop_info_labels)),
                   help=f"labels to leave off the info series, of: {', '.join(INFO_LABELS)} [FTE_DROP_INFO_LABELS]")
    p.add_argument("--object-limit", type=_count, default=_env("--object-limit", str(_SERVE.object_limit)),
                   help="per-object series for at most this many objects, 0 = no limit [FTE_OBJECT_LIMIT]")
    _duration_flag(p, "--inactivity-timeout", _WATCH.inactivity_timeout,
                   "reconnect a watch that sent nothing (not even a bookmark) for this long")
    _duration_flag(p, "--rediscover-interval", _WATCH.rediscover_interval,
                   "how often to look again for an absent CRD")
    _access(p)


def _resource(value: str) -> tuple[str, str]:
    resource, _, group = value.partition(".")
    if not resource or not group:
        msg = f"{value!r} is not resource.group, e.g. kustomizations.kustomize.toolkit.fluxcd.io"
        raise argparse.ArgumentTypeError(msg)
    return resource, group


def _access(p: argparse.ArgumentParser) -> None:
    p.add_argument("--auth", choices=AUTH_MODES, default=_env("--auth", _ACCESS.mode),
                   help="who may read what: none (anyone who reaches the port sees every tenant), or kubernetes (a "
                        "bearer token per request; TokenReview says who, SubjectAccessReview what) [FTE_AUTH]")
    p.add_argument("--auth-token-audiences", default=_env("--auth-token-audiences", ",".join(_ACCESS.token_audiences)),
                   help="comma-separated audiences a token must be for, e.g. flux-tenant-exporter (empty: the API "
                        "server's, so kubectl and OIDC tokens work) [FTE_AUTH_TOKEN_AUDIENCES]")
    _duration_flag(p, "--auth-token-cache-ttl", _ACCESS.token_ttl, "how long a TokenReview's answer is kept")
    _duration_flag(p, "--auth-allow-cache-ttl", _ACCESS.allow_ttl,
                   "how long an allowed SubjectAccessReview is kept (a removed RoleBinding hides within it)")
    _duration_flag(p, "--auth-deny-cache-ttl", _ACCESS.deny_ttl,
                   "how long a denied SubjectAccessReview is kept (a new RoleBinding shows within it)")
    p.add_argument("--auth-namespace-verb", default=_env("--auth-namespace-verb", _ACCESS.verb),
                   help="a namespace is visible to whom may do this verb on --auth-namespace-resource there "
                        "[FTE_AUTH_NAMESPACE_VERB]")
    p.add_argument("--auth-namespace-resource", type=_resource,
                   default=_env("--auth-namespace-resource", f"{_ACCESS.resource}.{_ACCESS.group}"),
                   help="resource.group checked per namespace (cluster-wide: every namespace) "
                        "[FTE_AUTH_NAMESPACE_RESOURCE]")
    p.add_argument("--tls-cert-file", default=_env("--tls-cert-file"),
                   help="serve HTTPS with this certificate (PEM, chain after it); read again when it changes "
                        "[FTE_TLS_CERT_FILE]")
    p.add_argument("--tls-private-key-file", default=_env("--tls-private-key-file"),
                   help="the certificate's private key (PEM) [FTE_TLS_PRIVATE_KEY_FILE]")
    p.add_argument("--tls-terminated-upstream", action=argparse.BooleanOptionalAction,
                   default=_env_bool("--tls-terminated-upstream", _TLS.terminated_upstream),
                   help="a TLS-terminating proxy is in front, so --auth=kubernetes may serve plain HTTP on a "
                        "non-loopback address [FTE_TLS_TERMINATED_UPSTREAM]")


# -- settings from the parsed flags, one builder per command ------------------------------------------------


def _tenancy_settings(ns: argparse.Namespace) -> TenancySettings:
    return TenancySettings(tenant_label=ns.tenant_label, platform_namespaces=_csv(ns.platform_namespaces),
                           tenant_mapping=Path(ns.tenant_mapping) if ns.tenant_mapping else None)


def _threshold_settings(ns: argparse.Namespace) -> StuckThresholds:
    return StuckThresholds(not_ready=ns.stuck_after, source_not_ready=ns.source_stuck_after,
                           progressing_margin=ns.progressing_margin, generation_lag=ns.generation_stuck_after,
                           request_unhandled=ns.request_stuck_after, default_timeout=_STUCK.default_timeout)


def _log_settings(ns: argparse.Namespace) -> LogSettings:
    return LogSettings(format=ns.log_format, level=ns.log_level)


def _serve(ns: argparse.Namespace) -> ServeSettings:
    watch = WatchSettings(**{f.name: getattr(_WATCH, f.name) for f in fields(WatchSettings)}
                          | {"label_selector": ns.label_selector or None,
                             "inactivity_timeout": ns.inactivity_timeout,
                             "rediscover_interval": ns.rediscover_interval})
    allow: tuple[MetricFamily, ...] = ns.metrics_allowlist
    deny: tuple[MetricFamily, ...] = ns.metrics_denylist
    return ServeSettings(
        kubeconfig=ns.kubeconfig, context=ns.context, listen_address=ns.listen_address, port=ns.port,
        kinds=ns.kinds or _SERVE.kinds, discover_kinds=ns.kinds is None, namespaces=_csv(ns.namespaces),
        tenancy=_tenancy_settings(ns), thresholds=_threshold_settings(ns), watch=watch, log=_log_settings(ns),
        shard=ns.shard,
        gotk_compat=ns.gotk_compat,
        api_compression=ns.api_compression, resource_labels=ns.resource_labels, metrics_allowlist=allow,
        metrics_denylist=deny, detail=ns.detail, drop_info_labels=ns.drop_info_labels, object_limit=ns.object_limit,
        access=_access_settings(ns), tls=_tls_settings(ns),
    )


def _access_settings(ns: argparse.Namespace) -> AccessSettings:
    resource, group = ns.auth_namespace_resource
    return AccessSettings(mode=ns.auth, token_audiences=_csv(ns.auth_token_audiences),
                          token_ttl=ns.auth_token_cache_ttl, allow_ttl=ns.auth_allow_cache_ttl,
                          deny_ttl=ns.auth_deny_cache_ttl, verb=ns.auth_namespace_verb, resource=resource,
                          group=group)


def _tls_settings(ns: argparse.Namespace) -> TlsSettings:
    return TlsSettings(cert_file=Path(ns.tls_cert_file) if ns.tls_cert_file else None,
                       key_file=Path(ns.tls_private_key_file) if ns.tls_private_key_file else None,
                       terminated_upstream=ns.tls_terminated_upstream)


def _demo(ns: argparse.Namespace) -> DemoSettings:
    if ns.auth != "none" and ns.listen_address == _SERVE.listen_address and not ns.tls_cert_file:
        ns.listen_address = "127.0.0.1"  # a local demo with access control: tokens stay on this host
    return DemoSettings(serve=_serve(ns), exit_after_ready=ns.exit_after_ready)


def _report(ns: argparse.Namespace) -> ReportSettings:
    return ReportSettings(input=ns.input, format=ns.output_format, tenancy=_tenancy_settings(ns),
                          thresholds=_threshold_settings(ns), log=_log_settings(ns))


def _get(ns: argparse.Namespace) -> GetSettings:
    query = GetQuery(what=ns.what, name=ns.name, tenant=ns.tenant, state=ns.state, category=ns.category,
                     owner=ns.owner, output=ns.output, watch=ns.watch)
    watcher = ServeSettings(listen_address="127.0.0.1", port=0, kubeconfig=ns.kubeconfig, context=ns.context,
                            kinds=ns.kinds or _SERVE.kinds, discover_kinds=ns.kinds is None,
                            namespaces=_csv(ns.namespaces), tenancy=_tenancy_settings(ns),
                            thresholds=_threshold_settings(ns), log=_log_settings(ns))
    return GetSettings(query=query, url=ns.url, interval=ns.interval, watcher=watcher, token=ns.token or None,
                       token_file=Path(ns.token_file) if ns.token_file else None,
                       certificate_authority=Path(ns.certificate_authority) if ns.certificate_authority else None)


# -- the parsers ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The CLI: ``serve`` (the default), ``get``, ``report`` and ``demo``."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = OneLineParser(
        prog=PROG,
        description="Which Flux tenant is broken, why, and since when: Prometheus metrics and a /tenants JSON API.",
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser)
    _serving(parser)
    parser.set_defaults(build=_serve)  # no command: serve
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser)

    serve = sub.add_parser("serve", help="watch the cluster and serve /metrics, /tenants (the default)",
                           formatter_class=fmt)
    _common(serve)
    _serving(serve)
    serve.set_defaults(build=_serve)

    get = sub.add_parser("get", help="print tenants or resources (-o table|json|yaml), live with --watch",
                         formatter_class=fmt)
    get.add_argument("what", choices=GET_WHATS, help="what to print")
    get.add_argument("name", nargs="?", help="the tenant, for `get tenant NAME`")
    get.add_argument("-t", "--tenant", help="only this tenant's resources")
    get.add_argument("--state", choices=STATES, help="only resources in this state")
    get.add_argument("--category", choices=CATEGORIES, metavar="CATEGORY",
                     help=f"only resources failing in this category, one of: {', '.join(CATEGORIES)}")
    get.add_argument("--owner", choices=OWNERS, help="only resources whose failure this owner fixes")
    get.add_argument("-o", "--output", choices=GET_OUTPUTS, default=_GET.query.output, help="output format")
    get.add_argument("-w", "--watch", action="store_true", help="print again on every change")
    get.add_argument("--url", default=_env("--url"),
                     help="read a running exporter (http://host:9897) instead of watching the cluster in-process "
                          "[FTE_URL]")
    get.add_argument("--interval", type=_duration, default=format_duration(_GET.interval),
                     help="how often --watch reads --url again")
    get.add_argument("--token", default=_env("--token"),
                     help="bearer token for --url (an exporter with --auth=kubernetes); default: the kubeconfig "
                          "context's credentials, sent once the exporter asks for a token [FTE_TOKEN]")
    get.add_argument("--token-file", default=_env("--token-file"),
                     help="a file holding the bearer token for --url, e.g. from `kubectl create token` "
                          "[FTE_TOKEN_FILE]")
    get.add_argument("--certificate-authority", default=_env("--certificate-authority"),
                     help="CA file that signed an https --url's certificate [FTE_CERTIFICATE_AUTHORITY]")
    _cluster(get)
    _watching(get)
    _common(get)
    get.set_defaults(build=_get)

    report = sub.add_parser("report", help="classify a `kubectl get ... -o json` dump offline and print it",
                            formatter_class=fmt)
    report.add_argument("--input", "-i", default=_env("--input", _REPORT.input),
                        help="JSON or YAML file, '-' for stdin [FTE_INPUT]")
    report.add_argument("--format", dest="output_format", choices=REPORT_FORMATS,
                        default=_env("--format", _REPORT.format), help="output format [FTE_FORMAT]")
    _common(report)
    report.set_defaults(build=_report)

    demo = sub.add_parser("demo", help="start a local cluster with a demo fleet and serve it (development "
                          "harness only); with --auth=kubernetes it listens on loopback and prints a tenant's token",
                          formatter_class=fmt)
    demo.add_argument("--exit-after-ready", action="store_true",
                      help="print the /tenants summary and the time to ready, then stop (for scripts)")
    _common(demo)
    _serving(demo)
    demo.set_defaults(build=_demo)
    return parser


def parse_serve(argv: Sequence[str]) -> ServeSettings:
    """The settings of ``serve`` with the flags in ``argv`` (which name no command, or ``serve``)."""
    settings = parse(argv)
    if not isinstance(settings, ServeSettings):
        msg = f"not the flags of serve: {' '.join(argv)}"
        raise UserError(msg)
    return settings


def parse(argv: Sequence[str] | None = None) -> ServeSettings | GetSettings | ReportSettings | DemoSettings:
    """The settings of the command in ``argv`` (default: sys.argv); a usage error is one line and exit code 2.

    A value the settings refuse (a UserError) is raised as it is; the CLI prints it as one line, exit code 2.
    """
    ns = build_parser().parse_args(argv)
    # argparse applies type= to string defaults too: durations are seconds and lists are tuples here.
    build: Callable[[argparse.Namespace], Any] = ns.build
    settings: ServeSettings | GetSettings | ReportSettings | DemoSettings = build(ns)
    return settings
