{{/* Authentication of the HTTP API (docs/security.md): tokens of auth.issuer (keys from auth.jwksUrl), the API key
from a Secret, or off. */}}

{{/* The Secret holding the API key: auth.apiKey.secret, else the chart's <fullname>-api-key; empty: no key used. */}}
{{- define "ranomaly-xapp.apiKeySecret" -}}
{{- if and .Values.auth.enabled .Values.auth.apiKey.enabled }}
{{- .Values.auth.apiKey.secret | default (printf "%s-api-key" (include "ranomaly-xapp.fullname" .)) }}
{{- end }}
{{- end }}

{{/* The RANOMALY_XAPP_AUTH* entries of the ConfigMap. */}}
{{- define "ranomaly-xapp.authEnv" -}}
{{- with .Values.auth }}
{{- if not .enabled }}
RANOMALY_XAPP_AUTH: "off"
{{- else }}
RANOMALY_XAPP_AUTH: "on"
RANOMALY_XAPP_AUTH_AUDIENCE: {{ .audience | quote }}
RANOMALY_XAPP_AUTH_LEEWAY_S: {{ .leewaySeconds | toString | quote }}
{{- with .issuer }}
RANOMALY_XAPP_AUTH_ISSUER: {{ . | quote }}
{{- end }}
{{- with .jwksUrl }}
RANOMALY_XAPP_AUTH_JWKS_URL: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "ranomaly-xapp.apiKeySecret" . }}
RANOMALY_XAPP_AUTH_API_KEY_FILE: /var/run/secrets/ranomaly/api-key/api-key
{{- end }}
{{- end }}

{{/* Refuse auth values that cannot work. */}}
{{- define "ranomaly-xapp.validateAuth" -}}
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
{{- define "ranomaly-xapp.authVolumeMounts" -}}
{{- if include "ranomaly-xapp.apiKeySecret" . }}
- name: api-key
  mountPath: /var/run/secrets/ranomaly/api-key
  readOnly: true
{{- end }}
{{- end }}

{{/* Volumes of the credentials (pod volumes entries); group-readable: the pod's fsGroup owns them. */}}
{{- define "ranomaly-xapp.authVolumes" -}}
{{- with include "ranomaly-xapp.apiKeySecret" . }}
- name: api-key
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.auth.apiKey.key }}
        path: api-key
{{- end }}
{{- end }}

{{/* NOTES.txt lines: how to reach the API with the key, or that auth is off. */}}
{{- define "ranomaly-xapp.authNotes" -}}
{{- $path := .path }}
{{- $ := .ctx }}
{{- with include "ranomaly-xapp.apiKeySecret" $ }}
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
{{- define "ranomaly-xapp.healthSplit" -}}
{{- if gt (int .Values.ports.health) 0 }}true{{ end }}
{{- end }}

{{- define "ranomaly-xapp.metricsPortName" -}}
{{- ternary "health" "http" (eq (include "ranomaly-xapp.healthSplit" .) "true") }}
{{- end }}

{{- define "ranomaly-xapp.metricsPortNumber" -}}
{{- ternary .Values.ports.health .Values.ports.http (eq (include "ranomaly-xapp.healthSplit" .) "true") | int }}
{{- end }}

{{/* TLS of the port probes and scrapes reach: none on the health port. */}}
{{- define "ranomaly-xapp.metricsTls" -}}
{{- if include "ranomaly-xapp.healthSplit" . }}
enabled: false
{{- else }}
{{- toYaml .Values.tls.http }}
{{- end }}
{{- end }}

{{/* The health port: RANOMALY_XAPP_HEALTH_PORT (ConfigMap), the container's and the Service's port entries. */}}
{{- define "ranomaly-xapp.healthEnv" -}}
{{- if include "ranomaly-xapp.healthSplit" . }}
RANOMALY_XAPP_HEALTH_PORT: {{ .Values.ports.health | int | quote }}
{{- end }}
{{- end }}

{{- define "ranomaly-xapp.healthContainerPort" -}}
{{- if include "ranomaly-xapp.healthSplit" . }}
- name: health
  containerPort: {{ .Values.ports.health }}
  protocol: TCP
{{- end }}
{{- end }}

{{- define "ranomaly-xapp.healthServicePort" -}}
{{- if include "ranomaly-xapp.healthSplit" . }}
- name: health
  port: {{ .Values.ports.health }}
  targetPort: health
  protocol: TCP
{{- end }}
{{- end }}

{{/* NetworkPolicy ingress rule of the health port: RANomaly pods of the namespace and the metrics namespaces. */}}
{{- define "ranomaly-xapp.healthIngress" -}}
{{- if include "ranomaly-xapp.healthSplit" . }}
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
