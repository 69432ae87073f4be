//! Reading rules files: TOML or JSON into filters and scorers, each error
//! with the 1-based line it is on.
//!
//! Every check runs *inside* deserialization (hand-written `Deserialize`
//! impls and seeds) rather than after it, because only then does the parser
//! know where the offending value is: toml attaches the value's span to the
//! error and serde_json its line. So one set of serde impls serves both
//! formats and gives both the same messages.

use std::fmt;
use std::marker::PhantomData;

use lepton_core::model::{Labels, NodeKind};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::filter::{Filter, Utilized};
use super::score::{Scorer, ScorerKind, SCORERS};
use crate::Error;

/// The rules of a file, checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rules {
    /// Every filter of every `[[filter]]` table (all must pass, so their
    /// order does not matter; TOML keeps none within a table).
    pub(super) filters: Vec<Filter>,
    /// The scorers, in file order, with the weights as written.
    pub(super) scorers: Vec<Scorer>,
}

/// Reads TOML rules; `origin` names them in errors.
pub(super) fn from_toml(text: &str, origin: &str) -> Result<Rules, Error> {
    let file = toml::from_str::<Table<RulesFile>>(text)
        .map(|Table(file)| file)
        .map_err(|error| Error::RuleConfig {
            origin: origin.to_owned(),
            // toml gives every parse and data error a span; 1 is a fallback.
            line: error.span().map_or(1, |span| line_of(text, span.start)),
            message: error.message().to_owned(),
        })?;
    file.into_rules(origin)
}

/// Reads JSON rules; `origin` names them in errors.
pub(super) fn from_json(text: &str, origin: &str) -> Result<Rules, Error> {
    let file = serde_json::from_str::<Table<RulesFile>>(text)
        .map(|Table(file)| file)
        .map_err(|error| {
            // serde_json appends the position to the message; it goes in `line`.
            let full = error.to_string();
            let position = format!(" at line {} column {}", error.line(), error.column());
            Error::RuleConfig {
                origin: origin.to_owned(),
                // At the end of input serde_json counts the line after the
                // last newline; the last line is the one to look at.
                line: error.line().clamp(1, text.lines().count().max(1)),
                message: full.strip_suffix(&position).unwrap_or(&full).to_owned(),
            }
        })?;
    file.into_rules(origin)
}

/// The 1-based line of byte `offset` in `text`. An offset at the very end
/// of a text ending in a newline belongs to the last line, not the empty
/// one after it.
fn line_of(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len().saturating_sub(1));
    bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    filter: Vec<FilterTable>,
    #[serde(default)]
    score: Vec<Table<ScoreTable>>,
}

impl TableKind for RulesFile {
    const EXPECTING: &'static str = "a table of `filter` and `score` lists";
}

impl RulesFile {
    /// The rules; a file without any is refused, as it would silently
    /// place as first fit.
    fn into_rules(self, origin: &str) -> Result<Rules, Error> {
        if self.filter.is_empty() && self.score.is_empty() {
            return Err(Error::RuleConfig {
                origin: origin.to_owned(),
                line: 1,
                message: "the file has no rules: add a `filter` or `score` table (without \
                          any, the rule policy would place as first fit)"
                    .to_owned(),
            });
        }
        Ok(Rules {
            filters: self.filter.into_iter().flat_map(|table| table.0).collect(),
            scorers: self
                .score
                .into_iter()
                .map(|Table(table)| Scorer {
                    kind: table.rule,
                    weight: table.weight.0,
                })
                .collect(),
        })
    }
}

/// One `[[score]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreTable {
    rule: ScorerKind,
    #[serde(default)]
    weight: Weight,
}

impl TableKind for ScoreTable {
    const EXPECTING: &'static str = "a scorer table such as { rule = \"bestfit\", weight = 1.0 }";
}

/// A struct read from a table (a map) only. Serde's derive would also take
/// a list of the fields in order, so `[]` would be an empty rules file.
struct Table<T>(T);

/// What a [`Table`] says it expected when it finds something else.
trait TableKind {
    const EXPECTING: &'static str;
}

impl<'de, T: Deserialize<'de> + TableKind> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(TableVisitor(PhantomData))
            .map(Table)
    }
}

struct TableVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + TableKind> Visitor<'de> for TableVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for ScorerKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Named {
            what: "scorer",
            table: SCORERS,
        })
    }
}

/// A scorer's weight: finite and above 0; 1 when not given.
struct Weight(f64);

impl Default for Weight {
    fn default() -> Self {
        Weight(1.0)
    }
}

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let weight = f64::deserialize(deserializer)?;
        // TOML has `nan` and `inf` literals, so both can reach here.
        if weight.is_finite() && weight > 0.0 {
            Ok(Weight(weight))
        } else {
            Err(de::Error::custom(format!(
                "weight must be a finite number above 0, got {weight}"
            )))
        }
    }
}

/// The filter keys of a `[[filter]]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKey {
    RequireLabel,
    ForbidLabel,
    MaxUtilization(Utilized),
    NodeKind,
    Zone,
}

const FILTER_KEYS: &[(&str, FilterKey)] = &[
    ("require_label", FilterKey::RequireLabel),
    ("forbid_label", FilterKey::ForbidLabel),
    (
        "max_cpu_utilization",
        FilterKey::MaxUtilization(Utilized::Cpu),
    ),
    (
        "max_memory_utilization",
        FilterKey::MaxUtilization(Utilized::Memory),
    ),
    (
        "max_gpu_utilization",
        FilterKey::MaxUtilization(Utilized::Gpu),
    ),
    ("node_kind", FilterKey::NodeKind),
    ("zone", FilterKey::Zone),
];

const NODE_KINDS: &[(&str, NodeKind)] = &[
    ("server", NodeKind::Server),
    ("vm", NodeKind::Vm),
    ("container_host", NodeKind::ContainerHost),
];

impl FilterKey {
    fn name(self) -> &'static str {
        FILTER_KEYS
            .iter()
            .find(|(_, key)| *key == self)
            .map_or("filter", |(name, _)| name)
    }
}

impl<'de> Deserialize<'de> for FilterKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(Named {
            what: "filter",
            table: FILTER_KEYS,
        })
    }
}

/// One `[[filter]]` table: one filter per key.
struct FilterTable(Vec<Filter>);

impl<'de> Deserialize<'de> for FilterTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FilterTableVisitor)
    }
}

struct FilterTableVisitor;

impl<'de> Visitor<'de> for FilterTableVisitor {
    type Value = FilterTable;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a filter table such as { max_cpu_utilization = 0.8 }")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FilterTable, A::Error> {
        let mut filters = Vec::new();
        while let Some(key) = map.next_key::<FilterKey>()? {
            filters.push(match key {
                FilterKey::RequireLabel => Filter::RequireLabel(map.next_value::<Labels>()?),
                FilterKey::ForbidLabel => Filter::ForbidLabel(map.next_value::<Labels>()?),
                FilterKey::MaxUtilization(resource) => Filter::MaxUtilization {
                    resource,
                    max: map.next_value_seed(Fraction { key: key.name() })?,
                },
                FilterKey::NodeKind => Filter::NodeKind(map.next_value_seed(OneOrMany {
                    key: key.name(),
                    parse: |name| lookup("node kind", name, NODE_KINDS),
                })?),
                FilterKey::Zone => Filter::Zone(map.next_value_seed(OneOrMany {
                    key: key.name(),
                    parse: |zone| Ok(zone.to_owned()),
                })?),
            });
        }
        if filters.is_empty() {
            return Err(de::Error::custom(format!(
                "empty filter table; valid filters: {}",
                names(FILTER_KEYS)
            )));
        }
        Ok(FilterTable(filters))
    }
}

/// A utilization cap: a fraction in 0..=1.
struct Fraction {
    key: &'static str,
}

impl<'de> DeserializeSeed<'de> for Fraction {
    type Value = f64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<f64, D::Error> {
        let fraction = f64::deserialize(deserializer)?;
        if (0.0..=1.0).contains(&fraction) {
            Ok(fraction)
        } else {
            Err(de::Error::custom(format!(
                "{} must be a fraction in 0..=1, got {fraction}",
                self.key
            )))
        }
    }
}

/// One name or a non-empty list of names, each parsed by `parse`.
struct OneOrMany<T> {
    key: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<'de, T> DeserializeSeed<'de> for OneOrMany<T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T> Visitor<'de> for OneOrMany<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a list of strings")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Vec<T>, E> {
        (self.parse)(value)
            .map(|parsed| vec![parsed])
            .map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut parsed = Vec::new();
        while let Some(value) = seq.next_element::<String>()? {
            parsed.push((self.parse)(&value).map_err(de::Error::custom)?);
        }
        if parsed.is_empty() {
            return Err(de::Error::custom(format!(
                "{} needs at least one value",
                self.key
            )));
        }
        Ok(parsed)
    }
}

/// A name from `table`; an unknown one is an error listing the valid ones.
struct Named<T: 'static> {
    what: &'static str,
    table: &'static [(&'static str, T)],
}

impl<'de, T: Copy> Visitor<'de> for Named<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} name: {}", self.what, names(self.table))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        lookup(self.what, value, self.table).map_err(E::custom)
    }
}

/// The entry of `table` named `name`, or a message naming it and listing
/// the valid names.
fn lookup<T: Copy>(what: &str, name: &str, table: &[(&str, T)]) -> Result<T, String> {
    table
        .iter()
        .find(|(entry, _)| *entry == name)
        .map(|(_, value)| *value)
        .ok_or_else(|| format!("unknown {what} {name:?}; valid {what}s: {}", names(table)))
}

fn names<T>(table: &[(&str, T)]) -> String {
    table
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_error(text: &str) -> String {
        match from_toml(text, "rules.toml") {
            Ok(rules) => panic!("accepted {text:?} as {rules:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn json_error(text: &str) -> String {
        match from_json(text, "rules.json") {
            Ok(rules) => panic!("accepted {text:?} as {rules:?}"),
            Err(error) => error.to_string(),
        }
    }

    const VALID_SCORERS: &str = "bestfit, spread, balanced, cheapest, least_tasks, gpu_packing";
    const VALID_FILTERS: &str = "require_label, forbid_label, max_cpu_utilization, \
        max_memory_utilization, max_gpu_utilization, node_kind, zone";

    #[test]
    fn every_key_reads_into_its_filter_or_scorer() {
        let text = r#"
            [[filter]]
            require_label = { zone = "a", disk = "ssd" }
            forbid_label = { maintenance = "true" }
            [[filter]]
            max_cpu_utilization = 0.8
            max_memory_utilization = 1
            max_gpu_utilization = 0
            [[filter]]
            node_kind = "vm"
            zone = ["eu-1", "eu-2"]
            [[filter]]
            node_kind = ["server", "container_host"]
            zone = "us-1"
            [[score]]
            rule = "bestfit"
            weight = 2
            [[score]]
            rule = "least_tasks"
        "#;
        let rules = from_toml(text, "rules.toml").unwrap();
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // Within a table, TOML keeps no order (nor need it: all must pass).
        let expected = [
            Filter::RequireLabel(labels(&[("zone", "a"), ("disk", "ssd")])),
            Filter::ForbidLabel(labels(&[("maintenance", "true")])),
            Filter::MaxUtilization {
                resource: Utilized::Cpu,
                max: 0.8,
            },
            Filter::MaxUtilization {
                resource: Utilized::Memory,
                max: 1.0,
            },
            Filter::MaxUtilization {
                resource: Utilized::Gpu,
                max: 0.0,
            },
            Filter::NodeKind(vec![NodeKind::Vm]),
            Filter::Zone(vec!["eu-1".into(), "eu-2".into()]),
            Filter::NodeKind(vec![NodeKind::Server, NodeKind::ContainerHost]),
            Filter::Zone(vec!["us-1".into()]),
        ];
        assert_eq!(rules.filters.len(), expected.len());
        for filter in expected {
            assert!(rules.filters.contains(&filter), "{filter:?}");
        }
        assert_eq!(
            rules.scorers,
            [
                Scorer {
                    kind: ScorerKind::BestFit,
                    weight: 2.0
                },
                Scorer {
                    kind: ScorerKind::LeastTasks,
                    weight: 1.0
                },
            ]
        );
    }

    #[test]
    fn a_file_without_rules_is_refused() {
        for rules in [
            from_toml("", "-"),
            from_toml("# nothing\n", "-"),
            from_json("{}", "-"),
        ] {
            let error = rules.unwrap_err().to_string();
            assert!(error.contains("the file has no rules"), "{error}");
        }
    }

    #[test]
    fn bad_toml_names_the_line_and_the_value() {
        let catalogue = [
            // Names.
            (
                "[[score]]\nrule = \"bestfitt\"\n",
                format!("rules.toml:2: unknown scorer \"bestfitt\"; valid scorers: {VALID_SCORERS}"),
            ),
            (
                "[[filter]]\nzone = \"a\"\n\n[[filter]]\nrequire_labels = { zone = \"a\" }\n",
                format!("rules.toml:5: unknown filter \"require_labels\"; valid filters: {VALID_FILTERS}"),
            ),
            (
                "[[filter]]\nnode_kind = \"vmm\"\n",
                "rules.toml:2: unknown node kind \"vmm\"; valid node kinds: server, vm, container_host".to_owned(),
            ),
            (
                "[[filter]]\nnode_kind = [\n  \"vm\",\n  \"Server\",\n]\n",
                "rules.toml:2: unknown node kind \"Server\"; valid node kinds: server, vm, container_host".to_owned(),
            ),
            (
                "# comment\n[[filters]]\nzone = \"a\"\n",
                "rules.toml:2: unknown field `filters`, expected `filter` or `score`".to_owned(),
            ),
            (
                "[[score]]\nrule = \"spread\"\nwieght = 2\n",
                "rules.toml:3: unknown field `wieght`, expected `rule` or `weight`".to_owned(),
            ),
            // Weights.
            (
                "[[score]]\nrule = \"spread\"\nweight = nan\n",
                "rules.toml:3: weight must be a finite number above 0, got NaN".to_owned(),
            ),
            (
                "[[score]]\nrule = \"spread\"\nweight = inf\n",
                "rules.toml:3: weight must be a finite number above 0, got inf".to_owned(),
            ),
            (
                "[[score]]\nrule = \"spread\"\nweight = -inf\n",
                "rules.toml:3: weight must be a finite number above 0, got -inf".to_owned(),
            ),
            (
                "[[score]]\nrule = \"spread\"\n\nweight = -1.5\n",
                "rules.toml:4: weight must be a finite number above 0, got -1.5".to_owned(),
            ),
            (
                "[[score]]\nrule = \"spread\"\nweight = 0\n",
                "rules.toml:3: weight must be a finite number above 0, got 0".to_owned(),
            ),
            (
                "[[score]]\nrule = \"spread\"\nweight = -0.0\n",
                "rules.toml:3: weight must be a finite number above 0, got -0".to_owned(),
            ),
            (
                "[[score]]\nrule = \"spread\"\nweight = \"heavy\"\n",
                "rules.toml:3: invalid type: string \"heavy\", expected f64".to_owned(),
            ),
            (
                "[[score]]\nweight = 1\n",
                "rules.toml:1: missing field `rule`".to_owned(),
            ),
            (
                "score = [\n  { rule = \"spread\" },\n  { weight = 2 },\n]\n",
                "rules.toml:3: missing field `rule`".to_owned(),
            ),
            // Fractions.
            (
                "[[filter]]\nmax_cpu_utilization = 1.5\n",
                "rules.toml:2: max_cpu_utilization must be a fraction in 0..=1, got 1.5".to_owned(),
            ),
            (
                "[[filter]]\nmax_memory_utilization = -0.1\n",
                "rules.toml:2: max_memory_utilization must be a fraction in 0..=1, got -0.1".to_owned(),
            ),
            (
                "[[filter]]\nmax_gpu_utilization = nan\n",
                "rules.toml:2: max_gpu_utilization must be a fraction in 0..=1, got NaN".to_owned(),
            ),
            (
                "[[filter]]\nmax_gpu_utilization = 80\n",
                "rules.toml:2: max_gpu_utilization must be a fraction in 0..=1, got 80".to_owned(),
            ),
            // Shapes.
            (
                "[[filter]]\nzone = \"a\"\n[[filter]]\n[[score]]\nrule = \"spread\"\n",
                format!("rules.toml:3: empty filter table; valid filters: {VALID_FILTERS}"),
            ),
            (
                "[[filter]]\nzone = []\n",
                "rules.toml:2: zone needs at least one value".to_owned(),
            ),
            (
                "[[filter]]\nzone = 3\n",
                "rules.toml:2: invalid type: integer `3`, expected a string or a list of strings".to_owned(),
            ),
            (
                "[[filter]]\nrequire_label = { zone = 1 }\n",
                "rules.toml:2: invalid type: integer `1`, expected a string".to_owned(),
            ),
            (
                "[[filter]]\nrequire_label = \"zone=a\"\n",
                "rules.toml:2: invalid type: string \"zone=a\", expected a map".to_owned(),
            ),
            (
                "filter = 3\n",
                "rules.toml:1: invalid type: integer `3`, expected a sequence".to_owned(),
            ),
            (
                "score = [[\"bestfit\", 1.0]]\n",
                "rules.toml:1: invalid type: sequence, expected a scorer table such as { rule = \"bestfit\", weight = 1.0 }".to_owned(),
            ),
            (
                "score = [\"bestfit\"]\n",
                "rules.toml:1: invalid type: string \"bestfit\", expected a scorer table such as { rule = \"bestfit\", weight = 1.0 }".to_owned(),
            ),
            // Syntax.
            (
                "[[filter]]\nmax_cpu_utilization = 0.5\nmax_cpu_utilization = 0.6\n",
                "rules.toml:3: duplicate key".to_owned(),
            ),
        ];
        for (text, expected) in catalogue {
            assert_eq!(toml_error(text), expected, "{text:?}");
        }
    }

    #[test]
    fn toml_syntax_errors_name_their_line() {
        for (text, line) in [
            ("[[filter]]\nrequire_label = { zone = \"a\"\n", 2),
            ("[[score]]\nrule = \"spread\"\nweight = 2.0.0\n", 3),
            ("[[score]\nrule = \"spread\"\n", 1),
            ("\n\n[[score]]\nrule = spread\n", 4),
            ("[[score]]\nrule = \"spread\n", 2),
        ] {
            let error = toml_error(text);
            assert!(
                error.starts_with(&format!("rules.toml:{line}: ")),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn bad_json_names_the_line_and_the_value() {
        let catalogue = [
            (
                "{\"score\": [\n  {\"rule\": \"bestfitt\"}\n]}",
                format!("rules.json:2: unknown scorer \"bestfitt\"; valid scorers: {VALID_SCORERS}"),
            ),
            (
                "{\"filter\": [\n  {\"zone\": \"a\"},\n  {\"require_labels\": {}}\n]}",
                format!("rules.json:3: unknown filter \"require_labels\"; valid filters: {VALID_FILTERS}"),
            ),
            (
                "{\"score\": [\n  {\"rule\": \"spread\",\n   \"weight\": -1}\n]}",
                "rules.json:3: weight must be a finite number above 0, got -1".to_owned(),
            ),
            (
                "{\"score\": [\n  {\"rule\": \"spread\", \"weight\": 0}\n]}",
                "rules.json:2: weight must be a finite number above 0, got 0".to_owned(),
            ),
            (
                "{\"filter\": [\n  {\"max_cpu_utilization\": 1.01}\n]}",
                "rules.json:2: max_cpu_utilization must be a fraction in 0..=1, got 1.01".to_owned(),
            ),
            (
                "{\"filter\": [\n  {\"node_kind\": [\"vm\", \"bare_metal\"]}\n]}",
                "rules.json:2: unknown node kind \"bare_metal\"; valid node kinds: server, vm, container_host".to_owned(),
            ),
            (
                "{\"filter\": [\n  {\"zone\": \"a\"},\n  {\n  }\n]}",
                format!("rules.json:4: empty filter table; valid filters: {VALID_FILTERS}"),
            ),
            (
                "{\"score\": [\n  {\"weight\": 2}\n]}",
                "rules.json:2: missing field `rule`".to_owned(),
            ),
            (
                "{\n  \"scores\": []\n}",
                "rules.json:2: unknown field `scores`, expected `filter` or `score`".to_owned(),
            ),
            (
                "[]",
                "rules.json:1: invalid type: sequence, expected a table of `filter` and `score` lists".to_owned(),
            ),
            (
                "{\"score\": [\n  {\"rule\": \"spread\", \"weight\": 1e999}\n]}",
                "rules.json:2: number out of range".to_owned(),
            ),
            (
                "{\"filter\": [\n  {\"zone\": \"a\"},\n]}",
                "rules.json:3: trailing comma".to_owned(),
            ),
            ("", "rules.json:1: EOF while parsing a value".to_owned()),
            ("\n", "rules.json:1: EOF while parsing a value".to_owned()),
            (
                "{\"filter\": [\n  {\"zone\": \"a\"}\n",
                "rules.json:2: EOF while parsing a list".to_owned(),
            ),
        ];
        for (text, expected) in catalogue {
            assert_eq!(json_error(text), expected, "{text:?}");
        }
    }

    #[test]
    fn lines_count_from_one_and_stop_at_the_last() {
        assert_eq!(line_of("", 0), 1);
        assert_eq!(line_of("a\nb\n", 0), 1);
        assert_eq!(line_of("a\nb\n", 1), 1);
        assert_eq!(line_of("a\nb\n", 2), 2);
        assert_eq!(line_of("a\nb\n", 4), 2);
        assert_eq!(line_of("a\nb", 3), 2);
        assert_eq!(line_of("a\nb", 99), 2);
    }
}
