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

{{/* The artifact repository (YAML): config.artifactRepository, or the default S3 bucket when it is empty. It is
     empty by default so that a user's gcs (or azure...) is not merged beside a default s3 by Helm. */}}
{{- define "cvatflow.artifactRepository" -}}
{{- $repo := .Values.config.artifactRepository | default dict -}}
{{- if not $repo -}}
{{- $repo = dict "s3" (dict "bucket" "cvatflow" "endpoint" "s3.amazonaws.com" "region" "us-east-1" "insecure" false "accessKeySecret" (dict "name" "cvatflow-s3" "key" "accesskey") "secretKeySecret" (dict "name" "cvatflow-s3" "key" "secretkey")) -}}
{{- end -}}
{{- $kinds := list -}}
{{- range $kind := list "s3" "gcs" "azure" "oss" "artifactory" "hdfs" "plugin" -}}
{{- if hasKey $repo $kind }}{{ if index $repo $kind }}{{ $kinds = append $kinds $kind }}{{ end }}{{ end -}}
{{- end -}}
{{- if ne (len $kinds) 1 -}}
{{- fail (printf "config.artifactRepository names %d kinds (%s); give exactly one of s3, gcs, azure, oss, artifactory, hdfs, plugin" (len $kinds) (join ", " $kinds)) -}}
{{- end -}}
{{- toYaml $repo -}}
{{- end -}}
