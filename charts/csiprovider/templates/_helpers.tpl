{{/* The chart name, or nameOverride. */}}
{{- define "csiprovider.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of every object: fullnameOverride, else the release name when it contains
the chart name, else <release>-<chart>. */}}
{{- define "csiprovider.fullname" -}}
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

{{- define "csiprovider.selectorLabels" -}}
app.kubernetes.io/name: {{ include "csiprovider.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "csiprovider.labels" -}}
{{ include "csiprovider.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "csiprovider.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "csiprovider.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "csiprovider.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "csiprovider.hmacSecretName" -}}
{{- default (printf "%s-hmac-key" (include "csiprovider.fullname" .)) .Values.hmacSecret.name }}
{{- end }}

{{- define "csiprovider.hmacSecretNamespace" -}}
{{- default .Release.Namespace .Values.hmacSecret.namespace }}
{{- end }}

{{/* Where the Vault TLS Secrets are mounted. */}}
{{- define "csiprovider.vaultCaDir" -}}/etc/csiprovider/vault-tls/ca{{- end }}
{{- define "csiprovider.vaultClientDir" -}}/etc/csiprovider/vault-tls/client{{- end }}
