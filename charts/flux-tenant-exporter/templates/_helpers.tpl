{{- define "fte.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fte.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "fte.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "fte.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fte.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fte.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* The label telling the Deployments (and pods) of the shards apart. */}}
{{- define "fte.shardLabel" -}}
flux-tenant-exporter/shard
{{- end -}}

{{- define "fte.labels" -}}
{{ include "fte.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- /* helm-controller appends +<digest> to the version of a chart from an OCIRepository: not a label value */}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "fte.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fte.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The exporter's flags from .Values.config: --kebab-case=value, lists comma-joined, booleans --x / --no-x. */}}
{{- define "fte.args" -}}
- serve
- --port={{ .Values.port }}
{{- range $key, $value := .Values.config }}
{{- $flag := kebabcase $key }}
{{- if kindIs "bool" $value }}
- {{ ternary (printf "--%s" $flag) (printf "--no-%s" $flag) $value }}
{{- else if kindIs "slice" $value }}
{{- if $value }}
- {{ printf "--%s=%s" $flag (join "," $value) | quote }}
{{- end }}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) }}
- {{ printf "--%s=%d" $flag (int64 $value) | quote }}
{{- else if not (kindIs "invalid" $value) }}
- {{ printf "--%s=%v" $flag $value | quote }}
{{- end }}
{{- end }}
{{- if .Values.tenantMapping }}
- --tenant-mapping=/etc/flux-tenant-exporter/tenant-mapping.yaml
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{- /* Whether access control is on (config.auth=kubernetes). */}}
{{- define "fte.auth" -}}
{{- if eq (toString .Values.config.auth) "kubernetes" }}true{{ end -}}
{{- end -}}

{{- /* The TLS Secret served, if any. */}}
{{- define "fte.tlsSecret" -}}
{{- if .Values.tls.secretName -}}
{{- .Values.tls.secretName -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- printf "%s-tls" (include "fte.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- /* The Secret and key of the scrape token. */}}
{{- define "fte.scrapeTokenSecret" -}}
{{- default (printf "%s-scraper-token" (include "fte.fullname" .)) .Values.serviceMonitor.authorization.credentials.name -}}
{{- end -}}

{{- define "fte.scheme" -}}
{{- if include "fte.tlsSecret" . }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}
