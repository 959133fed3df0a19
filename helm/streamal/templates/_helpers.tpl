{{/* Names, labels and shared pieces, after the Bitnami / prometheus-community conventions. */}}

{{- define "streamal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: fullnameOverride, else <release>-<chart> (just <release> if it holds the chart name).
At most 52 characters, not 63: it names the StatefulSet, whose controller labels every pod
controller-revision-hash=<name>-<10-character hash>, a label value of at most 63 characters. */}}
{{- define "streamal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "streamal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamal.labels" -}}
helm.sh/chart: {{ include "streamal.chart" . }}
{{ include "streamal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streamal
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations from commonAnnotations and the resource's own (a dict), if any. */}}
{{- define "streamal.annotations" -}}
{{- $all := merge (deepCopy (.own | default dict)) (deepCopy (.root.Values.commonAnnotations | default dict)) -}}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{- define "streamal.headlessName" -}}
{{- printf "%s-headless" (include "streamal.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streamal.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "streamal.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The Secret the chart creates (only when no existingSecret is given). */}}
{{- define "streamal.secretName" -}}
{{- default (include "streamal.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "streamal.createSecret" -}}
{{- if and (not .Values.existingSecret) (or .Values.auth.apiToken .Values.checkpoint.key .Values.kafka.sasl.password) -}}
true
{{- end -}}
{{- end -}}

{{- define "streamal.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol -}}
true
{{- end -}}
{{- end -}}

{{/* One setting as an environment variable value: lists comma-separated, whole numbers without an
exponent (YAML numbers arrive as float64, and 1e+06 would not parse as an integer setting). */}}
{{- define "streamal.envValue" -}}
{{- if kindIs "slice" . -}}
{{- join "," . -}}
{{- else if kindIs "float64" . -}}
{{- if eq . (float64 (int64 .)) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{- define "streamal.consumerGroup" -}}
{{- .Values.config.consumer_group | default "streamal" -}}
{{- end -}}

{{- define "streamal.transactionsTopic" -}}
{{- .Values.config.topic_transactions | default "transactions" -}}
{{- end -}}

{{/* Checks that the templates enforce beyond the schema. */}}
{{- define "streamal.validate" -}}
{{- if and .Values.autoscaling.hpa.enabled .Values.autoscaling.keda.enabled -}}
{{- fail "autoscaling: enable either hpa or keda, never both (both would fight over the replica count)" -}}
{{- end -}}
{{- if .Values.existingSecret -}}
{{- /* The chart then creates no Secret: a value given here would be dropped without a word. */ -}}
{{- range $name, $given := dict "auth.apiToken" .Values.auth.apiToken "checkpoint.key" .Values.checkpoint.key "kafka.sasl.password" .Values.kafka.sasl.password -}}
{{- if $given -}}
{{- fail (printf "%s is not used with existingSecret (%s): put it in that Secret instead, or drop existingSecret" $name $.Values.existingSecret) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.checkpoint.enabled (not .Values.checkpoint.key) (not .Values.existingSecret) -}}
{{- fail "checkpoint.enabled needs checkpoint.key or existingSecret (holding existingSecretKeys.checkpointKey): checkpoints are signed" -}}
{{- end -}}
{{- if include "streamal.saslEnabled" . -}}
{{- if not (and .Values.kafka.sasl.mechanism .Values.kafka.sasl.username) -}}
{{- fail (printf "kafka.securityProtocol %s needs kafka.sasl.mechanism and kafka.sasl.username" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if not (or .Values.kafka.sasl.passwordSecret.name .Values.existingSecret .Values.kafka.sasl.password) -}}
{{- fail "SASL needs a password: kafka.sasl.passwordSecret.name, existingSecret or kafka.sasl.password" -}}
{{- end -}}
{{- end -}}
{{- $grace := .Values.config.shutdown_grace_seconds | default 20 -}}
{{- if ge (float64 $grace) (float64 .Values.terminationGracePeriodSeconds) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed config.shutdown_grace_seconds (%v), or the kubelet kills the service before it has checkpointed" .Values.terminationGracePeriodSeconds $grace) -}}
{{- end -}}
{{- if and .Values.pdb.create (ne (toString .Values.pdb.minAvailable) "") (ne (toString .Values.pdb.maxUnavailable) "") -}}
{{- fail "pdb: set minAvailable or maxUnavailable, not both" -}}
{{- end -}}
{{- with .Values.autoscaling.keda -}}
{{- if and .enabled (ne $.Values.kafka.securityProtocol "PLAINTEXT") (not .authenticationRef) -}}
{{- fail (printf "autoscaling.keda.authenticationRef is needed with kafka.securityProtocol %s: KEDA reads the lag from the brokers itself and needs a TriggerAuthentication with their SASL/TLS settings, or it never gets a metric" $.Values.kafka.securityProtocol) -}}
{{- end -}}
{{- end -}}
{{- with .Values.metrics.serviceMonitor -}}
{{- if and .enabled (gt (include "streamal.durationMs" .scrapeTimeout | atoi) (include "streamal.durationMs" .interval | atoi)) -}}
{{- fail (printf "metrics.serviceMonitor.scrapeTimeout (%s) must not exceed metrics.serviceMonitor.interval (%s): Prometheus refuses such a scrape, and nothing would be scraped" .scrapeTimeout .interval) -}}
{{- end -}}
{{- end -}}
{{- $stale := .Values.metrics.prometheusRule.alerts.checkpointStale -}}
{{- if and .Values.metrics.prometheusRule.enabled $stale.enabled .Values.checkpoint.enabled -}}
{{- $interval := .Values.config.checkpoint_interval_seconds | default 30 -}}
{{- if le (float64 $stale.maxAgeSeconds) (float64 $interval) -}}
{{- fail (printf "metrics.prometheusRule.alerts.checkpointStale.maxAgeSeconds (%v) must exceed config.checkpoint_interval_seconds (%v): a healthy service's last checkpoint gets that old between two writes, and the critical alert would fire between every two" $stale.maxAgeSeconds $interval) -}}
{{- end -}}
{{- end -}}
{{- include "streamal.validateConfig" . -}}
{{- end -}}

{{/* Service settings that are valid one by one but that the service refuses together when it
starts (it exits and the pod crash-loops): refuse them at install instead. Mirrors the checks
of streamal.service.build_learner and streamal.core.policy.build_gate. */}}
{{- define "streamal.validateConfig" -}}
{{- $c := .Values.config -}}
{{- $model := $c.model | default "logreg" -}}
{{- $measure := $c.measure | default "auto" -}}
{{- $strategy := $c.strategy | default "balanced" -}}
{{- if and (has $measure (list "vote_entropy" "kl_divergence")) (ne $model "arf") -}}
{{- fail (printf "config.measure %s is query by committee and needs an ensemble model: config.model arf (not %s)" $measure $model) -}}
{{- end -}}
{{- if and (eq $measure "gradient") (not (has $model (list "logreg" "logreg-slow"))) -}}
{{- fail (printf "config.measure gradient needs a linear model: config.model logreg or logreg-slow (not %s)" $model) -}}
{{- end -}}
{{- if and (eq ($c.label_policy | default "pooled") "split") (has $measure (list "vote_entropy" "kl_divergence" "gradient")) -}}
{{- fail (printf "config.measure %s reads one model, and config.label_policy split keeps one per label source: use label_policy pooled or another measure" $measure) -}}
{{- end -}}
{{- $weighted := gt (float64 ($c.class_balance | default 0)) 0.0 -}}
{{- range $c.source_weights | default list -}}
{{- if ne (float64 (trim (index (splitn "=" 2 .) "_1"))) 1.0 -}}
{{- $weighted = true -}}
{{- end -}}
{{- end -}}
{{- if and $weighted (has $model (list "arf" "gnb")) -}}
{{- fail (printf "config.model %s cannot learn weighted labels (config.class_balance, config.source_weights): choose logreg, logreg-slow or hat, or drop the weights" $model) -}}
{{- end -}}
{{- with $c.classes -}}
{{- if lt (len (uniq .)) 2 -}}
{{- fail "config.classes needs at least two distinct class names (an empty list or null: binary true/false)" -}}
{{- end -}}
{{- end -}}
{{- if and (not (kindIs "invalid" $c.alert_cards_per_day)) (not $c.card_field) -}}
{{- fail "config.alert_cards_per_day (the daily card alert lane) needs config.card_field" -}}
{{- end -}}
{{- /* The lane shares: each strategy's own unless set; the alert lane replaces the exploit one. */ -}}
{{- $own := get (dict "random" (list 1.0 0.0) "split" (list 0.2 0.0) "fraud" (list 0.1 0.3)) $strategy | default (list 0.1 0.0) -}}
{{- $random := ternary (index $own 0) $c.random_share (kindIs "invalid" $c.random_share) -}}
{{- $exploit := ternary (index $own 1) $c.exploit_share (kindIs "invalid" $c.exploit_share) -}}
{{- if not (kindIs "invalid" $c.alert_cards_per_day) -}}
{{- $exploit = 0.0 -}}
{{- end -}}
{{- if gt (addf $random $exploit) 1.000000001 -}}
{{- fail (printf "config.random_share (%v) + config.exploit_share (%v, strategy %s's own unless set) must not exceed 1" $random $exploit $strategy) -}}
{{- end -}}
{{- end -}}

{{/* A Prometheus duration (e.g. 1m30s, the schema's pattern) in milliseconds. */}}
{{- define "streamal.durationMs" -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 "w" 604800000 "y" 31536000000 -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h|d|w|y)" . -1 -}}
{{- $unit := regexFind "(ms|s|m|h|d|w|y)$" . -}}
{{- $total = add $total (mul (trimSuffix $unit . | atoi) (get $units $unit)) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* The PromQL selector of this release's series (as the ServiceMonitor scrapes them). */}}
{{- define "streamal.ruleSelector" -}}
{{- if .Values.metrics.prometheusRule.selector -}}
{{- .Values.metrics.prometheusRule.selector -}}
{{- else -}}
{{- printf "namespace=%q,job=%q" .Release.Namespace (include "streamal.headlessName" .) -}}
{{- end -}}
{{- end -}}

{{/* The labels the recording rules keep: namespace and job, and those of a custom selector (its
label names, quoted values left out), so that the alerts can select recorded series with it. */}}
{{- define "streamal.ruleGroupBy" -}}
{{- $names := list "namespace" "job" -}}
{{- $matchers := regexReplaceAll "\"(\\\\.|[^\"\\\\])*\"" (include "streamal.ruleSelector" .) "" -}}
{{- range regexFindAll "[a-zA-Z_][a-zA-Z0-9_]*\\s*(=~|!~|!=|=)" $matchers -1 -}}
{{- $names = append $names (regexReplaceAll "\\s*(=~|!~|!=|=)$" . "") -}}
{{- end -}}
{{- $names | uniq | join ", " -}}
{{- end -}}

{{/* Secret-backed settings: the API token, the checkpoint key and the SASL password. */}}
{{- define "streamal.env" -}}
{{- $secret := include "streamal.secretName" . -}}
{{- $keys := .Values.existingSecretKeys -}}
{{- if .Values.existingSecret }}
- name: STREAMAL_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecret }}
      key: {{ $keys.apiToken }}
      optional: true
{{- else if .Values.auth.apiToken }}
- name: STREAMAL_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.apiToken }}
{{- end }}
{{- if .Values.checkpoint.enabled }}
- name: STREAMAL_CHECKPOINT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.checkpointKey }}
{{- end }}
{{- if include "streamal.saslEnabled" . }}
- name: STREAMAL_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if .Values.kafka.sasl.passwordSecret.name }}
      name: {{ .Values.kafka.sasl.passwordSecret.name }}
      key: {{ .Values.kafka.sasl.passwordSecret.key }}
      {{- else }}
      name: {{ $secret }}
      key: {{ $keys.saslPassword }}
      {{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
