"""The configuration of each command, as frozen dataclasses: one settings type per command.

Every default is written once, here; ``cli.flags`` builds the command line (and the ``FTE_*`` environment
fallbacks) from these defaults and the ``vocabulary`` Literals, and returns one of the settings types below. What
can be checked without I/O is checked on construction (a ``UserError`` names the bad value), so a settings object
built by a test or a script is as valid as one parsed from flags.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.base.kinds import FLUX_KIND_IDS
from flux_tenant_exporter.base.textformat import label_name
from flux_tenant_exporter.base.vocabulary import (
    AUTH_MODES,
    INFO_LABELS,
    METRIC_FAMILIES,
    AuthMode,
    Detail,
    GetOutput,
    GetWhat,
    InfoLabel,
    LogFormat,
    LogLevel,
    MetricFamily,
    ReportFormat,
)


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
    #: only Flux objects matching this label selector (namespaces are always watched whole)
    label_selector: str | None = None


#: a Kubernetes label key: an optional DNS-subdomain prefix and a name
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_MAX_LABEL_KEY = 253 + 1 + 63


def resource_label_name(key: str) -> str:
    """A label key as a Prometheus label name: ``app.kubernetes.io/part-of`` -> ``label_app_kubernetes_io_part_of``."""
    return "label_" + label_name(key)


def check_resource_labels(keys: tuple[str, ...]) -> tuple[str, ...]:
    """``keys`` without repeats; a UserError for what is not a label key or two keys that become one label name."""
    bad = [k for k in keys if not _LABEL_KEY.match(k) or len(k) > _MAX_LABEL_KEY]
    if bad:
        msg = f"not a Kubernetes label key: {', '.join(bad)}"
        raise UserError(msg)
    names: dict[str, str] = {}
    for key in keys:
        other = names.setdefault(resource_label_name(key), key)
        if other != key:
            msg = f"label keys {other} and {key} both become {resource_label_name(key)}"
            raise UserError(msg)
    return tuple(dict.fromkeys(keys))


def check_families(names: tuple[str, ...]) -> tuple[MetricFamily, ...]:
    """``names`` as metric families; a UserError names the unknown ones and lists the known."""
    unknown = [n for n in names if n not in METRIC_FAMILIES]
    if unknown:
        msg = (f"unknown metric famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
               f"known: {', '.join(METRIC_FAMILIES)}")
        raise UserError(msg)
    return tuple(f for f in METRIC_FAMILIES if f in names)


#: a label value short and plain enough to name a shard (a Kubernetes label value)
_SHARD = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def check_shard(shard: str | None) -> str | None:
    """``shard`` if it is a Kubernetes label value (or None/empty: not sharded); a UserError otherwise."""
    if not shard:
        return None
    if not _SHARD.match(shard):
        msg = f"{shard!r} is not a shard name (a label value: up to 63 letters, digits, '-', '_', '.')"
        raise UserError(msg)
    return shard


def check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """``kinds`` as lower-case kind ids; a UserError names the unknown ones."""
    ids = tuple(k.lower() for k in kinds)
    unknown = [k for k in ids if k not in FLUX_KIND_IDS]
    if unknown:
        msg = f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(FLUX_KIND_IDS)}"
        raise UserError(msg)
    return ids


@dataclass(frozen=True)
class TenancySettings:
    """How namespaces map to tenants (``flux.tenants``)."""

    #: the namespace label naming the tenant (``flux create tenant`` sets it)
    tenant_label: str = "toolkit.fluxcd.io/tenant"
    #: namespaces forming the tenant ``platform``
    platform_namespaces: tuple[str, ...] = ("flux-system",)
    #: a YAML file mapping tenants to namespaces and namespace regexes
    tenant_mapping: Path | None = None


@dataclass(frozen=True)
class AccessSettings:
    """Who may read what (``serve.access``): off, or Kubernetes authentication and authorization per request.

    The cache lifetimes are the delegating authenticator's and authorizer's defaults (k8s.io/apiserver), with
    allowed answers kept 20 s as flux-operator keeps a user's namespaces: a deleted RoleBinding hides a tenant
    within ``allow_ttl``, a new one shows it within ``deny_ttl``, a deleted ServiceAccount is refused within
    ``token_ttl``. Errors are never cached.
    """

    mode: AuthMode = "none"
    #: the audiences a token must be for (TokenReview spec.audiences); empty: the API server's own audience, so
    #: kubectl's and OIDC tokens work too
    token_audiences: tuple[str, ...] = ()
    #: how long an answer of a TokenReview is kept (authenticated or not)
    token_ttl: float = 10.0
    #: how long an allowed and a denied SubjectAccessReview are kept
    allow_ttl: float = 20.0
    deny_ttl: float = 10.0
    #: a namespace is visible to whom may do this there (cluster-wide: every namespace)
    verb: str = "list"
    group: str = "kustomize.toolkit.fluxcd.io"
    resource: str = "kustomizations"
    #: reviews in flight at once (a user's first request asks one per namespace)
    concurrency: int = 8
    #: answers kept per cache (least recently used first out)
    cache_size: int = 8192

    def __post_init__(self) -> None:
        """Check the mode, the lifetimes and the bounds."""
        if self.mode not in AUTH_MODES:
            msg = f"--auth {self.mode!r} is not one of: {', '.join(AUTH_MODES)}"
            raise UserError(msg)
        if min(self.token_ttl, self.allow_ttl, self.deny_ttl) < 0:
            raise UserError("the access cache lifetimes are durations (0 or more)")
        if self.concurrency < 1 or self.cache_size < 1:
            raise UserError("the review concurrency and the cache size are at least 1")


@dataclass(frozen=True)
class TlsSettings:
    """HTTPS for the port: a certificate and key read from files, read again when they change."""

    cert_file: Path | None = None
    key_file: Path | None = None
    #: how often the files are checked for a change (cert-manager renews in place)
    reload_interval: float = 10.0
    #: a TLS-terminating proxy in front (a sidecar, a mesh): tokens may reach the port over plain HTTP
    terminated_upstream: bool = False

    def __post_init__(self) -> None:
        """Both files or neither."""
        if (self.cert_file is None) != (self.key_file is None):
            raise UserError("--tls-cert-file and --tls-private-key-file go together")

    @property
    def enabled(self) -> bool:
        """Whether the port serves HTTPS."""
        return self.cert_file is not None


def is_loopback(address: str) -> bool:
    """Whether a listen address reaches only this host."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class LogSettings:
    """The log renderer and level."""

    format: LogFormat = "auto"
    level: LogLevel = "info"


@dataclass(frozen=True)
class ServeSettings:
    """``serve``: watch the cluster and serve /metrics, /tenants and the status page."""

    kubeconfig: str | None = None
    context: str | None = None
    listen_address: str = "0.0.0.0"  # noqa: S104 - a metrics endpoint listens on all interfaces in a pod
    port: int = 9897
    kinds: tuple[str, ...] = FLUX_KIND_IDS
    #: also watch the Flux kinds discovery finds that are not known (a future kind); off when --kinds names them
    discover_kinds: bool = True
    namespaces: tuple[str, ...] = ()
    tenancy: TenancySettings = field(default_factory=TenancySettings)
    thresholds: StuckThresholds = field(default_factory=StuckThresholds)
    watch: WatchSettings = field(default_factory=WatchSettings)
    log: LogSettings = field(default_factory=LogSettings)
    #: the shard this exporter serves (``--label-selector`` picks its objects): a ``shard`` label on every series, so
    #: queries collapse the replicas of a shard and add the shards up; None: not sharded (no such label)
    shard: str | None = None
    #: also emit gotk_resource_info (Flux's kube-state-metrics label set)
    gotk_compat: bool = False
    #: ask the API server for gzip-compressed responses
    api_compression: bool = False
    #: the shortest time between two publishes (batches bursts of events)
    publish_interval: float = 0.05
    #: re-evaluate time-based state (stuck) at least this often
    refresh_interval: float = 15.0
    #: Flux object labels copied onto fluxtenant_resource_info as label_<sanitised key> (an allow-list)
    resource_labels: tuple[str, ...] = ()
    #: only these metric families (empty: all), then minus the deny-list
    metrics_allowlist: tuple[MetricFamily, ...] = ()
    metrics_denylist: tuple[MetricFamily, ...] = ()
    #: per-object series for every object, only for objects needing attention, or none (tenant totals only)
    detail: Detail = "failing"
    #: labels left off fluxtenant_resource_info (and gotk_resource_info)
    drop_info_labels: tuple[InfoLabel, ...] = ()
    #: per-object series for at most this many objects (0: no limit); tenant totals still count every object
    object_limit: int = 0
    access: AccessSettings = field(default_factory=AccessSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)

    def __post_init__(self) -> None:
        """Check what needs no I/O (kinds, metric families, labels, the object limit) and the token channel.

        Bearer tokens never reach the port over plain HTTP from another host.
        """
        if self.access.mode != "none" and not self.tls.enabled and not self.tls.terminated_upstream and not (
                is_loopback(self.listen_address)):
            msg = (f"--auth={self.access.mode} sends bearer tokens: serve HTTPS (--tls-cert-file and "
                   f"--tls-private-key-file), listen on loopback, or say a TLS-terminating proxy is in front "
                   f"(--tls-terminated-upstream); listening on {self.listen_address} over plain HTTP")
            raise UserError(msg)
        check_kinds(self.kinds)
        check_shard(self.shard)
        check_families(self.metrics_allowlist)
        check_families(self.metrics_denylist)
        check_resource_labels(self.resource_labels)
        unknown = [label for label in self.drop_info_labels if label not in INFO_LABELS]
        if unknown:
            msg = f"unknown info label(s) {', '.join(unknown)}; droppable: {', '.join(INFO_LABELS)}"
            raise UserError(msg)
        if self.object_limit < 0:
            msg = f"the object limit is a count (0 or more), not {self.object_limit}"
            raise UserError(msg)

    @property
    def families(self) -> frozenset[MetricFamily] | None:
        """The metric families exposed: the allow-list (or all) minus the deny-list; None: all of them."""
        if not self.metrics_allowlist and not self.metrics_denylist:
            return None
        return frozenset(self.metrics_allowlist or METRIC_FAMILIES) - frozenset(self.metrics_denylist)

    def summary(self) -> dict[str, Any]:
        """The effective settings for the start-up log line (nothing secret is in here)."""
        data = asdict(self)
        mapping = self.tenancy.tenant_mapping
        data["tenancy"]["tenant_mapping"] = str(mapping) if mapping else None
        data["tls"] = {k: str(v) if isinstance(v, Path) else v for k, v in data["tls"].items()}
        return data


@dataclass(frozen=True)
class GetQuery:
    """What ``get`` prints."""

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

    def __post_init__(self) -> None:
        """Check that the name and the tenant go with ``what``."""
        if self.what == "tenant" and not self.name:
            raise UserError("`get tenant` needs the tenant's name: get tenant NAME")
        if self.what != "tenant" and self.name:
            msg = f"`get {self.what}` takes no name (got {self.name!r}); for one tenant use -t/--tenant or get tenant"
            raise UserError(msg)
        if self.what == "tenants" and self.tenant:
            raise UserError("`get tenants` lists every tenant; for one, use: get tenant NAME")


@dataclass(frozen=True)
class GetSettings:
    """``get``: a terminal view from a running exporter (``url``) or an in-process watcher (``watcher``)."""

    query: GetQuery = field(default_factory=GetQuery)
    #: a running exporter to read; None: run the watcher in-process with ``watcher``
    url: str | None = None
    #: how often ``--watch`` reads ``url`` again
    interval: float = 2.0
    #: the in-process watcher's settings (its HTTP server listens on an ephemeral loopback port)
    watcher: ServeSettings = field(default_factory=lambda: ServeSettings(listen_address="127.0.0.1", port=0))
    #: the bearer token sent to ``url`` (or a file holding it, read again on every request); neither: the
    #: kubeconfig context's credentials, once the exporter asks for a token (a 401)
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    #: the CA that signed the exporter's certificate (an https ``url`` with a private CA)
    certificate_authority: Path | None = None

    def __post_init__(self) -> None:
        """Check the URL's scheme, the interval and the token options."""
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            msg = f"--url {self.url!r}: want http://host:port (a running flux-tenant-exporter)"
            raise UserError(msg)
        if self.interval <= 0:
            raise UserError("--interval must be positive")
        if self.token is not None and self.token_file is not None:
            raise UserError("--token and --token-file: give one of them")
        if (self.token is not None or self.token_file is not None) and self.url is None:
            raise UserError("--token and --token-file go with --url (without it, get uses the kubeconfig)")

    @property
    def log(self) -> LogSettings:
        """The log settings (the watcher's)."""
        return self.watcher.log


@dataclass(frozen=True)
class ReportSettings:
    """``report``: classify a ``kubectl get ... -o json`` dump offline."""

    #: a JSON or YAML file, ``-`` for stdin
    input: str = "-"
    format: ReportFormat = "json"
    tenancy: TenancySettings = field(default_factory=TenancySettings)
    thresholds: StuckThresholds = field(default_factory=StuckThresholds)
    resource_labels: tuple[str, ...] = ()
    log: LogSettings = field(default_factory=LogSettings)


@dataclass(frozen=True)
class DemoSettings:
    """``demo`` (the development harness): a local cluster with a demo fleet, served with ``serve``."""

    serve: ServeSettings = field(default_factory=ServeSettings)
    #: print the /tenants summary and the time to ready, then stop (for scripts)
    exit_after_ready: bool = False

    @property
    def log(self) -> LogSettings:
        """The log settings (the served exporter's)."""
        return self.serve.log


#: the settings of any command
CommandSettings = ServeSettings | GetSettings | ReportSettings | DemoSettings
