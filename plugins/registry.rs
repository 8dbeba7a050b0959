//! Maps each config `type` to the parser of its component config.
//!
//! Adding a component is one line here plus its own file: the loader, `tailfix validate` and the
//! runtime find it through these tables.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::{sinks, sources, transforms};
use crate::component::{SinkConfig, SourceConfig, TransformConfig};
use crate::metrics::ComponentKind;
use crate::settings::fields;

/// A parsed component config, boxed as its trait object.
pub type ParsedConfig<C> = Parsed<Box<C>>;

/// Parses a component's keys into its config.
pub type Parser<C> = fn(Spanned<DeValue<'_>>) -> ParsedConfig<C>;

const SOURCES: &[(&str, Parser<dyn SourceConfig>)] = &[
    (
        "aggregator",
        source::<sources::aggregator::AggregatorConfig>,
    ),
    ("file", source::<sources::file::FileConfig>),
    (
        "internal_logs",
        source::<sources::internal_logs::InternalLogsConfig>,
    ),
    (
        "kubernetes_logs",
        source::<sources::kubernetes_logs::KubernetesLogsConfig>,
    ),
    ("socket", source::<sources::socket::SocketConfig>),
    ("stdin", source::<sources::stdin::StdinConfig>),
    ("syslog", source::<sources::syslog::SyslogConfig>),
];

const TRANSFORMS: &[(&str, Parser<dyn TransformConfig>)] = &[
    ("filter", transform::<transforms::filter::FilterConfig>),
    (
        "fingerprint",
        transform::<transforms::fingerprint::FingerprintConfig>,
    ),
    (
        "throttle",
        transform::<transforms::throttle::ThrottleConfig>,
    ),
];

const SINKS: &[(&str, Parser<dyn SinkConfig>)] = &[
    ("blackhole", sink::<sinks::blackhole::BlackholeConfig>),
    ("console", sink::<sinks::console::ConsoleConfig>),
    ("file", sink::<sinks::file::FileConfig>),
    ("forward", sink::<sinks::forward::ForwardConfig>),
    ("remediate", sink::<sinks::remediate::RemediateConfig>),
];

pub fn source_parser(type_name: &str) -> Option<Parser<dyn SourceConfig>> {
    lookup(SOURCES, type_name)
}

pub fn transform_parser(type_name: &str) -> Option<Parser<dyn TransformConfig>> {
    lookup(TRANSFORMS, type_name)
}

pub fn sink_parser(type_name: &str) -> Option<Parser<dyn SinkConfig>> {
    lookup(SINKS, type_name)
}

/// The `type`s known for a kind of component, for error messages.
pub fn type_names(kind: ComponentKind) -> Vec<&'static str> {
    match kind {
        ComponentKind::Source => SOURCES.iter().map(|(name, _)| *name).collect(),
        ComponentKind::Transform => TRANSFORMS.iter().map(|(name, _)| *name).collect(),
        ComponentKind::Sink => SINKS.iter().map(|(name, _)| *name).collect(),
    }
}

fn lookup<P: Copy>(table: &[(&str, P)], type_name: &str) -> Option<P> {
    table
        .iter()
        .find(|(name, _)| *name == type_name)
        .map(|(_, parser)| *parser)
}

fn source<T: DeserializeOwned + SourceConfig + 'static>(
    value: Spanned<DeValue<'_>>,
) -> ParsedConfig<dyn SourceConfig> {
    let parsed = parse_component::<T>(value);
    Parsed {
        result: parsed
            .result
            .map(|config| Box::new(config) as Box<dyn SourceConfig>),
        unknown: parsed.unknown,
        known: parsed.known,
    }
}

fn transform<T: DeserializeOwned + TransformConfig + 'static>(
    value: Spanned<DeValue<'_>>,
) -> ParsedConfig<dyn TransformConfig> {
    let parsed = parse_component::<T>(value);
    Parsed {
        result: parsed
            .result
            .map(|config| Box::new(config) as Box<dyn TransformConfig>),
        unknown: parsed.unknown,
        known: parsed.known,
    }
}

fn sink<T: DeserializeOwned + SinkConfig + 'static>(
    value: Spanned<DeValue<'_>>,
) -> ParsedConfig<dyn SinkConfig> {
    let parsed = parse_component::<T>(value);
    Parsed {
        result: parsed
            .result
            .map(|config| Box::new(config) as Box<dyn SinkConfig>),
        unknown: parsed.unknown,
        known: parsed.known,
    }
}

/// A component's (or section's) keys, deserialized, with the keys it did not recognise and the
/// keys it knows (for "did you mean" hints).
pub struct Parsed<T> {
    pub result: Result<T, toml::de::Error>,
    pub unknown: Vec<String>,
    pub known: &'static [&'static str],
}

/// Deserializes one component's own keys, collecting the keys it does not know.
pub fn parse_component<T: DeserializeOwned>(value: Spanned<DeValue<'_>>) -> Parsed<T> {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(ValueDeserializer::from(value), |path| {
        unknown.push(path.to_string())
    });
    Parsed {
        result,
        unknown,
        known: fields::struct_fields::<T>(),
    }
}
