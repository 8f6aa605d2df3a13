{{/* Names and labels shared by every object of the chart. */}}

{{- define "raygate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "raygate.webhookName" -}}
{{- printf "%s-webhook" (include "raygate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "raygate.controllerName" -}}
{{- printf "%s-controller" (include "raygate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "raygate.controllerMetricsName" -}}
{{- printf "%s-metrics" (include "raygate.controllerName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "raygate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "raygate.labels" -}}
app.kubernetes.io/name: raygate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "raygate.webhookSelector" -}}
app.kubernetes.io/name: raygate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "raygate.controllerSelector" -}}
app.kubernetes.io/name: raygate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* The webhook's DNS names, for the serving certificate's SANs. */}}
{{- define "raygate.webhookDNSNames" -}}
- {{ include "raygate.webhookName" . }}.{{ .Release.Namespace }}.svc
- {{ include "raygate.webhookName" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}
