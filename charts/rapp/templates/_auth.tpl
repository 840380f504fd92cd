{{/* Authentication of the HTTP API (docs/security.md): tokens of auth.issuer (keys from auth.jwksUrl), the API key
from a Secret, or off. */}}

{{/* The Secret holding the API key: auth.apiKey.secret, else the chart's <fullname>-api-key; empty: no key used. */}}
{{- define "ranomaly-rapp.apiKeySecret" -}}
{{- if and .Values.auth.enabled .Values.auth.apiKey.enabled }}
{{- .Values.auth.apiKey.secret | default (printf "%s-api-key" (include "ranomaly-rapp.fullname" .)) }}
{{- end }}
{{- end }}

{{/* The RANOMALY_RAPP_AUTH* entries of the ConfigMap. */}}
{{- define "ranomaly-rapp.authEnv" -}}
{{- with .Values.auth }}
{{- if not .enabled }}
RANOMALY_RAPP_AUTH: "off"
{{- else }}
RANOMALY_RAPP_AUTH: "on"
RANOMALY_RAPP_AUTH_AUDIENCE: {{ .audience | quote }}
RANOMALY_RAPP_AUTH_LEEWAY_S: {{ .leewaySeconds | toString | quote }}
{{- with .issuer }}
RANOMALY_RAPP_AUTH_ISSUER: {{ . | quote }}
{{- end }}
{{- with .jwksUrl }}
RANOMALY_RAPP_AUTH_JWKS_URL: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "ranomaly-rapp.apiKeySecret" . }}
RANOMALY_RAPP_AUTH_API_KEY_FILE: /var/run/secrets/ranomaly/api-key/api-key
{{- end }}
{{- end }}

{{/* Refuse auth values that cannot work. */}}
{{- define "ranomaly-rapp.validateAuth" -}}
{{- range $key := list "auth" "auth_issuer" "auth_audience" "auth_jwks_url" "auth_public_key_file" "auth_leeway_s" "auth_api_key_file" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use auth.*" $key) }}
{{- end }}
{{- end }}
{{- with .Values.auth }}
{{- if and .enabled (not .issuer) (not .apiKey.enabled) }}
{{- fail "auth.enabled without auth.issuer needs auth.apiKey.enabled: nobody could call the API" }}
{{- end }}
{{- if and .enabled .issuer (not .jwksUrl) }}
{{- fail "auth.issuer needs auth.jwksUrl: where the issuer's signing keys are" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Volume mounts of the credentials (container volumeMounts entries). */}}
{{- define "ranomaly-rapp.authVolumeMounts" -}}
{{- if include "ranomaly-rapp.apiKeySecret" . }}
- name: api-key
  mountPath: /var/run/secrets/ranomaly/api-key
  readOnly: true
{{- end }}
{{- if .Values.a1Auth.tokenUrl }}
- name: a1-client-secret
  mountPath: /var/run/secrets/ranomaly/a1-client
  readOnly: true
{{- else if .Values.a1Auth.apiKeySecret }}
- name: a1-api-key
  mountPath: /var/run/secrets/ranomaly/a1-api-key
  readOnly: true
{{- end }}
{{- end }}

{{/* Volumes of the credentials (pod volumes entries); group-readable: the pod's fsGroup owns them. */}}
{{- define "ranomaly-rapp.authVolumes" -}}
{{- with include "ranomaly-rapp.apiKeySecret" . }}
- name: api-key
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.auth.apiKey.key }}
        path: api-key
{{- end }}
{{- with .Values.a1Auth }}
{{- if .tokenUrl }}
- name: a1-client-secret
  secret:
    secretName: {{ .clientSecretSecret }}
    defaultMode: 0440
    items:
      - key: {{ .clientSecretKey }}
        path: client-secret
{{- else if .apiKeySecret }}
- name: a1-api-key
  secret:
    secretName: {{ .apiKeySecret }}
    defaultMode: 0440
    optional: true
    items:
      - key: {{ .apiKeyKey }}
        path: api-key
{{- end }}
{{- end }}
{{- end }}

{{/* The rApp's own credential on the Near-RT A1-P endpoint: the RANOMALY_RAPP_A1_* entries of the ConfigMap. */}}
{{- define "ranomaly-rapp.a1AuthEnv" -}}
{{- with .Values.a1Auth }}
{{- if .tokenUrl }}
RANOMALY_RAPP_A1_TOKEN_URL: {{ .tokenUrl | quote }}
RANOMALY_RAPP_A1_CLIENT_ID: {{ .clientId | quote }}
RANOMALY_RAPP_A1_CLIENT_SECRET_FILE: /var/run/secrets/ranomaly/a1-client/client-secret
RANOMALY_RAPP_A1_TOKEN_SCOPE: {{ .scope | quote }}
{{- with .audience }}
RANOMALY_RAPP_A1_TOKEN_AUDIENCE: {{ . | quote }}
{{- end }}
{{- else if .apiKeySecret }}
RANOMALY_RAPP_A1_API_KEY_FILE: /var/run/secrets/ranomaly/a1-api-key/api-key
{{- end }}
{{- end }}
{{- end }}

{{/* Refuse A1 credential values that cannot work. */}}
{{- define "ranomaly-rapp.validateA1Auth" -}}
{{- range $key := list "a1_api_key_file" "a1_token_url" "a1_client_id" "a1_client_secret" "a1_client_secret_file" "a1_token_scope" "a1_token_audience" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s is set by the chart: use a1Auth.*" $key) }}
{{- end }}
{{- end }}
{{- if and .Values.a1Auth.tokenUrl (not .Values.a1Auth.clientSecretSecret) }}
{{- fail "a1Auth.tokenUrl needs a1Auth.clientSecretSecret: the Secret holding the rApp's client secret" }}
{{- end }}
{{- end }}

{{/* NOTES.txt lines: how to reach the API with the key, or that auth is off. */}}
{{- define "ranomaly-rapp.authNotes" -}}
{{- $path := .path }}
{{- $ := .ctx }}
{{- with include "ranomaly-rapp.apiKeySecret" $ }}
  KEY=$(kubectl -n {{ $.Release.Namespace }} get secret {{ . }} -o jsonpath='{.data.{{ $.Values.auth.apiKey.key }}}' | base64 -d)
  curl -s -H "X-API-Key: $KEY" localhost:{{ $.Values.ports.http }}{{ $path }}
{{- end }}
{{- if not $.Values.auth.enabled }}

auth.enabled is false: anyone who reaches port {{ $.Values.ports.http }} may change what the app does.
{{- else if $.Values.auth.issuer }}
  Bearer tokens of {{ $.Values.auth.issuer }} (audience {{ $.Values.auth.audience }}) are accepted: -H "Authorization: Bearer $TOKEN"
{{- end }}
{{- end }}

{{/* /healthz, /readyz and /metrics on a port of their own (ports.health > 0): plain HTTP, open, the only port
the metrics namespaces reach. These name the port they are on, and what probes and scrapes use. */}}
{{- define "ranomaly-rapp.healthSplit" -}}
{{- if gt (int .Values.ports.health) 0 }}true{{ end }}
{{- end }}

{{- define "ranomaly-rapp.metricsPortName" -}}
{{- ternary "health" "http" (eq (include "ranomaly-rapp.healthSplit" .) "true") }}
{{- end }}

{{- define "ranomaly-rapp.metricsPortNumber" -}}
{{- ternary .Values.ports.health .Values.ports.http (eq (include "ranomaly-rapp.healthSplit" .) "true") | int }}
{{- end }}

{{/* TLS of the port probes and scrapes reach: none on the health port. */}}
{{- define "ranomaly-rapp.metricsTls" -}}
{{- if include "ranomaly-rapp.healthSplit" . }}
enabled: false
{{- else }}
{{- toYaml .Values.tls.http }}
{{- end }}
{{- end }}

{{/* The health port: RANOMALY_RAPP_HEALTH_PORT (ConfigMap), the container's and the Service's port entries. */}}
{{- define "ranomaly-rapp.healthEnv" -}}
{{- if include "ranomaly-rapp.healthSplit" . }}
RANOMALY_RAPP_HEALTH_PORT: {{ .Values.ports.health | int | quote }}
{{- end }}
{{- end }}

{{- define "ranomaly-rapp.healthContainerPort" -}}
{{- if include "ranomaly-rapp.healthSplit" . }}
- name: health
  containerPort: {{ .Values.ports.health }}
  protocol: TCP
{{- end }}
{{- end }}

{{- define "ranomaly-rapp.healthServicePort" -}}
{{- if include "ranomaly-rapp.healthSplit" . }}
- name: health
  port: {{ .Values.ports.health }}
  targetPort: health
  protocol: TCP
{{- end }}
{{- end }}

{{/* NetworkPolicy ingress rule of the health port: RANomaly pods of the namespace and the metrics namespaces. */}}
{{- define "ranomaly-rapp.healthIngress" -}}
{{- if include "ranomaly-rapp.healthSplit" . }}
# Health and metrics alone: RANomaly pods of this namespace and Prometheus.
- ports:
    - port: health
      protocol: TCP
  from:
    - podSelector:
        matchLabels:
          app.kubernetes.io/part-of: ranomaly
    {{- range .Values.networkPolicy.metricsNamespaces }}
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ . | quote }}
    {{- end }}
{{- end }}
{{- end }}
