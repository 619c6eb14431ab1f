{{/*
Names, labels and the env wiring shared by every template.
The six gRPC services, in the order they are rendered; each runs `python -m trunkline.<name>`
with settings read from env vars prefixed <NAME>_ (e.g. STT_GRPC_PORT).
*/}}
{{- define "trunkline.serviceNames" -}}
gateway stt context llm tts hitl
{{- end }}

{{- define "trunkline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-scoped base name; component objects are "<fullname>-<component>", so it is kept to 45
characters to leave room for the longest suffix within the 63-character limit.
*/}}
{{- define "trunkline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "trunkline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<fullname>-<component>". Call with (dict "root" $ "component" "stt"). */}}
{{- define "trunkline.componentName" -}}
{{- printf "%s-%s" (include "trunkline.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component. Call with (dict "root" $ "component" "stt"). */}}
{{- define "trunkline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trunkline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Recommended labels of one component. Call with (dict "root" $ "component" "stt"). */}}
{{- define "trunkline.labels" -}}
helm.sh/chart: {{ include "trunkline.chart" .root }}
{{ include "trunkline.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: trunkline
{{- end }}

{{- define "trunkline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "trunkline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trunkline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trunkline.operatorServiceAccountName" -}}
{{- include "trunkline.componentName" (dict "root" . "component" "operator") }}
{{- end }}

{{/* "<P>" env prefix of a component: "stt" -> "STT_". */}}
{{- define "trunkline.prefix" -}}
{{- printf "%s_" (upper .) }}
{{- end }}

{{/* host:port of a service's gRPC Service. Call with (dict "root" $ "component" "stt"). */}}
{{- define "trunkline.grpcAddr" -}}
{{- $cfg := index .root.Values.services .component }}
{{- printf "%s:%d" (include "trunkline.componentName" .) (int $cfg.grpcPort) }}
{{- end }}

{{/* Drain seconds of a component block (its own, else common). Call with (dict "root" $ "cfg" $cfg). */}}
{{- define "trunkline.drainSeconds" -}}
{{- if hasKey .cfg "drainSeconds" }}{{ .cfg.drainSeconds }}{{ else }}{{ .root.Values.common.drainSeconds }}{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds of a component block; fails unless it exceeds the drain time,
since the kubelet's SIGKILL would otherwise cut the drain short.
Call with (dict "root" $ "cfg" $cfg "component" "stt").
*/}}
{{- define "trunkline.terminationGrace" -}}
{{- $grace := .root.Values.common.terminationGracePeriodSeconds }}
{{- if hasKey .cfg "terminationGracePeriodSeconds" }}{{ $grace = .cfg.terminationGracePeriodSeconds }}{{ end }}
{{- $drain := include "trunkline.drainSeconds" . | float64 }}
{{- if le (float64 $grace) $drain }}
{{- fail (printf "%s: terminationGracePeriodSeconds (%v) must be greater than drainSeconds (%v)" .component $grace $drain) }}
{{- end }}
{{- $grace }}
{{- end }}

{{/* Env every Trunkline process reads. Call with (dict "root" $ "component" "stt" "cfg" $cfg "grpcPort" N). */}}
{{- define "trunkline.commonEnv" -}}
{{- $p := include "trunkline.prefix" .component -}}
- name: {{ $p }}SERVICE_NAME
  value: {{ .component | quote }}
- name: {{ $p }}HOST
  value: "0.0.0.0"
- name: {{ $p }}GRPC_PORT
  value: {{ .grpcPort | quote }}
- name: {{ $p }}METRICS_PORT
  value: {{ .root.Values.common.metricsPort | quote }}
- name: {{ $p }}LOG_LEVEL
  value: {{ .root.Values.common.logLevel | quote }}
- name: {{ $p }}LOG_JSON
  value: {{ .root.Values.common.logJson | quote }}
- name: {{ $p }}DRAIN_SECONDS
  value: {{ include "trunkline.drainSeconds" (dict "root" .root "cfg" .cfg) | quote }}
{{- with .root.Values.externals.otlp.endpoint }}
- name: {{ $p }}OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
{{- end }}

{{/* Extra env from a name: value map (common.env first, then the component's env). */}}
{{- define "trunkline.extraEnv" -}}
{{- range $name, $value := .root.Values.common.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $name, $value := .cfg.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* Where the agents ConfigMap is mounted (gateway, llm and context pods). */}}
{{- define "trunkline.agentsDir" -}}
/etc/trunkline/agents
{{- end }}

{{/* Directory of the Milvus Lite file in the context pod (its own volume). */}}
{{- define "trunkline.milvusLiteDir" -}}
/var/lib/trunkline/milvus
{{- end }}

{{/* Where the gateway's tenants Secret is mounted, and the file GATEWAY_TENANTS_FILE names. */}}
{{- define "trunkline.tenantsDir" -}}
/etc/trunkline/tenants
{{- end }}

{{- define "trunkline.tenantsFile" -}}
{{- printf "%s/tenants.yaml" (include "trunkline.tenantsDir" .) }}
{{- end }}

{{/*
GATEWAY_PUBLIC_URL, the base URL Twilio/Plivo reach the gateway at: services.gateway.publicUrl,
else https://<first Ingress host> when the Ingress is enabled, else empty (unset).
*/}}
{{- define "trunkline.publicUrl" -}}
{{- $gw := .Values.services.gateway }}
{{- if $gw.publicUrl }}
{{- $gw.publicUrl | trimSuffix "/" }}
{{- else if and $gw.ingress.enabled $gw.ingress.hosts }}
{{- printf "https://%s" (first $gw.ingress.hosts).host }}
{{- end }}
{{- end }}

{{/* Address of Riva for a component ("stt" or "tts"); fails when none is configured. */}}
{{- define "trunkline.rivaAddr" -}}
{{- $cfg := index .root.Values.services .component }}
{{- if $cfg.riva.addr }}
{{- $cfg.riva.addr }}
{{- else if .root.Values.inference.riva.enabled }}
{{- printf "%s:%d" (include "trunkline.componentName" (dict "root" .root "component" "riva")) (int .root.Values.inference.riva.port) }}
{{- else }}
{{- fail (printf "services.%s.backend=riva needs services.%s.riva.addr or inference.riva.enabled=true" .component .component) }}
{{- end }}
{{- end }}

{{/* Service-specific env of each gRPC service. Call with (dict "root" $). */}}
{{- define "trunkline.env.gateway" -}}
{{- $root := .root }}
{{- $gw := $root.Values.services.gateway -}}
- name: GATEWAY_HTTP_HOST
  value: "0.0.0.0"
- name: GATEWAY_HTTP_PORT
  value: {{ $gw.httpPort | quote }}
{{- with include "trunkline.publicUrl" $root }}
- name: GATEWAY_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- range $peer := list "stt" "context" "llm" "tts" "hitl" }}
- name: GATEWAY_{{ upper $peer }}_ADDR
  value: {{ include "trunkline.grpcAddr" (dict "root" $root "component" $peer) | quote }}
{{- end }}
- name: GATEWAY_NATS_URL
  value: {{ $root.Values.externals.nats.url | quote }}
{{- if $root.Values.externals.redis.existingSecret }}
- name: GATEWAY_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.externals.redis.existingSecret }}
      key: {{ $root.Values.externals.redis.existingSecretKey }}
{{- else }}
- name: GATEWAY_REDIS_URL
  value: {{ $root.Values.externals.redis.url | quote }}
{{- end }}
- name: GATEWAY_AGENTS_PATH
  value: {{ include "trunkline.agentsDir" $root }}
{{- if $gw.tenantsSecret.name }}
- name: GATEWAY_TENANTS_FILE
  value: {{ include "trunkline.tenantsFile" $root }}
{{- end }}
{{- end }}

{{- define "trunkline.env.stt" -}}
{{- $cfg := .root.Values.services.stt -}}
- name: STT_BACKEND
  value: {{ $cfg.backend | quote }}
{{- if eq $cfg.backend "riva" }}
- name: STT_RIVA_ADDR
  value: {{ include "trunkline.rivaAddr" (dict "root" .root "component" "stt") | quote }}
{{- end }}
{{- end }}

{{- define "trunkline.env.tts" -}}
{{- $cfg := .root.Values.services.tts -}}
- name: TTS_BACKEND
  value: {{ $cfg.backend | quote }}
{{- if eq $cfg.backend "riva" }}
- name: TTS_RIVA_ADDR
  value: {{ include "trunkline.rivaAddr" (dict "root" .root "component" "tts") | quote }}
{{- end }}
{{- end }}

{{- define "trunkline.env.llm" -}}
{{- $root := .root }}
{{- $cfg := $root.Values.services.llm }}
{{- $vllm := $root.Values.inference.vllm -}}
- name: LLM_BACKEND
  value: {{ $cfg.backend | quote }}
{{- if eq $cfg.backend "openai" }}
{{- $baseUrl := $cfg.openai.baseUrl }}
{{- $model := $cfg.openai.model }}
{{- if and (not $baseUrl) $vllm.enabled }}
{{- $baseUrl = printf "http://%s:%d/v1" (include "trunkline.componentName" (dict "root" $root "component" "vllm")) (int $vllm.port) }}
{{- end }}
{{- if and (not $model) $vllm.enabled }}
{{- $model = $vllm.servedModelName }}
{{- end }}
{{- if not $baseUrl }}
{{- fail "services.llm.backend=openai needs services.llm.openai.baseUrl or inference.vllm.enabled=true" }}
{{- end }}
- name: LLM_OPENAI_BASE_URL
  value: {{ $baseUrl | quote }}
{{- with $model }}
- name: LLM_MODEL
  value: {{ . | quote }}
{{- end }}
{{- with $cfg.openai.apiKeySecret.name }}
- name: LLM_OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $cfg.openai.apiKeySecret.key }}
{{- end }}
{{- end }}
- name: LLM_AGENTS_DIR
  value: {{ include "trunkline.agentsDir" $root }}
{{- end }}

{{- define "trunkline.env.context" -}}
{{- $cfg := .root.Values.services.context }}
{{- $milvus := .root.Values.externals.milvus -}}
{{- if $milvus.uri }}
- name: CONTEXT_MILVUS_URI
  value: {{ $milvus.uri | quote }}
{{- with $milvus.tokenSecret.name }}
- name: CONTEXT_MILVUS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $milvus.tokenSecret.key }}
{{- end }}
{{- else }}
- name: CONTEXT_MILVUS_URI
  value: {{ printf "%s/context.db" (include "trunkline.milvusLiteDir" .root) | quote }}
{{- end }}
- name: CONTEXT_AGENTS_DIR
  value: {{ include "trunkline.agentsDir" .root }}
{{- with $cfg.rerankUrl }}
- name: CONTEXT_RERANK_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "trunkline.env.hitl" -}}
- name: HITL_NATS_URL
  value: {{ .root.Values.externals.nats.url | quote }}
{{- end }}

{{/* Prometheus scrape annotations (no ServiceMonitor needed). */}}
{{- define "trunkline.scrapeAnnotations" -}}
{{- if .Values.common.prometheusScrape -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.common.metricsPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* gRPC startup/readiness/liveness probes on a port. Call with (dict "root" $ "port" N). */}}
{{- define "trunkline.grpcProbes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: {{ $p.startup.periodSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
readinessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
livenessProbe:
  grpc:
    port: {{ .port }}
    {{- with $p.liveness.service }}
    service: {{ . | quote }}
    {{- end }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
{{- end }}
