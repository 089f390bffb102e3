"""The failure taxonomy over real Flux message shapes, and the state semantics of fluxcd/pkg conditions.

Each case names where its shape comes from: a controller source file (KC = kustomize-controller,
HC = helm-controller, SC = source-controller, pkg = fluxcd/pkg) with its release, or a GitHub issue where a
user pasted it.
"""

from __future__ import annotations

import time

import pytest

from flux_tenant_exporter.base.config import StuckThresholds
from flux_tenant_exporter.base.vocabulary import CATEGORIES
from flux_tenant_exporter.flux.classify import RULES, categorize, classify
from flux_tenant_exporter.flux.projection import parse_object
from testbed import fleet

CASES: list[tuple[str, str, str, str, str]] = [
    # (kind, reason, message, expected category, source)
    # cluster_scoped_in_tenant
    ("Kustomization", "ReconciliationFailed",
     'CustomResourceDefinition/alerts.notification.toolkit.fluxcd.io dry-run failed, reason: Forbidden, error: '
     'customresourcedefinitions.apiextensions.k8s.io "alerts.notification.toolkit.fluxcd.io" is forbidden: User '
     '"system:serviceaccount:test-flux-system:default" cannot patch resource "customresourcedefinitions" in API '
     'group "apiextensions.k8s.io" at the cluster scope',
     "cluster_scoped_in_tenant", "fluxcd/website#1346 (Flux v0.38)"),
    ("Kustomization", "ReconciliationFailed",
     'ClusterRole/tenant-reader dry-run failed (Forbidden): clusterroles.rbac.authorization.k8s.io "tenant-reader" '
     'is forbidden: User "system:serviceaccount:team-a:flux" cannot patch resource "clusterroles" in API group '
     '"rbac.authorization.k8s.io" at the cluster scope',
     "cluster_scoped_in_tenant", "pkg ssa/errors DryRunErr format since KC v1.2"),
    ("Kustomization", "ReconciliationFailed",
     'Namespace/apps dry-run failed, reason: Forbidden, error: namespaces "apps" is forbidden: User '
     '"system:serviceaccount:flux-system:default" cannot patch resource "namespaces" in API group "" in the '
     'namespace "apps"',
     "cluster_scoped_in_tenant", "fluxcd/flux2-multi-tenancy#69 (Namespace objects name their own namespace)"),
    ("Kustomization", "ReconciliationFailed",
     "Deployment/podinfo namespace not specified, error: the server could not find the requested resource",
     "cluster_scoped_in_tenant", "fluxcd/flux2#1939 (KC v0.15)"),
    ("Kustomization", "ReconciliationFailed",
     "ConfigMap/my-configmap-8db58hd92d namespace not specified: the server could not find the requested resource\n",
     "cluster_scoped_in_tenant", "fluxcd/flux2#4301 (Flux v2.1)"),
    # cross_namespace_ref_denied
    ("Kustomization", "AccessDenied",
     "can't access 'GitRepository/my-other-namespace/my-source', cross-namespace references have been blocked",
     "cross_namespace_ref_denied", "KC getSource(), fluxcd/kustomize-controller#549"),
    ("HelmRelease", "AccessDenied",
     "cross-namespace references are not allowed: cannot access HelmChart flux-system/podinfo",
     "cross_namespace_ref_denied", "HC internal/acl/acl.go (v1.x)"),
    # rbac_forbidden
    ("Kustomization", "ReconciliationFailed",
     'Deployment/team-a/app dry-run failed (Forbidden): deployments.apps "app" is forbidden: User '
     '"system:serviceaccount:team-a:flux" cannot patch resource "deployments" in API group "apps" in the '
     'namespace "team-a"',
     "rbac_forbidden", "pkg ssa DryRunErr (KC v1.2+)"),
    ("HelmRelease", "GetLastReleaseFailed", "failed to get last release revision",
     "rbac_forbidden", "fluxcd/helm-controller#498 (HC v0.22)"),
    ("HelmRelease", "StateError",
     "Could not determine release state: failed to retrieve last release from storage: query: failed to query "
     'with labels: secrets is forbidden: User "system:serviceaccount:team-a:flux" cannot list resource "secrets" '
     'in API group "" in the namespace "team-a"',
     "rbac_forbidden", "HC internal/reconcile/atomic_release.go + state.go (v1.x)"),
    ("HelmRelease", "PendingRelease",
     "Unlock of Helm release monitoring/base.v1 with chart job@0.1.3 in pending-install state failed: update: failed "
     'to update: secrets "sh.helm.release.v1.base.v1" is forbidden: User "system:serviceaccount:monitoring:monitoring"'
     ' cannot update resource "secrets" in API group "" in the namespace "monitoring"',
     "rbac_forbidden", "hmcts/cnp-flux-config#33772 (HC v1.x)"),
    # source_not_found
    ("Kustomization", "ArtifactFailed", "Source 'GitRepository/flux-system/podinfo' not found",
     "source_not_found", "KC v0.14 controllers/kustomization_controller.go"),
    ("Kustomization", "ArtifactFailed",
     "unable to get source 'flux-system/podinfo': GitRepository.source.toolkit.fluxcd.io \"podinfo\" not found",
     "source_not_found", "KC internal/controller/kustomization_controller.go getSource() (v1.x)"),
    ("HelmRelease", "ArtifactFailed",
     'could not get Source object: OCIRepository.source.toolkit.fluxcd.io "podinfo" not found',
     "source_not_found", "HC internal/controller/helmrelease_controller.go (v1.x, chartRef)"),
    ("HelmChart", "SourceUnavailable",
     'failed to get source: HelmRepository.source.toolkit.fluxcd.io "podinfo" not found',
     "source_not_found", "SC internal/controller/helmchart_controller.go (v1.x)"),
    ("Kustomization", "ArtifactFailed", 'GitRepository.source.toolkit.fluxcd.io "nowhere" not found',
     "source_not_found", "real KC v1.9.5 (tests/data/flux-corpus.json, case missing-source)"),
    # source_not_ready
    ("HelmChart", "NoSourceArtifact", "no artifact available for HelmRepository source 'charts'",
     "source_not_ready", "real SC v1.9.5 (tests/data/flux-corpus.json): before the HelmRepository has its index"),
    ("Kustomization", "ArtifactFailed", "Source artifact not found, retrying in 30s",
     "source_not_ready", "KC internal/controller/kustomization_controller.go (v1.x)"),
    ("Kustomization", "ArtifactFailed", "Source is not ready, artifact not found",
     "source_not_ready", "fluxcd/flux2#1545 (KC v0.2x)"),
    ("HelmRelease", "ArtifactFailed", "HelmChart 'flux-system/flux-system-podinfo' is not ready",
     "source_not_ready", "HC v0.36 helmrelease_controller.go (v2beta1)"),
    ("HelmRelease", "SourceNotReady",
     "HelmChart 'default/default-test' is not ready: latest generation of object has not been reconciled",
     "source_not_ready", "fluxcd/helm-controller#1252 (HC v1.x)"),
    ("HelmRelease", "SourceNotReady",
     "HelmChart 'flux-system/pact-broker' is not ready: chart pull error: failed to download chart for remote "
     "reference: failed to get 'oci://example.azurecr.io/helm/pact-broker:0.16.0': not found",
     "source_not_ready", "hmcts/cnp-flux-config#45226 (the HelmChart is the root)"),
    ("HelmRelease", "SourceNotReady", "OCIRepository 'apps/podinfo' is not ready: does not have an artifact",
     "source_not_ready", "HC isSourceReady() (v1.x)"),
    # dependency_not_ready
    ("Kustomization", "DependencyNotReady", "dependency 'flux-system/infra' is not ready",
     "dependency_not_ready", "KC internal/controller/kustomization_controller.go (v1.x)"),
    ("Kustomization", "DependencyNotReady", "dependency 'flux-system/crds' revision is not up to date",
     "dependency_not_ready", "KC checkDependencies() (v1.x)"),
    ("HelmRelease", "DependencyNotReady",
     "unable to get 'flux-system/cert-manager' dependency: HelmRelease.helm.toolkit.fluxcd.io \"cert-manager\" not "
     "found", "dependency_not_ready", "HC v1.x checkDependencies()"),
    # crd_missing
    ("Kustomization", "ReconciliationFailed",
     'UptimeRobotMonitor/apps/changedetection dry-run failed, error: no matches for kind "UptimeRobotMonitor" in '
     'version "uroperator.brennerm.github.io/v1beta1"', "crd_missing", "brennerm/uptimerobot-operator#25 (KC v0.1x)"),
    ("Kustomization", "ReconciliationFailed",
     'PodMonitor/monitoring/flux-system dry-run failed: no matches for kind "PodMonitor" in version '
     '"monitoring.coreos.com/v1"', "crd_missing", "pkg ssa (KC v1.x format)"),
    ("HelmRelease", "InstallFailed",
     "Helm install failed for release vikunja/vikunja with chart vikunja@15.2.8: unable to build kubernetes objects "
     'from release manifest: resource mapping not found for name: "vikunja-cnpg-main" namespace: "vikunja" from "": '
     'no matches for kind "Cluster" in version "postgresql.cnpg.io/v1"\nensure CRDs are installed first',
     "crd_missing", "HC v1.x install failure wrapping a Helm mapping error"),
    # webhook_failed
    ("Kustomization", "ReconciliationFailed",
     "Deployment/lab/tst-nginx dry-run failed, reason: InternalError: Internal error occurred: failed calling webhook "
     '"mutate.kyverno.svc-fail": failed to call webhook: Post "https://kyverno-svc.kyverno.svc:443/mutate/fail?'
     'timeout=20s": context deadline exceeded', "webhook_failed", "kyverno/kyverno#7378 (KC v1.0)"),
    ("Kustomization", "ReconciliationFailed",
     "CouchbaseBucket/couchbase/blocker dry-run failed, reason: BadRequest, error: admission webhook "
     '"couchbase-operator-couchbase-admission-controller.couchbase.svc" does not support dry run',
     "webhook_failed", "fluxcd/flux2#4073"),
    ("Kustomization", "ReconciliationFailed",
     'Certificate/apps/web dry-run failed (InternalError): Internal error occurred: failed calling webhook '
     '"webhook.cert-manager.io": failed to call webhook: Post "https://cert-manager-webhook.cert-manager.svc:443/'
     'mutate?timeout=10s": tls: failed to verify certificate: x509: certificate signed by unknown authority',
     "webhook_failed", "pkg ssa DryRunErr + cert-manager webhook text"),
    # validation_failed
    ("Kustomization", "ReconciliationFailed",
     'Service/xxx/metrics dry-run failed, reason: Invalid, error: Service "metrics" is invalid: '
     "[spec.clusterIPs[0]: Invalid value: []string(nil): primary clusterIP can not be unset]",
     "validation_failed", "fluxcd/flux2#2386 (Flux v0.27)"),
    ("Kustomization", "ReconciliationFailed",
     'DaemonSet/jhub/eosfuse dry-run failed, reason: Invalid: DaemonSet.apps "eosfuse" is invalid: spec.selector: '
     "Invalid value: v1.LabelSelector{}: field is immutable", "validation_failed", "vre-hub/vre#212 (KC v1.0)"),
    ("Kustomization", "ReconciliationFailed",
     "TargetGroupBinding/kube-system/tgb dry-run failed, reason: TargetGroupBinding update may not change these "
     'fields: spec.targetGroupARN, error: admission webhook "vtargetgroupbinding.elbv2.k8s.aws" denied the request: '
     "TargetGroupBinding update may not change these fields: spec.targetGroupARN",
     "validation_failed", "fluxcd/kustomize-controller#834 (a webhook denying is a policy, not a broken webhook)"),
    ("Kustomization", "ReconciliationFailed",
     'Pod/apps/x dry-run failed (Forbidden): pods "x" is forbidden: exceeded quota: compute-resources, requested: '
     "limits.cpu=2, used: limits.cpu=8, limited: limits.cpu=8", "validation_failed",
     "kube-apiserver ResourceQuota admission text (a quota error says forbidden, but is not RBAC)"),
    ("HelmRelease", "UpgradeFailed",
     "Helm upgrade failed for release ingress/traefik with chart traefik@39.0.1: values don't meet the "
     "specifications of the schema(s) in the following chart(s):\ntraefik:\n- at '': additional properties "
     "'replicas' not allowed", "validation_failed", "HC v1.x upgrade with a values schema error"),
    # health_check_failed
    ("Kustomization", "HealthCheckFailed",
     "Health check failed after 2m0.013489487s, timeout waiting for: [HelmRelease/wpb-services/httpbin status: "
     "'InProgress']", "health_check_failed", "fluxcd/kustomize-controller#709 (KC v0.26)"),
    ("Kustomization", "HealthCheckFailed",
     "health check failed after 10m0.052705702s: timeout waiting for: [Deployment/backstage/catalogue status: "
     "'InProgress']", "health_check_failed", "KC v1.2+ lower-case format"),
    ("Kustomization", "HealthCheckFailed",
     "health check failed after 1m3.2s: failed early due to stalled resources: [Deployment/apps/podinfo status: "
     "'Failed': Progress deadline exceeded]", "health_check_failed", "pkg ssa manager_wait.go fail-fast (Flux 2.1+)"),
    ("HelmRelease", "InstallFailed",
     "Helm install failed for release commerce/lago with chart lago@1.28.0: failed early due to stalled resources: "
     "[Deployment/commerce/lago-billing-worker status: 'Failed']", "health_check_failed",
     "HC v1.x kstatus waiter"),
    # build_failed
    ("Kustomization", "BuildFailed",
     "kustomize build failed: accumulating resources: accumulation err='accumulating resources from "
     "'namespace_pass.yaml': open /tmp/kustomization-2520510114/fixtures/namespace_pass.yaml: no such file or "
     "directory': must build at directory: not a valid directory", "build_failed",
     "flanksource/canary-checker#1643"),
    ("Kustomization", "BuildFailed",
     "post build failed for 'CustomResourceDefinition.v1.apiextensions.k8s.io/x': envsubst error: variable "
     'substitution failed: variable not set (strict mode): "var"', "build_failed", "fluxcd/flux2#5967 (Flux 2.9)"),
    ("Kustomization", "BuildFailed", "kustomize build failed: yaml: line 3: did not find expected key",
     "build_failed", "KC v1.x build error"),
    ("Kustomization", "BuildFailed", "var substitution failed for 'podinfo': missing closing brace",
     "build_failed", "KC v0.14 format"),
    ("Kustomization", "ArtifactFailed",
     "kustomization path not found: stat /tmp/kustomization-2361775758/no-such-dir: no such file or directory",
     "build_failed", "real KC v1.9.5 (tests/data/flux-corpus.json, case missing-path): the source is fine"),
    # decryption_failed
    ("Kustomization", "BuildFailed",
     "decryption failed for 'metrics-collector-config': LoadEncryptedFile: sops metadata not found",
     "decryption_failed", "fluxcd/flux2#2145 (v0.23)"),
    ("Kustomization", "BuildFailed",
     "decryption failed for 'basic-auth': failed to decrypt and format 'flux-system/basic-auth' Secret data: cannot "
     "get sops data key: Failed to get the data key required to decrypt the SOPS file.\n\nGroup 0: FAILED",
     "decryption_failed", "fluxcd/flux2#5154 (2025)"),
    ("Kustomization", "BuildFailed",
     "cannot get sops decryption Secret 'flux-system/sops-age': secrets \"sops-age\" not found",
     "decryption_failed", "KC internal/decryptor/decryptor.go (v1.x)"),
    ("Kustomization", "ReconciliationFailed",
     "Secret/apps/db is SOPS encrypted, configuring decryption is required for this secret to be reconciled",
     "decryption_failed", "KC kustomization_controller.go (v0.3x+)"),
    # source_auth_failed
    ("GitRepository", "GitOperationFailed",
     "failed to checkout and determine revision: unable to clone 'https://github.com/org/app.git': authentication "
     "required", "source_auth_failed", "fluxcd/flux2#3301 (SC v1.x)"),
    ("GitRepository", "GitOperationFailed",
     "failed to checkout and determine revision: unable to clone 'ssh://git@github.com/myrepo': ssh: handshake "
     "failed: knownhosts: key mismatch", "source_auth_failed", "fluxcd/flux2#3774 (v2.0.0-rc.1)"),
    ("GitRepository", "AuthenticationFailed",
     "failed to get secret 'flux-system/flux-system': secrets \"flux-system\" not found",
     "source_auth_failed", "SC gitrepository_controller.go (v1.x)"),
    ("OCIRepository", "OCIArtifactPullFailed",
     'failed to determine artifact digest: Get "https://harbor.example.com/v2/": x509: certificate signed by unknown '
     "authority", "source_auth_failed", "fluxcd/source-controller#1673"),
    ("OCIRepository", "OCIArtifactPullFailed",
     "failed to determine artifact digest: GET https://ghcr.io/token?scope=repository:org/manifests:pull&"
     "service=ghcr.io: DENIED: denied", "source_auth_failed", "devantler-tech/platform#1347"),
    ("HelmRepository", "Failed",
     "failed to fetch Helm repository index: failed to cache index to temporary file: failed to fetch "
     "https://artifactory.example.com/helm/index.yaml : 403 Forbidden", "source_auth_failed",
     "fluxcd/source-controller#976"),
    ("Bucket", "BucketOperationFailed", "failed to confirm existence of 'fluxcd' bucket: Access Denied.",
     "source_auth_failed", "fluxcd/source-controller#954"),
    # source_ref_not_found
    ("GitRepository", "GitOperationFailed",
     "failed to checkout and determine revision: unable to clone 'ssh://git@github.com/my-repo': couldn't find "
     'remote ref "refs/heads/master"', "source_ref_not_found", "controlplaneio-fluxcd/flux-operator#284"),
    ("GitRepository", "GitOperationFailed", "failed to checkout and determine revision: no match found for semver: "
     ">=9.0.0", "source_ref_not_found", "pkg git/gogit/clone.go"),
    ("OCIRepository", "OCIArtifactPullFailed",
     "failed to determine artifact digest: GET https://ghcr.io/v2/stefanprodan/charts/podinfo/manifests/6.0.0: "
     "MANIFEST_UNKNOWN: manifest unknown", "source_ref_not_found", "fluxcd/flux2#5329"),
    ("HelmRepository", "IndexationFailed",
     "failed to fetch https://stefanprodan.github.io/podinfo2/index.yaml : 404 Not Found",
     "source_ref_not_found", "fluxcd/flux2#821 (SC v0.x)"),
    # source_unreachable
    ("GitRepository", "GitOperationFailed",
     "unable to clone 'ssh://git@github.com/my_org/fleet-infra', error: dial tcp: lookup github.com on "
     "10.100.0.10:53: read udp 192.168.78.214:47218->10.100.0.10:53: i/o timeout", "source_unreachable",
     "fluxcd/flux2#1494 (v0.14)"),
    ("HelmRepository", "IndexationFailed",
     'failed to download repository index: Get "https://charts.bitnami.com/bitnami/index.yaml": dial tcp: lookup '
     "charts.bitnami.com on 10.43.0.10:53: server misbehaving", "source_unreachable", "fluxcd/source-controller#192"),
    ("HelmRepository", "Failed",
     "failed to fetch Helm repository index: failed to cache index to temporary file: failed to fetch "
     "https://charts.example.com/index.yaml : 503 Service Unavailable", "source_unreachable", "SC v1.x index fetch"),
    # chart_failed
    ("HelmChart", "InvalidChartReference",
     "invalid chart reference: failed to get chart version for remote reference: no 'podinfo' chart with version "
     "matching '9.9.9' found", "chart_failed", "SC internal/helm/repository/chart_repository.go (v1.x)"),
    ("HelmChart", "ChartPullError",
     "chart pull error: failed to get chart version for remote reference: no chart name found",
     "chart_failed", "fluxcd/helm-controller#429 (Flux v0.27)"),
    ("HelmChart", "ChartPullFailed", "no chart version found for podinfo-9.0.0", "chart_failed",
     "fluxcd/website#847 (SC v0.1x)"),
    ("HelmChart", "ChartPackageError", "chart package error: failed to load chart: Chart.yaml file is missing",
     "chart_failed", "SC internal/helm/chart/errors.go"),
    ("HelmChart", "ChartPullError",
     'chart pull error: failed to download chart for remote reference: Get "https://charts.fairwinds.com/stable/'
     'polaris-5.6.0.tgz": EOF', "chart_failed", "fluxcd/helm-controller#541"),
    # helm_release_failed
    ("HelmRelease", "InstallFailed", "install retries exhausted", "helm_release_failed",
     "fluxcd/helm-controller#289 (v2beta1)"),
    ("HelmRelease", "UpgradeFailed", "upgrade retries exhausted", "helm_release_failed",
     "fluxcd/kustomize-controller#701 (v2beta1)"),
    ("HelmRelease", "UpgradeFailed",
     "Helm upgrade failed for release midwestmtg/backend with chart backend@0.1.13: pre-upgrade hooks failed: 1 "
     "error occurred", "helm_release_failed", "HC v1.x fmtUpgradeFailure"),
    ("HelmRelease", "TestFailed",
     "Helm test failed for release podinfo/podinfo.v1 with chart podinfo@6.5.3: 1 error occurred:\n\t* pod "
     "podinfo-fault-test-a0tew failed", "helm_release_failed", "HC v1.x docs test data"),
    ("HelmRelease", "ValuesError",
     "could not resolve Secret chart values reference 'apps/podinfo-values' with key 'values.yaml': secrets "
     '"podinfo-values" not found', "helm_release_failed", "pkg chartutil/values.go ErrValuesReference"),
    ("HelmRelease", "UpgradeFailed",
     "Helm upgrade failed for release coder/coder-coder with chart coder@2.28.3: context deadline exceeded",
     "helm_release_failed", "HC v1.x (a Helm deadline is a release failure)"),
    ("HelmRelease", "RollbackFailed",
     "Helm rollback to previous release temporal/temporal.v30 with chart temporal@1.6.0 failed: release "
     "temporal failed", "helm_release_failed", "HC v1.x rollback"),
    # timeout
    ("Kustomization", "ReconciliationFailed",
     'Deployment/apps/x apply failed: Patch "https://10.0.0.1:443/apis/apps/v1/namespaces/apps/deployments/x?'
     'fieldManager=kustomize-controller": context deadline exceeded', "timeout", "pkg ssa apply error + client-go"),
    ("Kustomization", "ReconciliationFailed", "apply timeout: context deadline exceeded", "timeout",
     "KC v0.14 (pre-SSA)"),
    # The image, notification, source-watcher and operator kinds. IRC = image-reflector-controller v1.2.0,
    # IAC = image-automation-controller v1.2.1, NC = notification-controller v1.9.3, SW = source-watcher v2.2.1:
    # the Go module proxy refuses these controllers, so these shapes are written from their code (the format
    # strings of the files named). FO = flux-operator v0.59.0, run on the testbed (tests/test_real_operator.py).
    ("ImageRepository", "ReadOperationFailed",
     "scan failed: GET https://registry.example.com/v2/team-a/app/tags/list?n=1000: UNAUTHORIZED: authentication "
     "required; [map[Action:pull Class: Name:team-a/app Type:repository]]",
     "source_auth_failed", "IRC internal/controller/imagerepository_controller.go (written from code)"),
    ("ImageRepository", "AuthenticationFailed",
     'failed to configure authentication options: secrets "regcred" not found',
     "source_auth_failed", "IRC internal/registry/options.go (written from code)"),
    ("ImageRepository", "ReadOperationFailed",
     'scan failed: Get "https://registry.example.com/v2/": dial tcp 10.0.0.9:443: connect: connection refused',
     "source_unreachable", "IRC imagerepository_controller.go (written from code)"),
    ("ImageRepository", "ReadOperationFailed",
     "scan failed: GET https://registry.example.com/v2/team-a/nope/tags/list?n=1000: NAME_UNKNOWN: repository "
     "name not known to registry", "source_ref_not_found", "IRC imagerepository_controller.go (written from code)"),
    ("ImageRepository", "ImageURLInvalid", "image 'https://ghcr.io/a/b' should not include URL scheme; remove "
     "'https://'", "validation_failed", "IRC imagerepository_controller.go (written from code)"),
    ("ImagePolicy", "DependencyNotReady",
     "failed to get the referred ImageRepository: referenced ImageRepository does not exist: "
     'imagerepositories.image.toolkit.fluxcd.io "app" not found',
     "source_not_found", "IRC internal/controller/imagepolicy_controller.go (written from code)"),
    ("ImagePolicy", "DependencyNotReady", "retrying in 30s error: no tags in database",
     "source_not_ready", "IRC imagepolicy_controller.go (written from code)"),
    ("ImagePolicy", "Failure", "unable to determine latest version from provided list",
     "source_ref_not_found", "IRC internal/policy/semver.go (written from code)"),
    ("ImagePolicy", "InvalidPolicy", "invalid policy: improper constraint: >=1.0 <",
     "validation_failed", "IRC imagepolicy_controller.go (written from code)"),
    ("ImageUpdateAutomation", "SourceManagerFailed",
     "failed configuring source manager: referenced git repository does not exist: "
     'gitrepositories.source.toolkit.fluxcd.io "app" not found',
     "source_not_found", "IAC internal/source/source.go (written from code)"),
    ("ImageUpdateAutomation", "GitOperationFailed",
     "failed to update source: failed to push to remote: command error on refs/heads/main: protected branch hook "
     "declined", "push_failed", "IAC imageupdateautomation_controller.go, pkg git/gogit/client.go (written from code)"),
    ("ImageUpdateAutomation", "GitOperationFailed",
     "failed to checkout source: unable to clone 'https://git.example.com/team-a/app': authentication required",
     "source_auth_failed", "IAC internal/source/git.go (written from code)"),
    ("ImageUpdateAutomation", "GitOperationFailed",
     "failed to update source: unable to create commit message template from spec: template: commit message:1: "
     'unexpected "}" in operand', "validation_failed", "IAC internal/source/source.go (written from code)"),
    ("Receiver", "TokenNotFound",
     "unable to read token from secret 'team-a/webhook-token' error: secrets \"webhook-token\" not found",
     "reference_not_found", "NC internal/controller/receiver_controller.go (written from code)"),
    ("Alert", "ReferenceNotFound",
     "Provider team-a/slack named in its spec does not exist (derived by the exporter: Alerts have no status)",
     "reference_not_found", "derived by the exporter (state.store): Alerts have no status (NC api/v1beta3)"),
    ("Provider", "MissingSecretRef",
     "a Provider of type github needs a token from a Secret, and spec.secretRef names none (derived by the "
     "exporter: Providers have no status)", "validation_failed",
     "derived by the exporter (flux.kindspecs) from NC internal/notifier/github_helpers.go"),
    ("ArtifactGenerator", "SourceFetchFailed",
     'get sources failed: gitrepositories.source.toolkit.fluxcd.io "app" not found',
     "source_not_found", "SW internal/controller/artifactgenerator_controller.go (written from code)"),
    ("ArtifactGenerator", "SourceFetchFailed", "get sources failed: source 'GitRepository/team-a/app' is not ready",
     "source_not_ready", "SW artifactgenerator_controller.go (written from code)"),
    ("ArtifactGenerator", "BuildFailed",
     "app build failed: failed to apply copy operations: failed to apply copy operation from '@app/deploy/*' to "
     "'@artifact/': no files match pattern 'deploy/*' in source 'app'", "build_failed",
     "SW internal/builder/builder.go (written from code)"),
    ("ResourceSet", "BuildFailed",
     "failed to compute inputs: failed to get provider tenant-a/does-not-exist: "
     'ResourceSetInputProvider.fluxcd.controlplane.io "does-not-exist" not found', "source_not_found",
     "FO v0.59.0 on the testbed"),
    ("ResourceSet", "BuildFailed",
     "build failed: failed to build resources[0]: failed to parse template: template: resourceset:4: function "
     '"nosuchfunc" not defined', "build_failed", "FO v0.59.0 on the testbed"),
    ("ResourceSet", "DependencyNotReady",
     "Retrying dependency check: dependency kustomize.toolkit.fluxcd.io/v1/Kustomization/team-a/base not ready",
     "dependency_not_ready", "FO internal/controller/resourceset_controller.go (written from code)"),
    ("ResourceSetInputProvider", "ReconciliationFailed",
     "failed to read secret 'team-a/github-auth': secrets \"github-auth\" not found", "source_auth_failed",
     "FO internal/controller/resourcesetinputprovider_controller.go (written from code)"),
    ("FluxInstance", "ArtifactFailed",
     "fetch failed: pulling artifact oci://ghcr.io/controlplaneio-fluxcd/flux-operator-manifests:latest failed: "
     "GET https://ghcr.io/token?scope=repository: DENIED: denied", "source_auth_failed",
     "FO internal/builder/pull.go (written from code)"),
    # api_version_not_served: crd_missing refined by discovery (tests/test_kinds.py)
    # unknown
    ("Kustomization", "ReconciliationFailed", "something nobody has seen before", "unknown", "(none)"),
]


@pytest.mark.parametrize(("kind", "reason", "message", "expected", "source"), CASES,
                         ids=[f"{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_real_message_shapes_get_their_category(kind: str, reason: str, message: str, expected: str,
                                                source: str) -> None:
    """A real message shape (see ``source``) is classified into the expected category."""
    assert categorize(kind, reason, (message,)) == expected, source


def test_every_failure_category_is_covered_by_a_case() -> None:
    """The case table exercises every category a message can produce."""
    produced = {c[3] for c in CASES}
    message_categories = {r.category for r in RULES} | {"unknown"}
    assert message_categories <= produced
    # api_version_not_served comes from crd_missing and discovery (tests/test_kinds.py), not from a message alone
    assert set(CATEGORIES) - produced == {"suspended", "progressing", "api_version_not_served"}


NOW = time.time()
T = StuckThresholds()


def _obj(status: dict[str, object] | None, **spec: object) -> object:
    raw = fleet.kustomization("team-a", "app")
    raw["metadata"] |= {"generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"}
    raw["spec"] |= spec
    if status is not None:
        raw["status"] = status
    return parse_object(raw)


def _classify(status: dict[str, object] | None, **spec: object) -> object:
    return classify(_obj(status, **spec), thresholds=T, observed_at=time.time(), lag_since=None)  # type: ignore[arg-type]


def test_ready_true_is_ready_with_no_category() -> None:
    """Ready=True, not reconciling, observedGeneration current: ready, category null."""
    verdict = _classify(fleet.ready_status("Kustomization"))
    assert (verdict.state, verdict.category) == ("ready", None)  # type: ignore[attr-defined]


def test_suspend_wins_over_everything() -> None:
    """spec.suspend: suspended (Flux writes no condition for it)."""
    verdict = _classify(fleet.failed_status("BuildFailed", "kustomize build failed"), suspend=True)
    assert (verdict.state, verdict.category) == ("suspended", "suspended")  # type: ignore[attr-defined]


def test_stalled_is_failing_and_stuck_at_once() -> None:
    """Stalled=True (and not Reconciling) is terminal: failing and stuck from its transition time."""
    status = fleet.failed_status("AccessDenied", "cross-namespace references have been blocked", stalled=True,
                                 since=fleet.ago(seconds=5))
    verdict = _classify(status)
    assert verdict.state == "failing"  # type: ignore[attr-defined]
    assert verdict.category == "cross_namespace_ref_denied"  # type: ignore[attr-defined]
    assert verdict.stuck_reason == "stalled"  # type: ignore[attr-defined]
    assert verdict.stuck_at <= time.time()  # type: ignore[attr-defined]


def test_stalled_while_reconciling_is_not_stalled() -> None:
    """fluxcd/pkg: IsStalled needs Reconciling False or absent."""
    status = fleet.failed_status("BuildFailed", "kustomize build failed: yaml: line 1", stalled=True, reconciling=True)
    verdict = _classify(status)
    assert verdict.stuck_reason is None or verdict.stuck_reason != "stalled"  # type: ignore[attr-defined]
    assert verdict.category == "build_failed"  # type: ignore[attr-defined]


def test_ready_unknown_is_progressing_within_timeout_plus_margin() -> None:
    """Reconciling within spec.timeout + margin: progressing, stuck only after that budget."""
    status = fleet.progressing_status(since=fleet.ago(minutes=1))
    verdict = _classify(status, timeout="5m")
    assert (verdict.state, verdict.category) == ("progressing", "progressing")  # type: ignore[attr-defined]
    started = verdict.since  # type: ignore[attr-defined]
    assert verdict.stuck_at == pytest.approx(started + 300 + T.progressing_margin)  # type: ignore[attr-defined]


def test_no_ready_condition_is_unknown() -> None:
    """No Ready condition (never reconciled): unknown."""
    verdict = _classify(None)
    assert (verdict.state, verdict.category) == ("unknown", "unknown")  # type: ignore[attr-defined]


def test_new_generation_not_observed_is_progressing() -> None:
    """Ready=True for an older generation: progressing (the new spec is not applied yet)."""
    status = fleet.ready_status("Kustomization")
    raw = fleet.kustomization("team-a", "app")
    raw["metadata"]["generation"] = 2
    raw["status"] = status
    verdict = classify(parse_object(raw), thresholds=T, observed_at=NOW, lag_since=NOW - 3600)
    assert verdict.state == "progressing"
    assert verdict.stuck_reason == "generation_not_observed"
    assert verdict.stuck_at == NOW - 3600 + T.generation_lag


def test_unhandled_reconcile_request_makes_a_ready_object_stuck() -> None:
    """A requestedAt annotation not acknowledged in lastHandledReconcileAt for too long is stuck."""
    raw = fleet.kustomization("team-a", "app")
    raw["metadata"]["annotations"] = {"reconcile.fluxcd.io/requestedAt": "2026-01-01T00:00:00Z"}
    raw["status"] = fleet.ready_status("Kustomization") | {"lastHandledReconcileAt": "2025-12-31T00:00:00Z"}
    verdict = classify(parse_object(raw), thresholds=T, observed_at=NOW, lag_since=None)
    assert verdict.state == "ready"
    assert verdict.stuck_reason == "reconcile_request_unhandled"
    raw["status"]["lastHandledReconcileAt"] = "2026-01-01T00:00:00Z"
    assert classify(parse_object(raw), thresholds=T, observed_at=NOW, lag_since=None).stuck_at is None


def test_source_failure_uses_the_longer_source_threshold() -> None:
    """Sources get stuck after the source threshold (30 min), appliers after 15 min."""
    since = fleet.ago(minutes=20)
    raw = fleet.gitrepository("team-a", "repo")
    raw["status"] = fleet.failed_status("GitOperationFailed", "authentication required", since=since)
    verdict = classify(parse_object(raw), thresholds=T, observed_at=NOW, lag_since=None)
    assert verdict.stuck_at == pytest.approx(since.timestamp() + T.source_not_ready)
