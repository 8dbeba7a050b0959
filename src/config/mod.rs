//! Loading and checking a pipeline config file (DESIGN §4).
//!
//! The file is interpolated from the environment, parsed with spans kept, and every component
//! table is handed to its type's parser from the registry. Every problem found is collected (not
//! just the first) as a `ConfigError` naming the file, line, column and component, so that
//! `tailfix validate` can print them all at once.

mod interpolate;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use interpolate::{InterpolationError, interpolate};

use crate::component::{SinkConfig, SourceConfig, TransformConfig};
use crate::metrics::ComponentKind;
use crate::plugins::registry::{self, parse_component};

use crate::pipeline::WhenFull;
use crate::pipeline::disk_buffer::BufferConfig;
use crate::settings::GlobalOptions;
use crate::settings::fields;

/// One problem in a config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (the file could not be read).
    pub line: usize,
    pub column: usize,
    /// `sources.app`, `sinks.out`, `agent`, … when the problem belongs to one.
    pub component: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if let Some(component) = &self.component {
            write!(f, ": {component}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A declared component: its id, type, where it reads from, and its parsed config.
#[derive(Debug)]
pub struct ComponentSpec<C: ?Sized> {
    pub id: String,
    pub type_name: String,
    /// Ids of the components it reads from (empty for sources).
    pub inputs: Vec<String>,
    /// Sinks only: what its input does when full.
    pub when_full: WhenFull,
    /// Sinks only: where entries wait for it (memory, the default, or disk).
    pub buffer: BufferConfig,
    /// Everything that makes the component what it is, as text: its table (after
    /// interpolation, keys in order) and the contents of the files it names. A reload rebuilds
    /// a component exactly when this changed.
    pub identity: String,
    pub config: Box<C>,
}

/// A loaded, checked config.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub global: GlobalOptions,
    pub sources: Vec<ComponentSpec<dyn SourceConfig>>,
    pub transforms: Vec<ComponentSpec<dyn TransformConfig>>,
    pub sinks: Vec<ComponentSpec<dyn SinkConfig>>,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "agent",
    "api",
    "nodes",
    "model",
    "repository",
    "sources",
    "transforms",
    "sinks",
];

impl Config {
    /// Reads, interpolates from the process environment, parses and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                component: None,
                message: format!("cannot read config: {error}"),
            }])
        })?;
        Self::from_text(path, &text, |name| std::env::var(name).ok())
    }

    /// Parses and checks config `text`; `path` is only used in error messages.
    pub fn from_text(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let text = interpolate(text, env).map_err(|errors| {
            ConfigErrors(
                errors
                    .into_iter()
                    .map(|error| ConfigError {
                        file: path.to_path_buf(),
                        line: error.line,
                        column: error.column,
                        component: None,
                        message: error.message,
                    })
                    .collect(),
            )
        })?;
        let mut loader = Loader {
            file: path,
            text: &text,
            errors: Vec::new(),
            declared: Vec::new(),
        };
        let config = loader.load();
        loader
            .errors
            .sort_by_key(|error| (error.line, error.column));
        match config {
            Some(config) if loader.errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(loader.errors)),
        }
    }
}

/// The files a component names, each with a checksum of what it holds now.
fn files_identity(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|path| match std::fs::read(path) {
            Ok(bytes) => format!("\n{}={:08x}", path.display(), crc32fast::hash(&bytes)),
            Err(error) => format!("\n{}=({})", path.display(), error.kind()),
        })
        .collect()
}

impl Config {
    /// Every file the config is made of: itself and the files its components name.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        files.extend(
            self.global
                .api
                .tls
                .iter()
                .flat_map(crate::tls::ServerTls::files),
        );
        files.extend(self.global.agent.aggregator_tls.files());
        files.extend(self.sources.iter().flat_map(|spec| spec.config.files()));
        files.extend(self.transforms.iter().flat_map(|spec| spec.config.files()));
        files.extend(self.sinks.iter().flat_map(|spec| spec.config.files()));
        files.sort();
        files.dedup();
        files
    }
}

struct Loader<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
    /// Every component declared, even those whose own keys failed to parse, so that the graph
    /// check does not report a broken component's consumers a second time.
    declared: Vec<(String, ComponentKind, Vec<String>)>,
}

/// A component table with its common keys taken out.
struct RawComponent<'t> {
    id: String,
    key_span: std::ops::Range<usize>,
    type_name: String,
    inputs: Option<Spanned<Vec<String>>>,
    when_full: WhenFull,
    buffer: BufferConfig,
    rest: Spanned<DeValue<'t>>,
}

impl<'a> Loader<'a> {
    fn error(&mut self, span: std::ops::Range<usize>, component: Option<String>, message: String) {
        let (line, column) = line_column(self.text, span.start);
        // serde speaks of fields; a config file has keys.
        let message = message.replacen("missing field", "missing key", 1);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            component,
            message,
        });
    }

    fn load(&mut self) -> Option<Config> {
        let document = match DeTable::parse(self.text) {
            Ok(document) => document.into_inner(),
            Err(error) => {
                let span = error.span().unwrap_or(0..0);
                self.error(span, None, error.message().to_string());
                return None;
            }
        };
        let mut global = GlobalOptions::default();
        let mut sources = Vec::new();
        let mut transforms = Vec::new();
        let mut sinks = Vec::new();
        for (key, value) in document.iter() {
            let name = key.get_ref().as_ref();
            match name {
                "agent" => global.agent = self.section(name, value).unwrap_or_default(),
                "api" => global.api = self.section(name, value).unwrap_or_default(),
                "nodes" => global.nodes = self.section(name, value).unwrap_or_default(),
                "model" => global.model = self.section(name, value).unwrap_or_default(),
                "repository" => global.repository = self.section(name, value).unwrap_or_default(),
                "sources" => sources = self.components(ComponentKind::Source, value),
                "transforms" => transforms = self.components(ComponentKind::Transform, value),
                "sinks" => sinks = self.components(ComponentKind::Sink, value),
                other => self.error(
                    key.span(),
                    None,
                    format!(
                        "unknown section `{other}`, expected one of {}",
                        quoted_list(TOP_LEVEL_KEYS)
                    ),
                ),
            }
        }

        let sources: Vec<_> = sources
            .into_iter()
            .filter_map(|raw| self.typed(ComponentKind::Source, raw, registry::source_parser))
            .collect();
        let transforms: Vec<_> = transforms
            .into_iter()
            .filter_map(|raw| self.typed(ComponentKind::Transform, raw, registry::transform_parser))
            .collect();
        let sinks: Vec<_> = sinks
            .into_iter()
            .filter_map(|raw| self.typed(ComponentKind::Sink, raw, registry::sink_parser))
            .collect();

        let mut config = Config {
            path: self.file.to_path_buf(),
            global,
            sources,
            transforms,
            sinks,
        };
        for spec in &mut config.sources {
            spec.identity
                .push_str(&files_identity(&spec.config.files()));
        }
        for spec in &mut config.transforms {
            spec.identity
                .push_str(&files_identity(&spec.config.files()));
        }
        for spec in &mut config.sinks {
            spec.identity
                .push_str(&files_identity(&spec.config.files()));
        }
        self.check_graph(&document);
        self.check_resources(&config, &document);
        Some(config)
    }

    /// Deserializes a global section, reporting unknown keys and type errors.
    fn section<T: DeserializeOwned>(
        &mut self,
        name: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<T> {
        self.deserialize(value.clone(), name.to_string())
    }

    fn deserialize<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        component: String,
    ) -> Option<T> {
        let table = value.clone();
        let parsed = parse_component::<T>(value);
        self.report_unknown(&table, &component, &parsed.unknown, parsed.known);
        match parsed.result {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let span = error.span().unwrap_or_else(|| table.span());
                self.error(span, Some(component), error.message().to_string());
                None
            }
        }
    }

    fn report_unknown(
        &mut self,
        table: &Spanned<DeValue<'_>>,
        component: &str,
        unknown: &[String],
        known: &[&str],
    ) {
        for path in unknown {
            let span = key_span(table, path).unwrap_or_else(|| table.span());
            let hint = match fields::closest(path, known) {
                Some(candidate) => format!(" (did you mean `{candidate}`?)"),
                None if !known.is_empty() && !path.contains('.') => {
                    format!(", expected one of {}", quoted_list(known))
                }
                None => String::new(),
            };
            self.error(
                span,
                Some(component.to_string()),
                format!("unknown key `{path}`{hint}"),
            );
        }
    }

    /// Splits `[sources]`, `[transforms]` or `[sinks]` into components and their common keys.
    fn components<'t>(
        &mut self,
        kind: ComponentKind,
        value: &Spanned<DeValue<'t>>,
    ) -> Vec<RawComponent<'t>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                value.span(),
                None,
                format!("`{}` must be a table", kind.table()),
            );
            return Vec::new();
        };
        let mut components = Vec::new();
        for (key, value) in table.iter() {
            let id = key.get_ref().to_string();
            let component = format!("{}.{id}", kind.table());
            let DeValue::Table(fields) = value.get_ref() else {
                self.error(key.span(), Some(component), "must be a table".to_string());
                continue;
            };
            let mut rest = DeTable::new();
            let mut type_name = None;
            let mut inputs = None;
            let mut when_full = WhenFull::default();
            let mut buffer = BufferConfig::default();
            for (field, field_value) in fields.iter() {
                match field.get_ref().as_ref() {
                    "type" => {
                        type_name =
                            self.deserialize::<String>(field_value.clone(), component.clone())
                    }
                    "inputs" if kind != ComponentKind::Source => {
                        inputs = self
                            .deserialize::<Vec<String>>(field_value.clone(), component.clone())
                            .map(|list| Spanned::new(field_value.span(), list));
                    }
                    "when_full" if kind == ComponentKind::Sink => {
                        when_full = self
                            .deserialize::<WhenFull>(field_value.clone(), component.clone())
                            .unwrap_or_default();
                    }
                    "buffer" if kind == ComponentKind::Sink => {
                        buffer = self
                            .deserialize::<BufferConfig>(field_value.clone(), component.clone())
                            .unwrap_or_default();
                    }
                    _ => {
                        rest.insert(field.clone(), field_value.clone());
                    }
                }
            }
            let declared_inputs = inputs
                .as_ref()
                .map(|list| list.get_ref().clone())
                .unwrap_or_default();
            self.declared.push((id.clone(), kind, declared_inputs));
            let Some(type_name) = type_name else {
                if !fields.contains_key("type") {
                    self.error(
                        key.span(),
                        Some(component),
                        "missing key `type`".to_string(),
                    );
                }
                continue;
            };
            components.push(RawComponent {
                id,
                key_span: key.span(),
                type_name,
                inputs,
                when_full,
                buffer,
                rest: Spanned::new(value.span(), DeValue::Table(rest)),
            });
        }
        components
    }

    /// Parses a component's own keys with its type's parser.
    fn typed<C: ?Sized>(
        &mut self,
        kind: ComponentKind,
        raw: RawComponent<'_>,
        parser: fn(&str) -> Option<registry::Parser<C>>,
    ) -> Option<ComponentSpec<C>> {
        let component = format!("{}.{}", kind.table(), raw.id);
        let Some(parse) = parser(&raw.type_name) else {
            let known = registry::type_names(kind);
            let hint = match fields::closest(&raw.type_name, &known) {
                Some(candidate) => format!("did you mean `{candidate}`?"),
                None => format!("expected one of {}", quoted_list(&known)),
            };
            self.error(
                raw.key_span.clone(),
                Some(component),
                format!("unknown {} type `{}`, {hint}", kind.as_str(), raw.type_name),
            );
            return None;
        };
        let inputs = match (kind, raw.inputs) {
            (ComponentKind::Source, _) => Vec::new(),
            (_, None) => {
                self.error(
                    raw.key_span.clone(),
                    Some(component.clone()),
                    "missing key `inputs` (the ids of the components it reads from)".to_string(),
                );
                Vec::new()
            }
            (_, Some(inputs)) if inputs.get_ref().is_empty() => {
                self.error(
                    inputs.span(),
                    Some(component.clone()),
                    "`inputs` is empty: it must name at least one component".to_string(),
                );
                Vec::new()
            }
            (_, Some(inputs)) => inputs.into_inner(),
        };
        let table = raw.rest.clone();
        let rendered = toml::Value::deserialize(ValueDeserializer::from(raw.rest.clone()))
            .map(|value| value.to_string())
            .unwrap_or_default();
        let parsed = parse(raw.rest);
        self.report_unknown(&table, &component, &parsed.unknown, parsed.known);
        match parsed.result {
            Ok(config) => Some(ComponentSpec {
                identity: format!(
                    "{}\n{:?}\n{:?}\n{:?}\n{rendered}",
                    raw.type_name, inputs, raw.when_full, raw.buffer
                ),
                id: raw.id,
                type_name: raw.type_name,
                inputs,
                when_full: match raw.buffer {
                    BufferConfig::Memory {
                        when_full: Some(when_full),
                    } => when_full,
                    _ => raw.when_full,
                },
                buffer: raw.buffer,
                config,
            }),
            Err(error) => {
                let span = error.span().unwrap_or(raw.key_span);
                self.error(span, Some(component), error.message().to_string());
                None
            }
        }
    }

    /// Inputs must name existing sources or transforms, and transforms may not form a cycle.
    fn check_graph(&mut self, document: &DeTable<'_>) {
        let declared = std::mem::take(&mut self.declared);
        let mut kinds: HashMap<&str, ComponentKind> = HashMap::new();
        for (id, kind, _) in &declared {
            if let Some(previous) = kinds.insert(id.as_str(), *kind) {
                let span = component_span(document, *kind, id);
                self.error(
                    span,
                    Some(format!("{}.{id}", kind.table())),
                    format!(
                        "id `{id}` is also used by a {}; ids must be unique across sources, transforms and sinks",
                        previous.as_str()
                    ),
                );
            }
        }

        for (id, kind, inputs) in &declared {
            for input in inputs {
                let problem = match kinds.get(input.as_str()) {
                    None => Some(format!(
                        "input `{input}` does not name a source or transform"
                    )),
                    Some(ComponentKind::Sink) => {
                        Some(format!("input `{input}` is a sink; sinks have no output"))
                    }
                    Some(_) if input == id => Some(format!("`{id}` lists itself as an input")),
                    Some(_) => None,
                };
                if let Some(message) = problem {
                    let span = field_span(document, *kind, id, "inputs");
                    self.error(span, Some(format!("{}.{id}", kind.table())), message);
                }
            }
        }

        // Cycles among transforms: depth-first search with colours.
        let edges: BTreeMap<&str, Vec<&str>> = declared
            .iter()
            .filter(|(_, kind, _)| *kind == ComponentKind::Transform)
            .map(|(id, _, inputs)| {
                let upstream = inputs
                    .iter()
                    .map(String::as_str)
                    .filter(|input| kinds.get(input) == Some(&ComponentKind::Transform))
                    .filter(|input| input != id)
                    .collect();
                (id.as_str(), upstream)
            })
            .collect();
        let mut finished = HashSet::new();
        let mut reported = HashSet::new();
        for start in edges.keys() {
            let mut path = Vec::new();
            if let Some(cycle) = find_cycle(start, &edges, &mut path, &mut finished) {
                let mut members = cycle.clone();
                members.sort();
                if reported.insert(members) {
                    let id = cycle[0];
                    let span = field_span(document, ComponentKind::Transform, id, "inputs");
                    let mut shown = cycle.clone();
                    shown.push(id);
                    self.error(
                        span,
                        Some(format!("transforms.{id}")),
                        format!("inputs form a cycle: {}", shown.join(" -> ")),
                    );
                }
            }
        }
    }

    /// Two sources may not listen on the same protocol and address.
    fn check_resources(&mut self, config: &Config, document: &DeTable<'_>) {
        let mut owners = HashMap::new();
        for source in &config.sources {
            for resource in source.config.resources() {
                if let Some(owner) = owners.insert(resource, source.id.clone()) {
                    let span = field_span(document, ComponentKind::Source, &source.id, "address");
                    self.error(
                        span,
                        Some(format!("sources.{}", source.id)),
                        format!("{resource} is already used by source `{owner}`"),
                    );
                }
            }
        }
    }
}

fn find_cycle<'e>(
    node: &'e str,
    edges: &BTreeMap<&'e str, Vec<&'e str>>,
    path: &mut Vec<&'e str>,
    finished: &mut HashSet<&'e str>,
) -> Option<Vec<&'e str>> {
    if finished.contains(node) {
        return None;
    }
    if let Some(position) = path.iter().position(|on_path| *on_path == node) {
        return Some(path[position..].to_vec());
    }
    path.push(node);
    for next in edges.get(node).into_iter().flatten() {
        if let Some(cycle) = find_cycle(next, edges, path, finished) {
            return Some(cycle);
        }
    }
    path.pop();
    finished.insert(node);
    None
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Span of the key at `path` (dot-separated, as `serde_ignored` reports it) inside `table`.
fn key_span(table: &Spanned<DeValue<'_>>, path: &str) -> Option<std::ops::Range<usize>> {
    let mut current = table;
    let mut span = None;
    for segment in path.split('.').filter(|segment| *segment != "?") {
        match current.get_ref() {
            DeValue::Table(fields) => {
                let (key, value) = fields
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == segment)?;
                span = Some(key.span());
                current = value;
            }
            DeValue::Array(items) => {
                let index: usize = segment.parse().ok()?;
                current = items.get(index)?;
                span = Some(current.span());
            }
            _ => return span,
        }
    }
    span
}

fn component_value<'d, 't>(
    document: &'d DeTable<'t>,
    kind: ComponentKind,
    id: &str,
) -> Option<(
    &'d Spanned<toml::de::DeString<'t>>,
    &'d Spanned<DeValue<'t>>,
)> {
    let DeValue::Table(section) = document.get(kind.table())?.get_ref() else {
        return None;
    };
    section.iter().find(|(key, _)| key.get_ref().as_ref() == id)
}

fn component_span(document: &DeTable<'_>, kind: ComponentKind, id: &str) -> std::ops::Range<usize> {
    component_value(document, kind, id).map_or(0..0, |(key, _)| key.span())
}

fn field_span(
    document: &DeTable<'_>,
    kind: ComponentKind,
    id: &str,
    field: &str,
) -> std::ops::Range<usize> {
    let Some((key, value)) = component_value(document, kind, id) else {
        return 0..0;
    };
    key_span(value, field).unwrap_or_else(|| key.span())
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
