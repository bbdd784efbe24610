{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "kubearts.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release name when it
already contains the chart name (so `helm install kubearts` gives "kubearts", not
"kubearts-kubearts"), else "<release>-<chart>". 63 characters at most (DNS label).
*/}}
{{- define "kubearts.fullname" -}}
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

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "kubearts.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release; each template adds its component. */}}
{{- define "kubearts.labels" -}}
helm.sh/chart: {{ include "kubearts.chart" . }}
app.kubernetes.io/name: {{ include "kubearts.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubearts
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the operator and the objects that serve it (account, RBAC, Service). */}}
{{- define "kubearts.operatorLabels" -}}
{{ include "kubearts.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels that select the operator pod; immutable once installed. */}}
{{- define "kubearts.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubearts.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "kubearts.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubearts.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"repository:tag" of an image block {repository, tag}; an empty tag means the chart's
appVersion. Call with (dict "image" <block> "context" $).
*/}}
{{- define "kubearts.image" -}}
{{- printf "%s:%s" .image.repository (default .context.Chart.AppVersion .image.tag) }}
{{- end }}

{{/*
KUBEARTS_POOLS: the pools as one JSON object
{"<pool>": {"resourceName": str|null, "nodeSelector": {...}, "tolerations": [...],
"flavors": {...}, "defaultFlavor": str|null, "avoidAcceleratorNodes": bool}}.
Every key is always present, so the operator never has to guess a default.
*/}}
{{- define "kubearts.poolsJson" -}}
{{- $pools := dict }}
{{- range $name, $pool := .Values.pools }}
{{- $_ := set $pools $name (dict
      "resourceName" ($pool.resourceName | default nil)
      "nodeSelector" ($pool.nodeSelector | default dict)
      "tolerations" ($pool.tolerations | default list)
      "flavors" ($pool.flavors | default dict)
      "defaultFlavor" ($pool.defaultFlavor | default nil)
      "avoidAcceleratorNodes" (ternary $pool.avoidAcceleratorNodes true (hasKey $pool "avoidAcceleratorNodes"))) }}
{{- end }}
{{- toJson $pools }}
{{- end }}
