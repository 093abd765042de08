{{/* The chart name, or nameOverride. */}}
{{- define "qodbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of every object: the release name, plus the chart name
unless the release name contains it; 63 characters at most. */}}
{{- define "qodbridge.fullname" -}}
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

{{- define "qodbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; add app.kubernetes.io/component. */}}
{{- define "qodbridge.labels" -}}
helm.sh/chart: {{ include "qodbridge.chart" . }}
app.kubernetes.io/name: {{ include "qodbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "qodbridge.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qodbridge
{{- end }}

{{/* The labels that select the bridge's pods. */}}
{{- define "qodbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qodbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: bridge
{{- end }}

{{- define "qodbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qodbridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the bridge's credentials come from. */}}
{{- define "qodbridge.secretName" -}}
{{- default (include "qodbridge.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{- define "qodbridge.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "qodbridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "qodbridge.imageTag" .) }}
{{- end }}
{{- end }}

{{/* Where the config file and the TLS files are mounted. */}}
{{- define "qodbridge.configDir" -}}/etc/qodbridge/config{{- end }}
{{- define "qodbridge.tlsDir" -}}/etc/qodbridge/tls{{- end }}

{{/* set key in the map m to value, unless the user already set it to
something else: then fail, naming the value that decides it. Arguments:
list m key value path source. */}}
{{- define "qodbridge.setOwned" -}}
{{- $m := index . 0 }}{{- $key := index . 1 }}{{- $value := index . 2 }}
{{- if and (hasKey $m $key) (ne (toString (index $m $key)) (toString $value)) }}
{{- fail (printf "config.%s is %v, but the chart sets it to %v from %s: leave it out of config" (index . 3) (index $m $key) $value (index . 4)) }}
{{- end }}
{{- $_ := set $m $key $value }}
{{- end }}

{{/* The bridge's config file, qodbridge.yaml: .Values.config with the
listener addresses, the TLS files and the default public URL filled in by
the chart. */}}
{{- define "qodbridge.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- range $section := list "http" "admin" }}
{{- if not (hasKey $cfg $section) }}{{ $_ := set $cfg $section dict }}{{ end }}
{{- end }}
{{- $http := index $cfg "http" }}
{{- $admin := index $cfg "admin" }}
{{- include "qodbridge.setOwned" (list $http "address" (printf "0.0.0.0:%d" (int .Values.ports.http)) "http.address" "ports.http") }}
{{- include "qodbridge.setOwned" (list $admin "address" (printf "0.0.0.0:%d" (int .Values.ports.admin)) "admin.address" "ports.admin (probes and metrics use it)") }}
{{- $scheme := "http" }}
{{- if .Values.tls.secretName }}
{{- $scheme = "https" }}
{{- if not (hasKey $http "tls") }}{{ $_ := set $http "tls" dict }}{{ end }}
{{- $tls := index $http "tls" }}
{{- include "qodbridge.setOwned" (list $tls "cert_file" (printf "%s/tls.crt" (include "qodbridge.tlsDir" .)) "http.tls.cert_file" "tls.secretName") }}
{{- include "qodbridge.setOwned" (list $tls "key_file" (printf "%s/tls.key" (include "qodbridge.tlsDir" .)) "http.tls.key_file" "tls.secretName") }}
{{- end }}
{{- if not (get $http "public_url") }}
{{- $_ := set $http "public_url" (printf "%s://%s:%d" $scheme (include "qodbridge.fullname" .) (int .Values.service.port)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Checks of values that would render objects that do not work together. */}}
{{- define "qodbridge.validate" -}}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "string" .Values.podDisruptionBudget.minAvailable)) }}
{{- $min := int .Values.podDisruptionBudget.minAvailable }}
{{- $pods := int .Values.replicaCount }}
{{- if .Values.autoscaling.enabled }}{{ $pods = int .Values.autoscaling.minReplicas }}{{ end }}
{{- if ge $min $pods }}
{{- fail (printf "podDisruptionBudget.minAvailable %d blocks every eviction with %d pods: keep it below replicaCount and autoscaling.minReplicas" $min $pods) }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas %d exceeds maxReplicas %d" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and .Values.secret.existingSecret (or .Values.secret.authTokens .Values.secret.sessionSecrets .Values.secret.adminTokens .Values.secret.qodApiToken) }}
{{- fail "secret.existingSecret is set: the tokens and secrets come from it; leave secret.authTokens, sessionSecrets, adminTokens and qodApiToken empty" }}
{{- end }}
{{- range $key := list "authTokens" "sessionSecrets" "adminTokens" }}
{{- range (index $.Values.secret $key) }}
{{- if or (lt (len .) 16) (contains "," .) }}
{{- fail (printf "secret.%s: every entry needs 16+ characters and no comma (the list reaches the bridge comma-separated)" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- include "qodbridge.noSecrets" (list .Values.config "") }}
{{- end }}

{{/* Fail on a secret in config, which becomes a ConfigMap: tokens and
secrets come from the Secret (secret.*), or from files mounted with
extraVolumes and named by the *_file keys. Arguments: list map path. */}}
{{- define "qodbridge.noSecrets" -}}
{{- $path := index . 1 }}
{{- range $key, $value := index . 0 }}
{{- if has $key (list "tokens" "session_secrets" "password" "token" "client_secret") }}
{{- if $value }}
{{- fail (printf "config.%s%s is a secret, and config becomes a ConfigMap: use secret.* (or secret.existingSecret), or mount a file with extraVolumes and set config.%s%s_file" $path $key $path $key) }}
{{- end }}
{{- else if kindIs "map" $value }}
{{- include "qodbridge.noSecrets" (list $value (printf "%s%s." $path $key)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* GOMEMLIMIT: goMemLimit, or 25/32 (about 78 %) of
resources.limits.memory (256Mi gives 200MiB, 512Mi 400MiB); empty without
a memory limit. */}}
{{- define "qodbridge.goMemLimit" -}}
{{- if .Values.goMemLimit }}
{{- .Values.goMemLimit }}
{{- else }}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) }}
{{- if kindIs "float64" $limit }}{{ $limit = printf "%d" (int64 $limit) }}{{ end }}
{{- $limit = toString $limit }}
{{- if $limit }}
{{- $digits := regexFind "^[0-9]+" $limit }}
{{- $unit := trimPrefix $digits $limit }}
{{- $factor := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 }}
{{- if or (not $digits) (not (hasKey $factor $unit)) }}
{{- fail (printf "resources.limits.memory %q: the chart derives GOMEMLIMIT from whole numbers with an optional k, M, G, Ki, Mi or Gi; set goMemLimit yourself" $limit) }}
{{- end }}
{{- $soft := div (mul (atoi $digits) (get $factor $unit) 25) 32 }}
{{- if eq (mod $soft 1048576) 0 }}
{{- printf "%dMiB" (div $soft 1048576) }}
{{- else }}
{{- printf "%d" $soft }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
