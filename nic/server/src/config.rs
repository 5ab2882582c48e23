//! The standalone NIC's configuration: TOML, unknown fields refused, every default explicit,
//! validated into [`Config`].
//!
//! ```toml
//! [grpc]
//! listen = "0.0.0.0:50070"
//!
//! [metrics]
//! listen = "0.0.0.0:9470"
//!
//! [log]
//! format = "plain"   # or "json"
//! level = "info"
//!
//! [resolution]
//! scenario = "default"
//! pools = [{ prefix = "10.2.0.0/16", vr = "cust1@bng2" }]
//! ```

use std::net::SocketAddr;
use std::path::Path;

use sae_nic::config::{Resolution, ResolutionToml};
use serde::Deserialize;

use crate::Error;

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub grpc: GrpcToml,
    #[serde(default)]
    pub metrics: MetricsToml,
    #[serde(default)]
    pub log: LogToml,
    /// The scenario and address pools (the same table as a node's `[nic]`).
    #[serde(default)]
    pub resolution: ResolutionToml,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcToml {
    #[serde(default = "default_grpc")]
    pub listen: String,
}

impl Default for GrpcToml {
    fn default() -> Self {
        GrpcToml {
            listen: default_grpc(),
        }
    }
}

fn default_grpc() -> String {
    "0.0.0.0:50070".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsToml {
    #[serde(default = "default_metrics")]
    pub listen: String,
}

impl Default for MetricsToml {
    fn default() -> Self {
        MetricsToml {
            listen: default_metrics(),
        }
    }
}

fn default_metrics() -> String {
    "0.0.0.0:9470".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogToml {
    #[serde(default = "default_format")]
    pub format: String,
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogToml {
    fn default() -> Self {
        LogToml {
            format: default_format(),
            level: default_level(),
        }
    }
}

fn default_format() -> String {
    "plain".into()
}

fn default_level() -> String {
    "info".into()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub log_format: LogFormat,
    pub log_level: String,
    pub resolution: Resolution,
}

impl FileConfig {
    /// Reads and parses a file (not yet validated: flags may override fields).
    pub fn read(path: &Path) -> Result<FileConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Checks every field.
    pub fn validate(self) -> Result<Config, Error> {
        let addr = |field: &str, v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|_| Error::Config(format!("{field}: {v:?} is not an address:port")))
        };
        let log_format = match self.log.format.as_str() {
            "plain" => LogFormat::Plain,
            "json" => LogFormat::Json,
            other => {
                return Err(Error::Config(format!(
                    "log.format: {other:?} is neither \"plain\" nor \"json\""
                )));
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(Error::Config(format!(
                "log.level: {:?} is not a log filter (info, debug, sae_nic_server=debug…)",
                self.log.level
            )));
        }
        Ok(Config {
            grpc_listen: addr("grpc.listen", &self.grpc.listen)?,
            metrics_listen: addr("metrics.listen", &self.metrics.listen)?,
            log_format,
            log_level: self.log.level,
            resolution: self
                .resolution
                .validate("resolution")
                .map_err(|e| Error::Config(format!("resolution: {e}")))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        file.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_a_full_file() {
        let c = parse("").unwrap();
        assert_eq!(c.grpc_listen.port(), 50070);
        assert_eq!(c.metrics_listen.port(), 9470);
        assert_eq!(c.resolution.scenario.name(), "default");
        let c = parse(
            r#"
            grpc = { listen = "127.0.0.1:0" }
            log = { format = "json", level = "debug" }
            [resolution]
            scenario = "OnePopSharedIp"
            pools = [{ prefix = "10.2.0.0/16", vr = "cust1@bng2" }]
            "#,
        )
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.resolution.pools.len(), 1);
    }

    #[test]
    fn bad_files_name_the_field() {
        let e = parse("[grpc]\nlisten = \"nowhere\"").unwrap_err();
        assert!(e.contains("grpc.listen"), "{e}");
        let e = parse("[log]\nformat = \"xml\"").unwrap_err();
        assert!(e.contains("log.format"), "{e}");
        let e = parse("[resolution]\nscenario = \"TwoPop\"").unwrap_err();
        assert!(e.contains("TwoPop"), "{e}");
        let e = parse("[grpc]\nport = 1").unwrap_err();
        assert!(e.contains("unknown field `port`"), "{e}");
        let e =
            parse("[resolution]\npools = [{ prefix = \"10.0.0.1/8\", vr = \"a@b\" }]").unwrap_err();
        assert!(e.contains("resolution.pools[0].prefix"), "{e}");
    }

    #[test]
    fn the_sample_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sae-nic.toml");
        let c = FileConfig::read(&path).unwrap().validate().unwrap();
        assert_eq!(c.grpc_listen.port(), 50070);
        assert_eq!(c.resolution.pools.len(), 1);
    }
}
