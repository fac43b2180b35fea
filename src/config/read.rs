//! A small reader over a parsed TOML table that collects every problem instead of stopping at
//! the first one.
//!
//! `serde` with `deny_unknown_fields` reports one error and stops, so an operator fixing a
//! config would see its mistakes one run at a time. This reader walks the table by hand: each
//! accessor records an error naming the full key and returns `None`, and [`Table::finish`]
//! reports every key that no accessor asked for.

use std::collections::BTreeSet;

use toml::Value;

use super::ConfigError;
use crate::num::Decimal;

/// One TOML table being read, with the keys read so far.
pub(super) struct Table<'a> {
    /// Dotted path of this table (`engine`, `markets.BTC-USD`); empty for the root.
    path: String,
    /// The table's contents; an absent section reads as an empty table.
    table: Option<&'a toml::Table>,
    /// Keys an accessor has asked for; whatever else the table holds is unknown.
    seen: BTreeSet<&'a str>,
}

impl<'a> Table<'a> {
    pub(super) fn root(table: &'a toml::Table) -> Table<'a> {
        Table {
            path: String::new(),
            table: Some(table),
            seen: BTreeSet::new(),
        }
    }

    /// A table read from elsewhere (another file), its keys reported under `path`.
    pub(super) fn named(path: &str, table: &'a toml::Table) -> Table<'a> {
        Table {
            path: path.to_string(),
            table: Some(table),
            seen: BTreeSet::new(),
        }
    }

    /// The dotted path of this table itself.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The full dotted name of `key` in this table.
    pub(super) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn raw(&mut self, key: &'a str) -> Option<&'a Value> {
        self.seen.insert(key);
        self.table.and_then(|t| t.get(key))
    }

    /// A sub-table; a missing one reads as empty, a non-table value is an error.
    pub(super) fn section(&mut self, key: &'a str, errors: &mut Vec<ConfigError>) -> Table<'a> {
        let path = self.key(key);
        let table = match self.raw(key) {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                errors.push(ConfigError::new(
                    &path,
                    format!("must be a table, found {}", other.type_str()),
                ));
                None
            }
        };
        Table {
            path,
            table,
            seen: BTreeSet::new(),
        }
    }

    /// Every entry of a table of tables (`[markets.NAME]`), in key order.
    pub(super) fn entries(
        &mut self,
        key: &'a str,
        errors: &mut Vec<ConfigError>,
    ) -> Vec<(&'a str, Table<'a>)> {
        let mut section = self.section(key, errors);
        let Some(table) = section.table else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in table.keys() {
            let sub = section.section(name, errors);
            if sub.table.is_some() {
                out.push((name.as_str(), sub));
            }
        }
        out
    }

    /// An unsigned integer in `min..=max`; `default` when absent (`None` makes it required).
    pub(super) fn u64(
        &mut self,
        key: &'a str,
        default: Option<u64>,
        min: u64,
        max: u64,
        errors: &mut Vec<ConfigError>,
    ) -> Option<u64> {
        let name = self.key(key);
        match self.raw(key) {
            None => missing(&name, default, errors),
            Some(Value::Integer(i)) if *i >= 0 && (*i as u64) >= min && (*i as u64) <= max => {
                Some(*i as u64)
            }
            Some(Value::Integer(i)) => {
                errors.push(ConfigError::new(
                    &name,
                    format!("{i} is out of range {min}..={max}"),
                ));
                None
            }
            Some(other) => {
                errors.push(ConfigError::new(
                    &name,
                    format!("must be an integer, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    /// A boolean; `default` when absent.
    pub(super) fn bool(
        &mut self,
        key: &'a str,
        default: bool,
        errors: &mut Vec<ConfigError>,
    ) -> Option<bool> {
        let name = self.key(key);
        match self.raw(key) {
            None => Some(default),
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                errors.push(ConfigError::new(
                    &name,
                    format!("must be true or false, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    /// A string; `default` when absent (`None` makes it required).
    pub(super) fn string(
        &mut self,
        key: &'a str,
        default: Option<&str>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<String> {
        let name = self.key(key);
        match self.raw(key) {
            None => missing(&name, default.map(str::to_string), errors),
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(ConfigError::new(
                    &name,
                    format!("must be a string, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub(super) fn choice<T: Copy>(
        &mut self,
        key: &'a str,
        default: Option<T>,
        choices: &[(&str, T)],
        errors: &mut Vec<ConfigError>,
    ) -> Option<T> {
        let name = self.key(key);
        let text = match self.raw(key) {
            None => return missing(&name, default, errors),
            Some(Value::String(s)) => s,
            Some(other) => {
                errors.push(ConfigError::new(
                    &name,
                    format!("must be a string, found {}", other.type_str()),
                ));
                return None;
            }
        };
        if let Some((_, v)) = choices.iter().find(|(word, _)| word == text) {
            return Some(*v);
        }
        let words: Vec<_> = choices.iter().map(|(w, _)| format!("\"{w}\"")).collect();
        errors.push(ConfigError::new(
            &name,
            format!("\"{text}\" is not one of {}", words.join(", ")),
        ));
        None
    }

    /// An exact decimal, written as a string (`"0.01"`, exact) or a TOML number.
    pub(super) fn decimal(
        &mut self,
        key: &'a str,
        default: Option<Decimal>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Decimal> {
        let name = self.key(key);
        let parsed = match self.raw(key) {
            None => return missing(&name, default, errors),
            Some(Value::String(s)) => Decimal::parse(s),
            Some(Value::Integer(i)) => Decimal::parse(&i.to_string()),
            // A float's shortest round-trip text is the decimal the operator wrote.
            Some(Value::Float(f)) => Decimal::parse(&format!("{f:?}")),
            Some(other) => {
                errors.push(ConfigError::new(
                    &name,
                    format!("must be a decimal number, found {}", other.type_str()),
                ));
                return None;
            }
        };
        match parsed {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(ConfigError::new(&name, format!("not a valid decimal: {e}")));
                None
            }
        }
    }

    /// The keys of this table, in order.
    pub(super) fn keys(&self) -> Vec<&'a str> {
        self.table
            .map(|t| t.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// An array of strings; empty when absent.
    pub(super) fn strings(&mut self, key: &'a str, errors: &mut Vec<ConfigError>) -> Vec<String> {
        let name = self.key(key);
        match self.raw(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => errors.push(ConfigError::new(
                            &name,
                            format!("must hold strings only, found {}", other.type_str()),
                        )),
                    }
                }
                out
            }
            Some(other) => {
                errors.push(ConfigError::new(
                    &name,
                    format!("must be an array of strings, found {}", other.type_str()),
                ));
                Vec::new()
            }
        }
    }

    /// True when the key is present (and marks it as known).
    pub(super) fn has(&mut self, key: &'a str) -> bool {
        self.raw(key).is_some()
    }

    /// Reports every key of this table that no accessor read.
    pub(super) fn finish(self, errors: &mut Vec<ConfigError>) {
        let Some(table) = self.table else { return };
        for key in table.keys() {
            if !self.seen.contains(key.as_str()) {
                errors.push(ConfigError::new(&self.key(key), "unknown key".to_string()));
            }
        }
    }
}

fn missing<T>(name: &str, default: Option<T>, errors: &mut Vec<ConfigError>) -> Option<T> {
    if default.is_none() {
        errors.push(ConfigError::new(name, "is required".to_string()));
    }
    default
}
