{{/* Name of the chart, or nameOverride. */}}
{{- define "ranomaly-xapp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: the release name, with the chart name unless it already holds it. */}}
{{- define "ranomaly-xapp.fullname" -}}
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

{{/* Labels of every resource; `component` tells the xApp from its Redis. */}}
{{- define "ranomaly-xapp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ranomaly
{{ include "ranomaly-xapp.selectorLabels" . }}
{{- end }}

{{- define "ranomaly-xapp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ranomaly-xapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: xapp
{{- end }}

{{- define "ranomaly-xapp.redis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Values.redis.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ranomaly
{{ include "ranomaly-xapp.redis.selectorLabels" . }}
{{- end }}

{{- define "ranomaly-xapp.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ranomaly-xapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "ranomaly-xapp.redis.fullname" -}}
{{- printf "%s-redis" (include "ranomaly-xapp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ranomaly-xapp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ranomaly-xapp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag, or @digest when a digest is given; the tag defaults to the appVersion. */}}
{{- define "ranomaly-xapp.image" -}}
{{- $image := .Values.image }}
{{- $ref := printf "%s/%s" $image.registry $image.repository | trimPrefix "/" }}
{{- if $image.digest }}
{{- printf "%s@%s" $ref $image.digest }}
{{- else }}
{{- printf "%s:%s" $ref (default .Chart.AppVersion $image.tag | toString) }}
{{- end }}
{{- end }}

{{/* The data layer the xApp uses: ric.enabled and redis.enabled imply redis. */}}
{{- define "ranomaly-xapp.datalayer" -}}
{{- if or .Values.ric.enabled .Values.redis.enabled }}redis{{ else }}{{ .Values.datalayer.backend }}{{ end }}
{{- end }}

{{- define "ranomaly-xapp.redisUrl" -}}
{{- $ric := .Values.ric }}
{{- $scheme := ternary "rediss" "redis" .Values.tls.redis.enabled }}
{{- if $ric.enabled }}
{{- printf "%s://%s.%s:%d/%d" $scheme $ric.dbaas.service $ric.platformNamespace (int $ric.dbaas.port) (int $ric.dbaas.db) }}
{{- else if .Values.redis.enabled }}
{{- printf "%s://%s:%d/0" $scheme (include "ranomaly-xapp.redis.fullname" .) (int .Values.redis.port) }}
{{- else if eq .Values.datalayer.backend "redis" }}
{{- required "datalayer.redisUrl is required when datalayer.backend is redis (or set redis.enabled or ric.enabled)" .Values.datalayer.redisUrl }}
{{- end }}
{{- end }}

{{/* One settings value as an environment string: lists joined with commas, whole numbers without exponent. */}}
{{- define "ranomaly-xapp.envValue" -}}
{{- if kindIs "slice" . }}
{{- join "," . }}
{{- else if and (kindIs "float64" .) (eq . (floor .)) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* Refuse value combinations that cannot work, with a message that names the values. */}}
{{- define "ranomaly-xapp.validate" -}}
{{- range $key := list "http_host" "a1_port" "datalayer" "redis_url" "redis_cluster" "seed_model_dir" "transport" "rmr_port" "submgr_url" "advertise_host" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use ports.*, datalayer.*, redis.enabled, ric.enabled or seedModel.volume" $key) }}
{{- end }}
{{- end }}
{{- if not (has .Values.datalayer.backend (list "memory" "redis")) }}
{{- fail (printf "datalayer.backend must be memory or redis, not %v" .Values.datalayer.backend) }}
{{- end }}
{{- if and .Values.ric.enabled .Values.redis.enabled }}
{{- fail "ric.enabled uses the RIC's DBaaS as the data layer: leave redis.enabled false" }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (eq (include "ranomaly-xapp.datalayer" .) "memory") }}
{{- fail "replicas above 1 share the data layer (policies, checkpoints, heartbeats): set datalayer.backend redis, redis.enabled or ric.enabled" }}
{{- end }}
{{- range $key := list "replica_index" "replica_count" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use replicas (the ordinal comes from the pod name)" $key) }}
{{- end }}
{{- end }}
{{- if and .Values.datalayer.cluster (or .Values.ric.enabled .Values.redis.enabled (ne .Values.datalayer.backend "redis")) }}
{{- fail "datalayer.cluster: the cluster is an external one: set datalayer.backend=redis and datalayer.redisUrl to a seed node, not redis.enabled or ric.enabled" }}
{{- end }}
{{- if and .Values.ric.enabled (ne .Release.Namespace .Values.ric.xappNamespace) }}
{{- fail (printf "ric.enabled: install the release in the xApp namespace %q (helm install -n %s), not %q" .Values.ric.xappNamespace .Values.ric.xappNamespace .Release.Namespace) }}
{{- end }}
{{- if and .Values.ric.enabled (not .Values.settings.ric_cells) }}
{{- fail "ric.enabled: settings.ric_cells must list the cells to subscribe to (CELL=MEID/PLMN/NCI)" }}
{{- end }}
{{- include "ranomaly-xapp.validateTls" . }}
{{- range $key := list "trusted_model_keys" "allow_unsigned_models" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use modelTrust.*" $key) }}
{{- end }}
{{- end }}
{{- if and .Values.modelTrust.publicKeys.secret .Values.modelTrust.publicKeys.configMap }}
{{- fail "modelTrust.publicKeys: set secret or configMap, not both" }}
{{- end }}
{{- end }}

{{/* The volume source of the trusted model keys (modelTrust.publicKeys), as YAML; empty: none. */}}
{{- define "ranomaly-xapp.modelKeys" -}}
{{- with .Values.modelTrust.publicKeys }}
{{- if .secret }}
secret:
  secretName: {{ .secret }}
  defaultMode: 0444
{{- else if .configMap }}
configMap:
  name: {{ .configMap }}
  defaultMode: 0444
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret mounted at tls.mountPath: tls.secretName, else the cert-manager Certificate's; empty: none. */}}
{{- define "ranomaly-xapp.tlsSecret" -}}
{{- if .Values.tls.secretName }}
{{- .Values.tls.secretName }}
{{- else if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "ranomaly-xapp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* "true" when a hop of the xApp uses TLS (the Secret is mounted), else empty. */}}
{{- define "ranomaly-xapp.tlsUsed" -}}
{{- $tls := .Values.tls }}
{{- if or $tls.http.enabled $tls.e2.enabled $tls.redis.enabled }}true{{ end }}
{{- end }}

{{/* The TLS settings of one client hop (dict "prefix" RANOMALY_XAPP_E2_TLS "hop" .Values.tls.e2 "dir" DIR). */}}
{{- define "ranomaly-xapp.clientTlsEnv" -}}
{{ .prefix }}_CA_FILE: {{ printf "%s/ca.crt" .dir | quote }}
{{- if .hop.clientCert }}
{{ .prefix }}_CERT_FILE: {{ printf "%s/tls.crt" .dir | quote }}
{{ .prefix }}_KEY_FILE: {{ printf "%s/tls.key" .dir | quote }}
{{- end }}
{{- end }}

{{/* Refuse TLS values that cannot work. */}}
{{- define "ranomaly-xapp.validateTls" -}}
{{- $tls := .Values.tls }}
{{- if and (include "ranomaly-xapp.tlsUsed" .) (not (include "ranomaly-xapp.tlsSecret" .)) }}
{{- fail "tls: a hop is enabled but no certificate is given: set tls.secretName or tls.certManager.enabled" }}
{{- end }}
{{- if and $tls.certManager.enabled (not $tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.enabled: set tls.certManager.issuerRef.name (the Issuer or ClusterIssuer that signs)" }}
{{- end }}
{{- if and $tls.e2.enabled .Values.ric.enabled }}
{{- fail "tls.e2.enabled is for E2 over gRPC; with ric.enabled E2 is RMR inside the RIC" }}
{{- end }}
{{- if and $tls.redis.enabled (not (hasPrefix "rediss://" (include "ranomaly-xapp.redisUrl" .))) }}
{{- fail "tls.redis.enabled needs a Redis: redis.enabled, ric.enabled or a rediss:// datalayer.redisUrl" }}
{{- end }}
{{- range $key := list "tls_cert_file" "tls_key_file" "tls_client_ca_file" "e2_tls" "e2_tls_ca_file" "e2_tls_cert_file" "e2_tls_key_file" "redis_tls_ca_file" "redis_tls_cert_file" "redis_tls_key_file" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use tls.*" $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A probe of the HTTP port (dict "path" PATH "tls" .Values.tls.http): GET over HTTP or HTTPS; with mutual TLS a
TCP connection, since the kubelet presents no client certificate. */}}
{{- define "ranomaly-xapp.httpProbe" -}}
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
{{- define "ranomaly-xapp.redis.secretName" -}}
{{- default (include "ranomaly-xapp.redis.fullname" .) .Values.redis.auth.existingSecret }}
{{- end }}

{{- define "ranomaly-xapp.redis.aclfile" -}}
{{- $acl := .Files.Get "files/redis-acl.json" | fromJson }}
{{- range $user := $acl.users }}
{{- $line := ternary $user.seedLine $user.line (and $.seeds (hasKey $user "seedLine")) }}
{{- printf "user %s %s\n" $user.name (replace "#PASSWORD_SHA256" (printf "#%s" (sha256sum (index $.passwords $user.app))) $line) }}
{{- end }}
{{- printf "user default %s\n" $acl.default }}
{{- end }}

{{/* The xApp's Redis credentials: its ACL user and the Secret key of its password, as YAML (empty: none). */}}
{{- define "ranomaly-xapp.redisAuth" -}}
{{- if and .Values.redis.enabled (not .Values.ric.enabled) }}
username: ranomaly-xapp
secret: {{ include "ranomaly-xapp.redis.secretName" . }}
key: xapp-password
{{- else if and .Values.datalayer.redisUsername .Values.datalayer.redisPasswordSecret (eq (include "ranomaly-xapp.datalayer" .) "redis") }}
username: {{ .Values.datalayer.redisUsername }}
secret: {{ .Values.datalayer.redisPasswordSecret }}
key: {{ .Values.datalayer.redisPasswordKey }}
{{- end }}
{{- end }}
