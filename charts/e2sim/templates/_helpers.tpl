{{/* Name of the chart, or nameOverride. */}}
{{- define "ranomaly-e2sim.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: the release name, with the chart name unless it already holds it. */}}
{{- define "ranomaly-e2sim.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "ranomaly-e2sim.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ranomaly
{{ include "ranomaly-e2sim.selectorLabels" . }}
{{- end }}

{{- define "ranomaly-e2sim.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ranomaly-e2sim.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: e2sim
{{- end }}

{{- define "ranomaly-e2sim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ranomaly-e2sim.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag, or @digest when a digest is given; the tag defaults to the appVersion. */}}
{{- define "ranomaly-e2sim.image" -}}
{{- $image := .Values.image }}
{{- $ref := printf "%s/%s" $image.registry $image.repository | trimPrefix "/" }}
{{- if $image.digest }}
{{- printf "%s@%s" $ref $image.digest }}
{{- else }}
{{- printf "%s:%s" $ref (default .Chart.AppVersion $image.tag | toString) }}
{{- end }}
{{- end }}

{{/* One settings value as an environment string: lists joined with commas, whole numbers without exponent. */}}
{{- define "ranomaly-e2sim.envValue" -}}
{{- if kindIs "slice" . }}
{{- join "," . }}
{{- else if and (kindIs "float64" .) (eq . (floor .)) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* Refuse settings the chart sets itself. */}}
{{- define "ranomaly-e2sim.validate" -}}
{{- range $key := list "host" "port" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use ports.grpc" $key) }}
{{- end }}
{{- end }}
{{- $tls := .Values.tls }}
{{- if and $tls.grpc.enabled (not (include "ranomaly-e2sim.tlsSecret" .)) }}
{{- fail "tls.grpc.enabled: no certificate is given: set tls.secretName or tls.certManager.enabled" }}
{{- end }}
{{- if and $tls.certManager.enabled (not $tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.enabled: set tls.certManager.issuerRef.name (the Issuer or ClusterIssuer that signs)" }}
{{- end }}
{{- range $key := list "tls_cert_file" "tls_key_file" "tls_client_ca_file" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use tls.*" $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret mounted at tls.mountPath: tls.secretName, else the cert-manager Certificate's; empty: none. */}}
{{- define "ranomaly-e2sim.tlsSecret" -}}
{{- if .Values.tls.secretName }}
{{- .Values.tls.secretName }}
{{- else if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "ranomaly-e2sim.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
