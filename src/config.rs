//! Configuration of `auditwatch run`: one serde tree with defaults embedded in the binary,
//! overridden by a TOML file, overridden by environment variables
//! `AUDITWATCH__<SECTION>__<KEY>` (e.g. `AUDITWATCH__KAFKA__BOOTSTRAP_SERVERS`).
//!
//! [`RawConfig`] is what the file says; [`Config`] is validated (`TryFrom`), so an invalid
//! `Config` cannot exist. Secrets (the SASL password) come from a file or an environment
//! variable, are held in [`Secret`] and are never printed by `Debug` or `Display`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decode::Format;
use crate::error::{Error, Result};

/// A value that must never be printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The configuration file as written (all fields optional, defaults filled in).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub store: RawStore,
    pub kafka: RawKafka,
    pub pipeline: RawPipeline,
    pub api: RawApi,
    pub detect: RawDetect,
    /// Alert sinks (`[[sinks]]`), any combination.
    pub sinks: Vec<crate::sink::SinkConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDetect {
    /// Sigma rule files or directories (reloaded on SIGHUP and when they change).
    pub rules: Vec<PathBuf>,
    /// Field mapping file (default: the built-in copy of rules/fields.yml).
    pub fields: Option<PathBuf>,
    /// Run the per-identity baseline detectors.
    pub baselines: bool,
    /// Detectors file merged over the built-in detectors/default.yml.
    pub detectors: Option<PathBuf>,
    /// How often baseline state is saved with the offsets it reflects ("30s"); offsets
    /// are committed at that pace when baselines are on.
    pub snapshot_interval: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub data_dir: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            data_dir: PathBuf::from("data"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopic {
    pub name: String,
    #[serde(default = "auto")]
    pub format: String,
}

fn auto() -> String {
    "auto".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawKafka {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<RawTopic>,
    /// Dead-letter topic for malformed messages (empty: quarantine table only).
    pub dead_letter_topic: String,
    /// Passed to librdkafka as is (`security.protocol`, `ssl.*`, `sasl.mechanism`, …).
    pub properties: BTreeMap<String, String>,
    /// SASL password, from the environment (`AUDITWATCH__KAFKA__SASL_PASSWORD`).
    #[serde(skip_serializing)]
    pub sasl_password: Option<String>,
    /// File holding the SASL password (e.g. a mounted secret).
    pub sasl_password_file: Option<PathBuf>,
}

impl Default for RawKafka {
    fn default() -> Self {
        RawKafka {
            bootstrap_servers: "localhost:9092".into(),
            group_id: "auditwatch".into(),
            topics: vec![],
            dead_letter_topic: String::new(),
            properties: BTreeMap::new(),
            sasl_password: None,
            sasl_password_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPipeline {
    pub batch_rows: usize,
    /// Human duration: "500ms", "2s".
    pub linger: String,
    pub max_event_bytes: usize,
    pub cluster: Option<String>,
    /// How long (event time) a Vault request waits for its response.
    pub vault_pair_wait: String,
    pub k8s_all_stages: bool,
}

impl Default for RawPipeline {
    fn default() -> Self {
        RawPipeline {
            batch_rows: 65_536,
            linger: "500ms".into(),
            max_event_bytes: 4 << 20,
            cluster: None,
            vault_pair_wait: "30s".into(),
            k8s_all_stages: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    pub listen: String,
    /// Bearer tokens: `[[api.tokens]]` with `name`, `role` (`reader` or `admin`) and
    /// `sha256` (hex hash of the token; `auditwatch serve --hash-token` prints it).
    pub tokens: Vec<crate::api::auth::RawToken>,
    /// File of tokens, one `name role sha256` per line (`#` comments), e.g. a mounted
    /// secret; `AUDITWATCH__API__TOKENS_FILE`.
    pub tokens_file: Option<PathBuf>,
    /// Memory pool of API queries ("512MiB"); sorts and aggregations spill beyond it.
    pub query_memory_limit: String,
    /// Time limit of one API query ("30s"); past it the answer is a 504.
    pub query_timeout: String,
    /// Most rows `POST /api/v1/query` returns (the answer says `truncated`).
    pub query_max_rows: usize,
    /// Largest request body (bytes); larger ones get a 413.
    pub max_body_bytes: usize,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: "127.0.0.1:8080".into(),
            tokens: vec![],
            tokens_file: None,
            query_memory_limit: "512MiB".into(),
            query_timeout: "30s".into(),
            query_max_rows: 100_000,
            max_body_bytes: crate::api::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A topic and the format of its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicFormat {
    pub name: String,
    pub format: Format,
}

/// Validated Kafka settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<TopicFormat>,
    pub dead_letter_topic: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub sasl_password: Option<Secret>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub kafka: KafkaConfig,
    pub batch_rows: usize,
    pub linger: Duration,
    pub max_event_bytes: usize,
    pub cluster: Option<String>,
    pub vault_pair_wait: Duration,
    pub k8s_all_stages: bool,
    pub api_listen: std::net::SocketAddr,
    /// API bearer tokens (hashes, names, roles).
    pub api_tokens: Vec<crate::api::auth::ApiToken>,
    pub api_limits: crate::query::QueryLimits,
    pub api_max_body_bytes: usize,
    pub rules: Vec<PathBuf>,
    pub fields: Option<PathBuf>,
    pub sinks: Vec<crate::sink::SinkConfig>,
    /// Baseline detectors (None: off).
    pub baselines: Option<crate::baseline::DetectorConfig>,
    pub snapshot_interval: Duration,
}

/// Parses "500ms", "2s", "14d", "1h30m".
pub fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s).map_err(|e| Error::Config(format!("invalid duration {s:?}: {e}")))
}

impl TryFrom<RawConfig> for Config {
    type Error = Error;

    fn try_from(raw: RawConfig) -> Result<Self> {
        let k = raw.kafka;
        let mut topics = Vec::new();
        for t in &k.topics {
            let format: Format = t
                .format
                .parse()
                .map_err(|e| Error::Config(format!("kafka topic {}: {e}", t.name)))?;
            if t.name.is_empty() {
                return Err(Error::Config("kafka topic with an empty name".into()));
            }
            topics.push(TopicFormat {
                name: t.name.clone(),
                format,
            });
        }
        for key in k.properties.keys() {
            if matches!(
                key.as_str(),
                "sasl.password" | "ssl.key.password" | "ssl.keystore.password"
            ) {
                return Err(Error::Config(format!(
                    "kafka.properties.{key}: put secrets in kafka.sasl_password_file or the environment, not in the config file"
                )));
            }
            if matches!(
                key.as_str(),
                "enable.auto.offset.store" | "group.id" | "bootstrap.servers"
            ) {
                return Err(Error::Config(format!(
                    "kafka.properties.{key} is managed by auditwatch"
                )));
            }
        }
        let sasl_password = match (&k.sasl_password, &k.sasl_password_file) {
            (Some(p), _) => Some(Secret::new(p.clone())),
            (None, Some(f)) => {
                let s = std::fs::read_to_string(f).map_err(|e| {
                    Error::Config(format!("kafka.sasl_password_file {}: {e}", f.display()))
                })?;
                Some(Secret::new(s.trim_end_matches(['\n', '\r'])))
            }
            (None, None) => None,
        };
        let api = crate::api::validate(&raw.api)?;
        if raw.pipeline.batch_rows == 0 {
            return Err(Error::Config(
                "pipeline.batch_rows must be at least 1".into(),
            ));
        }
        Ok(Config {
            data_dir: raw.store.data_dir,
            kafka: KafkaConfig {
                bootstrap_servers: k.bootstrap_servers,
                group_id: k.group_id,
                topics,
                dead_letter_topic: Some(k.dead_letter_topic).filter(|t| !t.is_empty()),
                properties: k.properties,
                sasl_password,
            },
            batch_rows: raw.pipeline.batch_rows,
            linger: parse_duration(&raw.pipeline.linger)?,
            max_event_bytes: raw.pipeline.max_event_bytes,
            cluster: raw.pipeline.cluster,
            vault_pair_wait: parse_duration(&raw.pipeline.vault_pair_wait)?,
            k8s_all_stages: raw.pipeline.k8s_all_stages,
            api_listen: raw
                .api
                .listen
                .parse()
                .map_err(|e| Error::Config(format!("api.listen {:?}: {e}", raw.api.listen)))?,
            api_tokens: api.0,
            api_limits: api.1,
            api_max_body_bytes: api.2,
            baselines: if raw.detect.baselines {
                Some(match &raw.detect.detectors {
                    Some(p) => crate::baseline::DetectorConfig::load(p)?,
                    None => crate::baseline::DetectorConfig::default(),
                })
            } else {
                None
            },
            snapshot_interval: parse_duration(
                raw.detect.snapshot_interval.as_deref().unwrap_or("30s"),
            )?,
            rules: raw.detect.rules,
            fields: raw.detect.fields,
            sinks: {
                let mut names = std::collections::HashSet::new();
                for sk in &raw.sinks {
                    sk.validate()?;
                    if !names.insert(sk.name.clone()) {
                        return Err(Error::Config(format!("two sinks are named {:?}", sk.name)));
                    }
                }
                raw.sinks
            },
        })
    }
}

/// Loads defaults ← TOML file ← `AUDITWATCH__…` environment, then validates.
pub fn load(path: Option<&std::path::Path>) -> Result<Config> {
    use figment::providers::{Env, Format as _, Serialized, Toml};
    let mut fig = figment::Figment::from(Serialized::defaults(RawConfig::default()));
    if let Some(p) = path {
        if !p.exists() {
            return Err(Error::Config(format!(
                "config file {} not found",
                p.display()
            )));
        }
        fig = fig.merge(Toml::file(p));
    }
    fig = fig.merge(Env::prefixed("AUDITWATCH__").split("__"));
    let raw: RawConfig = fig.extract().map_err(|e| Error::Config(e.to_string()))?;
    Config::try_from(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_env_override_defaults_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2-CANARY\n").unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            format!(
                r#"
[kafka]
bootstrap_servers = "k1:9092"
sasl_password_file = "{}"
topics = [{{ name = "k8s-audit", format = "k8s" }}, {{ name = "vault-audit", format = "vault" }}]
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
[pipeline]
linger = "250ms"
"#,
                pw.display()
            ),
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUDITWATCH__KAFKA__GROUP_ID", "from-env");
            let c = load(Some(&file)).unwrap();
            assert_eq!(c.kafka.bootstrap_servers, "k1:9092");
            assert_eq!(c.kafka.group_id, "from-env");
            assert_eq!(c.linger, Duration::from_millis(250));
            assert_eq!(
                c.kafka.topics[1],
                TopicFormat {
                    name: "vault-audit".into(),
                    format: Format::Vault
                }
            );
            assert_eq!(
                c.kafka.sasl_password.as_ref().unwrap().expose(),
                "hunter2-CANARY"
            );
            let shown = format!("{c:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn invalid_settings_are_refused() {
        let mut raw = RawConfig::default();
        raw.kafka
            .properties
            .insert("sasl.password".into(), "x".into());
        assert!(Config::try_from(raw).is_err());
        let mut raw = RawConfig::default();
        raw.pipeline.linger = "soon".into();
        assert!(Config::try_from(raw).is_err());
        let mut raw = RawConfig::default();
        raw.kafka.topics.push(RawTopic {
            name: "t".into(),
            format: "xml".into(),
        });
        assert!(
            Config::try_from(raw)
                .unwrap_err()
                .to_string()
                .contains("unknown format")
        );
    }
}
