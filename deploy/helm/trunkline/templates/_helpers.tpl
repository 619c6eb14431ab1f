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

{{/*
Image of a component: image.overrides.<component> (a full reference) when set, else
image.repository at image.digest (immutable) or image.tag (default: the chart's appVersion).
Call with (dict "root" $ "component" "stt").
*/}}
{{- define "trunkline.image" -}}
{{- $img := .root.Values.image }}
{{- $override := get $img.overrides .component }}
{{- if $override }}
{{- $override }}
{{- else if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{- define "trunkline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trunkline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of the pods that read VoiceAgents (agentsSource: cluster). */}}
{{- define "trunkline.agentsServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "trunkline.componentName" (dict "root" . "component" "agents") }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* <P>AGENTS_SOURCE/_NAMESPACE of gateway, llm and context when agents come from the API. */}}
{{- define "trunkline.agentsSourceEnv" -}}
{{- if eq .root.Values.agentsSource "cluster" }}
- name: {{ .p }}AGENTS_SOURCE
  value: cluster
- name: {{ .p }}AGENTS_NAMESPACE
  value: {{ .root.Release.Namespace | quote }}
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
{{- $preStop := .root.Values.common.preStopSeconds | float64 }}
{{- if le (float64 $grace) (addf $drain $preStop) }}
{{- fail (printf "%s: terminationGracePeriodSeconds (%v) must be greater than drainSeconds (%v) + common.preStopSeconds (%v)" .component $grace $drain $preStop) }}
{{- end }}
{{- $grace }}
{{- end }}

{{/* preStop sleep (common.preStopSeconds): Services and ingress stop routing first. */}}
{{- define "trunkline.lifecycle" -}}
{{- with .Values.common.preStopSeconds }}
lifecycle:
  preStop:
    exec:
      command: ["sleep", "{{ . }}"]
{{- end }}
{{- end }}

{{/*
Spread a component's pods over zones and nodes (topologySpread.*); the component's own
topologySpreadConstraints replace these. Call with (dict "root" $ "component" "stt" "cfg" $cfg).
*/}}
{{- define "trunkline.topologySpread" -}}
{{- $spread := .root.Values.topologySpread }}
{{- if .cfg.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml .cfg.topologySpreadConstraints | nindent 2 }}
{{- else if $spread.enabled }}
topologySpreadConstraints:
{{- range $key, $topology := dict "zone" "topology.kubernetes.io/zone" "node" "kubernetes.io/hostname" }}
{{- $c := index $spread $key }}
  - maxSkew: {{ $c.maxSkew }}
    topologyKey: {{ $topology }}
    whenUnsatisfiable: {{ $c.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "trunkline.selectorLabels" $ | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
{{- end }}
{{- end }}
{{- end }}

{{/* Replicas a component runs with: the HPA's minimum when it autoscales. */}}
{{- define "trunkline.minReplicas" -}}
{{- if and .cfg.autoscaling .cfg.autoscaling.enabled }}{{ .cfg.autoscaling.minReplicas }}{{ else }}{{ .cfg.replicas }}{{ end }}
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
{{- with include "trunkline.otlpEndpoint" .root }}
- name: {{ $p }}OTLP_ENDPOINT
  value: {{ . | quote }}
{{- $otlp := $.root.Values.externals.otlp }}
{{- if and $otlp.tls.enabled (not $.root.Values.otelCollector.enabled) }}
- name: {{ $p }}OTLP_INSECURE
  value: "false"
{{- if $otlp.tls.caSecret.name }}
- name: {{ $p }}OTLP_CA_FILE
  value: {{ printf "%s/otlp/%s" (include "trunkline.tlsDir" $.root) $otlp.tls.caSecret.key | quote }}
{{- end }}
{{- end }}
{{- with $otlp.authorizationSecret.name }}
{{- if not $.root.Values.otelCollector.enabled }}
- name: OTLP_AUTHORIZATION
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $otlp.authorizationSecret.key }}
- name: {{ $p }}OTLP_HEADERS
  value: "authorization=$(OTLP_AUTHORIZATION)"
{{- end }}
{{- end }}
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

{{/*
Where services export OTLP/gRPC: the in-chart OpenTelemetry Collector when enabled (it exports
on to externals.otlp.endpoint), else externals.otlp.endpoint itself; empty: no export.
*/}}
{{- define "trunkline.otlpEndpoint" -}}
{{- if .Values.otelCollector.enabled }}
{{- printf "%s:%d" (include "trunkline.componentName" (dict "root" . "component" "otel-collector")) 4317 }}
{{- else }}
{{- .Values.externals.otlp.endpoint }}
{{- end }}
{{- end }}

{{/* Root of the mounted TLS material: <tlsDir>/<nats|redis|otlp>/<key>. */}}
{{- define "trunkline.tlsDir" -}}
/etc/trunkline/tls
{{- end }}

{{/*
Secrets a component mounts for TLS and credentials: a list of (dict name dir secret key).
Call with (dict "root" $ "component" "gateway").
*/}}
{{- define "trunkline.secretMounts" -}}
{{- $x := .root.Values.externals }}
{{- $mounts := list }}
{{- $usesNats := has .component (list "gateway" "hitl" "ledger" "operator") }}
{{- if and $usesNats $x.nats.tls.caSecret.name }}
{{- $mounts = append $mounts (dict "name" "nats-ca" "dir" "nats" "secret" $x.nats.tls.caSecret.name "key" $x.nats.tls.caSecret.key) }}
{{- end }}
{{- if and $usesNats $x.nats.credsSecret.name }}
{{- $mounts = append $mounts (dict "name" "nats-creds" "dir" "nats-creds" "secret" $x.nats.credsSecret.name "key" $x.nats.credsSecret.key) }}
{{- end }}
{{- if and (eq .component "gateway") $x.redis.tls.caSecret.name }}
{{- $mounts = append $mounts (dict "name" "redis-ca" "dir" "redis" "secret" $x.redis.tls.caSecret.name "key" $x.redis.tls.caSecret.key) }}
{{- end }}
{{- $console := .root.Values.services.hitl.console }}
{{- if and (eq .component "hitl") $console.enabled $console.operatorsSecret.name }}
{{- $mounts = append $mounts (dict "name" "console-operators" "dir" "console-operators" "secret" $console.operatorsSecret.name "key" $console.operatorsSecret.key) }}
{{- end }}
{{- if and $x.otlp.tls.enabled $x.otlp.tls.caSecret.name (not .root.Values.otelCollector.enabled) }}
{{- $mounts = append $mounts (dict "name" "otlp-ca" "dir" "otlp" "secret" $x.otlp.tls.caSecret.name "key" $x.otlp.tls.caSecret.key) }}
{{- end }}
{{- toJson $mounts }}
{{- end }}

{{/* NATS TLS/credential settings of a NATS client (gateway, hitl, ledger, operator). Call with (dict "root" $ "p" "GATEWAY_"). */}}
{{- define "trunkline.natsEnv" -}}
{{- $nats := .root.Values.externals.nats }}
{{- if $nats.tls.caSecret.name }}
- name: {{ .p }}NATS_CA_FILE
  value: {{ printf "%s/nats/%s" (include "trunkline.tlsDir" .root) $nats.tls.caSecret.key | quote }}
{{- end }}
{{- if $nats.credsSecret.name }}
- name: {{ .p }}NATS_CREDS_FILE
  value: {{ printf "%s/nats-creds/%s" (include "trunkline.tlsDir" .root) $nats.credsSecret.key | quote }}
{{- end }}
{{- end }}

{{/* Where the agents ConfigMap is mounted (gateway, llm and context pods). */}}
{{- define "trunkline.agentsDir" -}}
/etc/trunkline/agents
{{- end }}

{{/* Where the ledger's price tables ConfigMap is mounted (LEDGER_PRICES_DIR). */}}
{{- define "trunkline.pricesDir" -}}
/etc/trunkline/prices
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

{{/*
The gateway's LiveKit caller page as browsers reach it: <public URL>/livekit/call when LiveKit
is on (services.gateway.livekit.url, or livekit.server.enabled) and the gateway has a public
URL; else empty.
*/}}
{{- define "trunkline.livekitCallUrl" -}}
{{- $publicUrl := include "trunkline.publicUrl" . }}
{{- if and (include "trunkline.gatewayLivekitUrl" .) $publicUrl }}
{{- printf "%s/livekit/call" $publicUrl }}
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
{{- include "trunkline.natsEnv" (dict "root" $root "p" "GATEWAY_") }}
{{- include "trunkline.joinSecretEnv" (dict "root" $root "p" "GATEWAY_") }}
{{- with $root.Values.externals.redis.tls.caSecret.name }}
- name: GATEWAY_REDIS_CA_FILE
  value: {{ printf "%s/redis/%s" (include "trunkline.tlsDir" $root) $root.Values.externals.redis.tls.caSecret.key | quote }}
{{- end }}
{{- range $key, $value := $gw.turnTaking }}
- name: GATEWAY_{{ $key | snakecase | upper }}
  value: {{ $value | toString | quote }}
{{- end }}
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
{{- include "trunkline.agentsSourceEnv" (dict "root" $root "p" "GATEWAY_") }}
{{- if $gw.tenantsSecret.name }}
- name: GATEWAY_TENANTS_FILE
  value: {{ include "trunkline.tenantsFile" $root }}
{{- end }}
{{- with $root.Values.transcripts }}
{{- if .enabled }}
- name: GATEWAY_TRANSCRIPTS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .database.secret.name }}
      key: {{ .database.secret.key }}
{{- end }}
{{- end }}
{{- with $gw.livekit }}
{{- if .url }}
{{- if and .apiKey (not .apiSecret.name) }}
{{- fail "services.gateway.livekit.apiKey needs services.gateway.livekit.apiSecret.name (the Secret holding its secret)" }}
{{- end }}
- name: GATEWAY_LIVEKIT_URL
  value: {{ .url | quote }}
- name: GATEWAY_LIVEKIT_API_KEY
  value: {{ .apiKey | quote }}
{{- if .apiSecret.name }}
- name: GATEWAY_LIVEKIT_API_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .apiSecret.name }}
      key: {{ .apiSecret.key }}
{{- end }}
{{- else if include "trunkline.gatewayLivekitInCluster" $root }}
{{- /* the in-chart server (livekit.server.enabled) and its key pair */}}
- name: GATEWAY_LIVEKIT_URL
  value: {{ include "trunkline.livekitServerUrl" $root | quote }}
{{- include "trunkline.livekitKeyEnv" (dict "root" $root "key" "GATEWAY_LIVEKIT_API_KEY" "secret" "GATEWAY_LIVEKIT_API_SECRET" "what" "livekit.server.enabled") }}
{{- end }}
{{- if include "trunkline.gatewayLivekitUrl" $root }}
{{- with .publicUrl }}
- name: GATEWAY_LIVEKIT_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- with .softphoneUrl }}
- name: GATEWAY_SOFTPHONE_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
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
{{- include "trunkline.agentsSourceEnv" (dict "root" $root "p" "LLM_") }}
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
{{- include "trunkline.agentsSourceEnv" (dict "root" .root "p" "CONTEXT_") }}
{{- with $cfg.rerankUrl }}
- name: CONTEXT_RERANK_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "trunkline.env.hitl" -}}
{{- $h := .root.Values.services.hitl }}
- name: HITL_NATS_URL
  value: {{ .root.Values.externals.nats.url | quote }}
{{- include "trunkline.natsEnv" (dict "root" .root "p" "HITL_") }}
{{- include "trunkline.joinSecretEnv" (dict "root" .root "p" "HITL_") }}
- name: HITL_CONSOLE_ENABLED
  value: {{ $h.console.enabled | toString | quote }}
{{- if $h.console.enabled }}
- name: HITL_CONSOLE_HOST
  value: "0.0.0.0"
- name: HITL_CONSOLE_PORT
  value: {{ $h.console.port | toString | quote }}
- name: HITL_CONSOLE_HTTPS_ONLY
  value: {{ $h.console.httpsOnly | toString | quote }}
- name: HITL_CONSOLE_GATEWAY_URL
  value: {{ printf "http://%s:%v" (include "trunkline.componentName" (dict "root" .root "component" "gateway")) .root.Values.services.gateway.httpPort | quote }}
{{- with include "trunkline.livekitCallUrl" .root }}
- name: HITL_CONSOLE_LIVEKIT_CALL_URL
  value: {{ . | quote }}
{{- end }}
{{- with $h.console.operatorsSecret.name }}
- name: HITL_CONSOLE_OPERATORS_FILE
  value: {{ printf "%s/console-operators/%s" (include "trunkline.tlsDir" $.root) $h.console.operatorsSecret.key | quote }}
{{- end }}
{{- with $h.console.sessionSecret.name }}
- name: HITL_CONSOLE_SESSION_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $h.console.sessionSecret.key }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator join token's secret (hitl signs, the gateway checks). Call with (dict "root" $ "p" "HITL_"). */}}
{{- define "trunkline.joinSecretEnv" -}}
{{- with .root.Values.services.hitl.joinSecret.name }}
- name: {{ $.p }}JOIN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.root.Values.services.hitl.joinSecret.key }}
{{- end }}
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
    service: {{ $p.startup.service | quote }}
  periodSeconds: {{ $p.startup.periodSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
readinessProbe:
  grpc:
    port: {{ .port }}
    {{- with $p.readiness.service }}
    service: {{ . | quote }}
    {{- end }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
livenessProbe:
  grpc:
    port: {{ .port }}
    service: {{ $p.liveness.service | quote }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
{{- end }}

{{/* One NetworkPolicy egress rule to an external (networkPolicy.externals.<name>). */}}
{{- define "trunkline.externalEgress" -}}
- ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
    {{- range .udpPorts }}
    - port: {{ . }}
      protocol: UDP
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
LiveKit in the cluster (livekit.server / livekit.sip, templates/livekit.yaml).
"<fullname>-livekit": the server's Service; its in-cluster URL ws://<fullname>-livekit:<port>.
*/}}
{{- define "trunkline.livekitServerUrl" -}}
{{- printf "ws://%s:%d" (include "trunkline.componentName" (dict "root" . "component" "livekit")) (int .Values.livekit.server.port) }}
{{- end }}

{{/*
The LiveKit URL the gateway joins rooms on: services.gateway.livekit.url when set, else the
in-chart server's when livekit.server.enabled, else empty (no LiveKit).
*/}}
{{- define "trunkline.gatewayLivekitUrl" -}}
{{- if .Values.services.gateway.livekit.url }}
{{- .Values.services.gateway.livekit.url }}
{{- else if .Values.livekit.server.enabled }}
{{- include "trunkline.livekitServerUrl" . }}
{{- end }}
{{- end }}

{{/* "true" when the gateway uses the in-chart server (no explicit services.gateway.livekit.url). */}}
{{- define "trunkline.gatewayLivekitInCluster" -}}
{{- if and .Values.livekit.server.enabled (not .Values.services.gateway.livekit.url) }}true{{ end }}
{{- end }}

{{/*
The LiveKit server LiveKit SIP and the route Job talk to: the in-chart server when enabled, else
the external services.gateway.livekit.url; fails when there is neither.
*/}}
{{- define "trunkline.sipLivekitUrl" -}}
{{- if .Values.livekit.server.enabled }}
{{- include "trunkline.livekitServerUrl" . }}
{{- else if .Values.services.gateway.livekit.url }}
{{- .Values.services.gateway.livekit.url }}
{{- else }}
{{- fail "livekit.sip.enabled needs a LiveKit server: livekit.server.enabled=true (the in-chart server) or services.gateway.livekit.url (an external one sharing LiveKit SIP's Redis)" }}
{{- end }}
{{- end }}

{{/*
The API key pair env of a LiveKit client, as secretKeyRefs: livekit.keysSecret (the in-chart
server's pair) when named, else the gateway's services.gateway.livekit.apiKey (a value) and its
apiSecret Secret. Call with (dict "root" $ "key" "LIVEKIT_API_KEY" "secret" "LIVEKIT_API_SECRET"
"what" "livekit.sip"); fails, naming "what", when there is no pair.
*/}}
{{- define "trunkline.livekitKeyEnv" -}}
{{- $keys := .root.Values.livekit.keysSecret }}
{{- $gw := .root.Values.services.gateway.livekit }}
{{- if $keys.name }}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ $keys.name }}
      key: {{ $keys.apiKey }}
- name: {{ .secret }}
  valueFrom:
    secretKeyRef:
      name: {{ $keys.name }}
      key: {{ $keys.apiSecret }}
{{- else if and $gw.apiKey $gw.apiSecret.name }}
- name: {{ .key }}
  value: {{ $gw.apiKey | quote }}
- name: {{ .secret }}
  valueFrom:
    secretKeyRef:
      name: {{ $gw.apiSecret.name }}
      key: {{ $gw.apiSecret.key }}
{{- else }}
{{- fail (printf "%s needs the LiveKit API key pair: livekit.keysSecret.name (an existing Secret holding the key and the secret) or services.gateway.livekit.apiKey with services.gateway.livekit.apiSecret.name" .what) }}
{{- end }}
{{- end }}

{{/*
The Redis LiveKit keeps its state in and LiveKit SIP talks to the server over (psrpc), as JSON
{address, db, useTls, passwordSecret}: livekit.redis.address when set, else host:port and
database of externals.redis.url. Empty address: no Redis (externals.redis.existingSecret holds
the URL out of the chart's sight). A password in externals.redis.url is refused: LiveKit reads it
from livekit.redis.passwordSecret.
*/}}
{{- define "trunkline.livekitRedis" -}}
{{- $lr := .Values.livekit.redis }}
{{- $out := dict "address" $lr.address "db" (int $lr.db) "useTls" $lr.useTls "passwordSecret" $lr.passwordSecret }}
{{- if and (not $lr.address) (not .Values.externals.redis.existingSecret) .Values.externals.redis.url }}
{{- $u := urlParse .Values.externals.redis.url }}
{{- if and (contains ":" $u.userinfo) (not $lr.passwordSecret.name) }}
{{- fail "externals.redis.url carries a password, which LiveKit cannot read from a URL: set livekit.redis.passwordSecret (an existing Secret holding the password) and livekit.redis.address" }}
{{- end }}
{{- $host := $u.host }}
{{- if not (regexMatch ":[0-9]+$" $host) }}{{ $host = printf "%s:6379" $host }}{{ end }}
{{- $db := trimPrefix "/" $u.path }}
{{- $_ := set $out "address" $host }}
{{- $_ := set $out "db" (int (default "0" $db)) }}
{{- $_ := set $out "useTls" (or $lr.useTls (eq $u.scheme "rediss")) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The redis: block of LiveKit's configuration (server and SIP), password excluded. Call with $. */}}
{{- define "trunkline.livekitRedisConfig" -}}
{{- $r := include "trunkline.livekitRedis" . | fromJson }}
{{- $block := dict "address" $r.address "db" (int $r.db) }}
{{- if $r.useTls }}{{ $_ := set $block "use_tls" true }}{{ end }}
{{- toJson $block }}
{{- end }}

{{/* LiveKit's log level for common.logLevel (debug, info, warn, error). */}}
{{- define "trunkline.livekitLogLevel" -}}
{{- get (dict "DEBUG" "debug" "INFO" "info" "WARNING" "warn" "ERROR" "error" "CRITICAL" "error") .Values.common.logLevel }}
{{- end }}

{{/*
NetworkPolicyPorts of the in-chart LiveKit server: signalling (HTTP/WebSocket), RTC over TCP,
and RTC over UDP (the one mux port, or the port range).
*/}}
{{- define "trunkline.livekitServerPorts" -}}
{{- $s := .Values.livekit.server -}}
- port: {{ $s.port }}
  protocol: TCP
- port: {{ $s.rtc.tcpPort }}
  protocol: TCP
{{- if $s.rtc.udpPort }}
- port: {{ $s.rtc.udpPort }}
  protocol: UDP
{{- else }}
- port: {{ $s.rtc.portRangeStart }}
  endPort: {{ $s.rtc.portRangeEnd }}
  protocol: UDP
{{- end }}
{{- end }}

{{/* A NetworkPolicy egress rule: DNS over UDP and TCP (networkPolicy.dnsPorts). */}}
{{- define "trunkline.livekitDnsEgress" -}}
- ports:
    {{- range .Values.networkPolicy.dnsPorts }}
    - port: {{ . }}
      protocol: UDP
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}

{{/* A NetworkPolicy ingress rule: /metrics from networkPolicy.metricsFrom. */}}
{{- define "trunkline.livekitMetricsIngress" -}}
- ports:
    - port: metrics
      protocol: TCP
  {{- with .Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
