{{/* Name of the chart, or nameOverride. */}}
{{- define "ranomaly-rapp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: the release name, with the chart name unless it already holds it. */}}
{{- define "ranomaly-rapp.fullname" -}}
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

{{/* Labels of every resource; `component` tells the rApp from its Redis. */}}
{{- define "ranomaly-rapp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ranomaly
{{ include "ranomaly-rapp.selectorLabels" . }}
{{- end }}

{{- define "ranomaly-rapp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ranomaly-rapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: rapp
{{- end }}

{{- define "ranomaly-rapp.redis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Values.redis.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ranomaly
{{ include "ranomaly-rapp.redis.selectorLabels" . }}
{{- end }}

{{- define "ranomaly-rapp.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ranomaly-rapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "ranomaly-rapp.redis.fullname" -}}
{{- printf "%s-redis" (include "ranomaly-rapp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ranomaly-rapp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ranomaly-rapp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag, or @digest when a digest is given; the tag defaults to the appVersion. */}}
{{- define "ranomaly-rapp.image" -}}
{{- $image := .Values.image }}
{{- $ref := printf "%s/%s" $image.registry $image.repository | trimPrefix "/" }}
{{- if $image.digest }}
{{- printf "%s@%s" $ref $image.digest }}
{{- else }}
{{- printf "%s:%s" $ref (default .Chart.AppVersion $image.tag | toString) }}
{{- end }}
{{- end }}

{{/* Where the Redis is: `own` (redis.enabled), `ric` (the DBaaS) or `external` (datalayer.redisUrl, a Secret). */}}
{{- define "ranomaly-rapp.redisMode" -}}
{{- if .Values.ric.enabled }}ric{{ else if .Values.redis.enabled }}own{{ else }}external{{ end }}
{{- end }}

{{/* The Redis URL the chart derives (own, ric); an external one lives in the Secret. */}}
{{- define "ranomaly-rapp.derivedRedisUrl" -}}
{{- $ric := .Values.ric }}
{{- $scheme := ternary "rediss" "redis" .Values.tls.redis.enabled }}
{{- if $ric.enabled }}
{{- printf "%s://%s.%s:%d/%d" $scheme $ric.dbaas.service $ric.platformNamespace (int $ric.dbaas.port) (int $ric.dbaas.db) }}
{{- else if .Values.redis.enabled }}
{{- printf "%s://%s:%d/0" $scheme (include "ranomaly-rapp.redis.fullname" .) (int .Values.redis.port) }}
{{- end }}
{{- end }}

{{/* The A1-P base URL: a1.baseUrl, else the RIC's A1 mediator (ric.enabled) or the xApp chart's Service
(https:// with tls.a1.enabled). */}}
{{- define "ranomaly-rapp.a1BaseUrl" -}}
{{- $ric := .Values.ric }}
{{- $scheme := ternary "https" "http" .Values.tls.a1.enabled }}
{{- if .Values.a1.baseUrl }}
{{- .Values.a1.baseUrl | trimSuffix "/" }}
{{- else if $ric.enabled }}
{{- printf "%s://%s.%s:%d" $scheme $ric.a1Mediator.service $ric.platformNamespace (int $ric.a1Mediator.port) }}
{{- else }}
{{- printf "%s://ranomaly-xapp:8080" $scheme }}
{{- end }}
{{- end }}

{{/* The TCP port of a URL: its explicit port, else the scheme's (dict "url" URL "default" PORT). */}}
{{- define "ranomaly-rapp.urlPort" -}}
{{- $host := (urlParse .url).host }}
{{- $parts := splitList ":" $host }}
{{- if and (gt (len $parts) 1) (regexMatch "^[0-9]+$" (last $parts)) }}
{{- last $parts }}
{{- else }}
{{- .default }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the credentials: credentials.existingSecret or the chart's. */}}
{{- define "ranomaly-rapp.secretName" -}}
{{- default (include "ranomaly-rapp.fullname" .) .Values.credentials.existingSecret }}
{{- end }}

{{/* Whether the pod reads anything from a Secret ("true" or empty). */}}
{{- define "ranomaly-rapp.usesSecret" -}}
{{- if or .Values.credentials.existingSecret .Values.notifications.nocWebhookUrl (eq (include "ranomaly-rapp.redisMode" .) "external") }}true{{ end }}
{{- end }}

{{/* One settings value as an environment string: lists and maps as JSON (how RappSettings reads its tuple and
dict fields), whole numbers without exponent. */}}
{{- define "ranomaly-rapp.envValue" -}}
{{- if or (kindIs "slice" .) (kindIs "map" .) }}
{{- toJson . }}
{{- else if and (kindIs "float64" .) (eq . (floor .)) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* Refuse value combinations that cannot work, with a message that names the values. */}}
{{- define "ranomaly-rapp.validate" -}}
{{- range $key := list "http_host" "port" "redis_url" "redis_cluster" "history_dir" "work_dir" "a1_base_url" "a1_api_root" "noc_webhook_url" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use ports.http, datalayer.redisUrl, redis.enabled, ric.enabled, persistence.mountPath, a1.* or notifications.nocWebhookUrl" $key) }}
{{- end }}
{{- end }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount must be 0 or 1, not %v: the collector is a single consumer writing one history folder, and jobs run one at a time" .Values.replicaCount) }}
{{- end }}
{{- if and .Values.ric.enabled .Values.redis.enabled }}
{{- fail "ric.enabled uses the RIC's DBaaS as the data layer: leave redis.enabled false" }}
{{- end }}
{{- if and .Values.datalayer.cluster (ne (include "ranomaly-rapp.redisMode" .) "external") }}
{{- fail "datalayer.cluster: the cluster is an external one: set datalayer.redisUrl (or credentials.existingSecret) to a seed node, not redis.enabled or ric.enabled" }}
{{- end }}
{{- if and (eq (include "ranomaly-rapp.redisMode" .) "external") (not .Values.credentials.existingSecret) }}
{{- $url := required "datalayer.redisUrl is required (or set redis.enabled, ric.enabled or credentials.existingSecret)" .Values.datalayer.redisUrl }}
{{- if not (regexMatch "^(redis|rediss|unix)://" $url) }}
{{- fail "datalayer.redisUrl must be a redis://, rediss:// or unix:// URL" }}
{{- end }}
{{- end }}
{{- if not (hasPrefix "/" .Values.a1.apiRoot) }}
{{- fail (printf "a1.apiRoot must start with /: %q" .Values.a1.apiRoot) }}
{{- end }}
{{- if and .Values.a1.baseUrl (not (regexMatch "^https?://[^/]+" .Values.a1.baseUrl)) }}
{{- fail (printf "a1.baseUrl must be an http:// or https:// URL: %q" .Values.a1.baseUrl) }}
{{- end }}
{{- include "ranomaly-rapp.validateTls" . }}
{{- end }}

{{/* The Secret mounted at tls.mountPath: tls.secretName, else the cert-manager Certificate's; empty: none. */}}
{{- define "ranomaly-rapp.tlsSecret" -}}
{{- if .Values.tls.secretName }}
{{- .Values.tls.secretName }}
{{- else if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "ranomaly-rapp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* "true" when a hop of the xApp uses TLS (the Secret is mounted), else empty. */}}
{{- define "ranomaly-rapp.tlsUsed" -}}
{{- $tls := .Values.tls }}
{{- if or $tls.http.enabled $tls.a1.enabled $tls.redis.enabled }}true{{ end }}
{{- end }}

{{/* The TLS settings of one client hop (dict "prefix" RANOMALY_RAPP_A1_TLS "hop" .Values.tls.a1 "dir" DIR). */}}
{{- define "ranomaly-rapp.clientTlsEnv" -}}
{{ .prefix }}_CA_FILE: {{ printf "%s/ca.crt" .dir | quote }}
{{- if .hop.clientCert }}
{{ .prefix }}_CERT_FILE: {{ printf "%s/tls.crt" .dir | quote }}
{{ .prefix }}_KEY_FILE: {{ printf "%s/tls.key" .dir | quote }}
{{- end }}
{{- end }}

{{/* Refuse TLS values that cannot work. */}}
{{- define "ranomaly-rapp.validateTls" -}}
{{- $tls := .Values.tls }}
{{- if and (include "ranomaly-rapp.tlsUsed" .) (not (include "ranomaly-rapp.tlsSecret" .)) }}
{{- fail "tls: a hop is enabled but no certificate is given: set tls.secretName or tls.certManager.enabled" }}
{{- end }}
{{- if and $tls.certManager.enabled (not $tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.enabled: set tls.certManager.issuerRef.name (the Issuer or ClusterIssuer that signs)" }}
{{- end }}
{{- if and $tls.a1.enabled (not (hasPrefix "https://" (include "ranomaly-rapp.a1BaseUrl" .))) }}
{{- fail "tls.a1.enabled: a1.baseUrl must be an https:// URL" }}
{{- end }}
{{- if and $tls.redis.enabled (eq (include "ranomaly-rapp.redisMode" .) "external") (not .Values.credentials.existingSecret) (not (hasPrefix "rediss://" .Values.datalayer.redisUrl)) }}
{{- fail "tls.redis.enabled: datalayer.redisUrl must be a rediss:// URL" }}
{{- end }}
{{- range $key := list "tls_cert_file" "tls_key_file" "tls_client_ca_file" "a1_tls_ca_file" "a1_tls_cert_file" "a1_tls_key_file" "redis_tls_ca_file" "redis_tls_cert_file" "redis_tls_key_file" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use tls.*" $key) }}
{{- end }}
{{- end }}
{{- if hasKey .Values.settings "model_signing_key_file" }}
{{- fail "settings.model_signing_key_file is set by the chart: use modelSigning.*" }}
{{- end }}
{{- end }}

{{/* A probe of the HTTP port (dict "path" PATH "tls" .Values.tls.http): GET over HTTP or HTTPS; with mutual TLS a
TCP connection, since the kubelet presents no client certificate. */}}
{{- define "ranomaly-rapp.httpProbe" -}}
{{- if and .tls.enabled .tls.mutual }}
tcpSocket:
  port: {{ .port | default "http" }}
{{- else }}
httpGet:
  path: {{ .path }}
  port: {{ .port | default "http" }}
  {{- if .tls.enabled }}
  scheme: HTTPS
  {{- end }}
{{- end }}
{{- end }}

{{/* The Redis ACL users (docs/security.md): the Secret with the aclfile and the passwords, and the aclfile the
chart writes into it (dict "Files" .Files "passwords" (dict "xapp" PW "rapp" PW) "seeds" BOOL), from
files/redis-acl.json, which scripts/chart_redis_acl.py writes from ranomaly_contracts.redis_acl. */}}
{{- define "ranomaly-rapp.redis.secretName" -}}
{{- default (include "ranomaly-rapp.redis.fullname" .) .Values.redis.auth.existingSecret }}
{{- end }}

{{- define "ranomaly-rapp.redis.aclfile" -}}
{{- $acl := .Files.Get "files/redis-acl.json" | fromJson }}
{{- range $user := $acl.users }}
{{- $line := ternary $user.seedLine $user.line (and $.seeds (hasKey $user "seedLine")) }}
{{- printf "user %s %s\n" $user.name (replace "#PASSWORD_SHA256" (printf "#%s" (sha256sum (index $.passwords $user.app))) $line) }}
{{- end }}
{{- printf "user default %s\n" $acl.default }}
{{- end }}

{{/* The rApp's Redis credentials: its ACL user and the Secret key of its password, as YAML (empty: none). */}}
{{- define "ranomaly-rapp.redisAuth" -}}
{{- $mode := include "ranomaly-rapp.redisMode" . }}
{{- if eq $mode "own" }}
username: ranomaly-rapp
secret: {{ include "ranomaly-rapp.redis.secretName" . }}
key: rapp-password
{{- else if and (eq $mode "external") .Values.datalayer.redisUsername .Values.datalayer.redisPasswordSecret }}
username: {{ .Values.datalayer.redisUsername }}
secret: {{ .Values.datalayer.redisPasswordSecret }}
key: {{ .Values.datalayer.redisPasswordKey }}
{{- end }}
{{- end }}
