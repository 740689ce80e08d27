{{/* Names, labels and the namespace list shared by the chart's templates. */}}

{{- define "cvatflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cvatflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cvatflow.controller.fullname" -}}
{{- printf "%s-controller" (include "cvatflow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cvatflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "cvatflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cvatflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cvatflow.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cvatflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "cvatflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cvatflow.controller.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cvatflow.image" -}}
{{- printf "%s:%s" .Values.controller.image.repository (default .Chart.AppVersion .Values.controller.image.tag) -}}
{{- end -}}

{{/* The namespaces whose TrainingRuns and Workflows the controller works in (JSON list). */}}
{{- define "cvatflow.namespaces" -}}
{{- if .Values.controller.clusterWide -}}
{{- default (list .Release.Namespace) .Values.workflowTemplates.namespaces | toJson -}}
{{- else -}}
{{- default (list .Release.Namespace) .Values.controller.watchNamespaces | toJson -}}
{{- end -}}
{{- end -}}
