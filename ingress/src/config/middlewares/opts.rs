//! A middleware's options as written — from labels (every value a string) or from TOML
//! (typed values) — in one tree whose keys compare without regard to case, as Træfik's
//! do. Each middleware's parser takes the options it knows and [`Opts::finish`] refuses
//! whatever is left, so an option shoal does not know is never dropped silently.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::{invalid, ConfigError};

/// One value as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OptValue {
    /// A string (every label value is one).
    Text(String),
    /// A TOML boolean.
    Bool(bool),
    /// A TOML integer.
    Int(i64),
    /// A TOML float.
    Float(f64),
    /// A TOML array.
    List(Vec<OptValue>),
    /// A table: TOML's, or the keys below a label prefix.
    Table(Opts),
}

/// A table's entries: path, key as written, string value.
pub(crate) type Entries = Vec<(String, String, String)>;

/// Options by key (lower case), each with its key as written and its dotted path for
/// errors.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Opts {
    /// Where this table is, like `middlewares.auth.basicAuth`.
    pub(crate) path: String,
    entries: BTreeMap<String, (String, OptValue)>,
}

impl Opts {
    /// An empty table at `path`.
    pub(crate) fn new(path: impl Into<String>) -> Opts {
        Opts {
            path: path.into(),
            entries: BTreeMap::new(),
        }
    }

    /// Build from a TOML table.
    pub(crate) fn from_toml(path: &str, table: &toml::Table) -> Result<Opts, ConfigError> {
        let mut opts = Opts::new(path);
        for (key, value) in table {
            let sub = format!("{path}.{key}");
            let value = from_toml_value(&sub, value)?;
            opts.insert(key, value)?;
        }
        Ok(opts)
    }

    /// Set `key` (a single segment); a key given twice in different case is refused.
    pub(crate) fn insert(&mut self, key: &str, value: OptValue) -> Result<(), ConfigError> {
        let lower = key.to_ascii_lowercase();
        if let Some((prev, _)) = self.entries.get(&lower) {
            return Err(invalid(
                format!("{}.{key}", self.path),
                format!("given twice (also as `{prev}`)"),
            ));
        }
        self.entries.insert(lower, (key.to_string(), value));
        Ok(())
    }

    /// Set the value at the dotted `segments` below this table, making tables on the way
    /// (labels: `a.b.c=v`).
    pub(crate) fn insert_path(
        &mut self,
        segments: &[&str],
        value: String,
    ) -> Result<(), ConfigError> {
        let Some((first, rest)) = segments.split_first() else {
            return Err(invalid(&self.path, "an option name is missing"));
        };
        if first.is_empty() {
            return Err(invalid(&self.path, "an empty option name"));
        }
        if rest.is_empty() {
            return self.insert(first, OptValue::Text(value));
        }
        let lower = first.to_ascii_lowercase();
        let path = format!("{}.{first}", self.path);
        let entry = self
            .entries
            .entry(lower)
            .or_insert_with(|| (first.to_string(), OptValue::Table(Opts::new(&path))));
        match &mut entry.1 {
            OptValue::Table(t) => t.insert_path(rest, value),
            _ => Err(invalid(path, "is both a value and a table")),
        }
    }

    /// Remove and return `key` (any case) with its path.
    pub(crate) fn take(&mut self, key: &str) -> Option<(String, OptValue)> {
        let (written, value) = self.entries.remove(&key.to_ascii_lowercase())?;
        Some((format!("{}.{written}", self.path), value))
    }

    /// Refuse whatever option no parser took.
    pub(crate) fn finish(self, what: &str) -> Result<(), ConfigError> {
        match self.entries.into_values().next() {
            None => Ok(()),
            Some((key, _)) => Err(invalid(
                format!("{}.{key}", self.path),
                format!("unknown {what} option `{key}`"),
            )),
        }
    }

    /// All entries, as written, in key order.
    pub(crate) fn drain(self) -> impl Iterator<Item = (String, String, OptValue)> {
        let path = self.path;
        self.entries
            .into_values()
            .map(move |(key, value)| (format!("{path}.{key}"), key, value))
    }

    /// A string option.
    pub(crate) fn string(&mut self, key: &str) -> Result<Option<(String, String)>, ConfigError> {
        self.take(key)
            .map(|(path, v)| text(&path, v).map(|t| (path, t)))
            .transpose()
    }

    /// A boolean option (`true`/`false` in any case).
    pub(crate) fn bool(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.take(key)
            .map(|(path, v)| boolean(&path, v))
            .transpose()
    }

    /// A whole number within `T`.
    pub(crate) fn int<T: TryFrom<i64>>(&mut self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some((path, v)) = self.take(key) else {
            return Ok(None);
        };
        let n = match v {
            OptValue::Int(n) => n,
            OptValue::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| invalid(&path, format!("`{t}` is not a whole number")))?,
            other => {
                return Err(invalid(
                    &path,
                    format!("{} is not a whole number", show(&other)),
                ))
            }
        };
        T::try_from(n)
            .map(Some)
            .map_err(|_| invalid(&path, format!("{n} is out of range")))
    }

    /// A list of strings: a TOML array, or a comma-separated label value (empty items
    /// dropped).
    pub(crate) fn list(&mut self, key: &str) -> Result<Option<(String, Vec<String>)>, ConfigError> {
        let Some((path, v)) = self.take(key) else {
            return Ok(None);
        };
        let items = match v {
            OptValue::List(items) => items
                .into_iter()
                .map(|i| text(&path, i))
                .collect::<Result<Vec<_>, _>>()?,
            OptValue::Text(t) => t
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            other => vec![text(&path, other)?],
        };
        Ok(Some((path, items)))
    }

    /// A table of string values, keys as written (`customRequestHeaders`).
    pub(crate) fn map(&mut self, key: &str) -> Result<Option<Entries>, ConfigError> {
        let Some((path, v)) = self.take(key) else {
            return Ok(None);
        };
        let OptValue::Table(t) = v else {
            return Err(invalid(&path, "expected a table of names and values"));
        };
        t.drain()
            .map(|(path, key, v)| text(&path, v).map(|t| (path, key, t)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A nested table; a label's `…ipStrategy=true` (or a TOML `true`) is an empty one.
    pub(crate) fn table(&mut self, key: &str) -> Result<Option<Opts>, ConfigError> {
        let Some((path, v)) = self.take(key) else {
            return Ok(None);
        };
        match v {
            OptValue::Table(t) => Ok(Some(t)),
            OptValue::Bool(true) => Ok(Some(Opts::new(path))),
            OptValue::Text(t) if t.eq_ignore_ascii_case("true") => Ok(Some(Opts::new(path))),
            other => Err(invalid(
                &path,
                format!("expected a table, got {}", show(&other)),
            )),
        }
    }

    /// A duration in Go's syntax (`100ms`, `1.5s`, `1m30s`) or a number of seconds.
    pub(crate) fn duration(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some((path, v)) = self.take(key) else {
            return Ok(None);
        };
        match v {
            OptValue::Int(n) if n >= 0 => Ok(Some(Duration::from_secs(n as u64))),
            OptValue::Text(t) => go_duration(&t).map(Some).map_err(|m| invalid(&path, m)),
            other => Err(invalid(
                &path,
                format!("{} is not a duration", show(&other)),
            )),
        }
    }
}

fn from_toml_value(path: &str, value: &toml::Value) -> Result<OptValue, ConfigError> {
    Ok(match value {
        toml::Value::String(s) => OptValue::Text(s.clone()),
        toml::Value::Integer(n) => OptValue::Int(*n),
        toml::Value::Float(f) => OptValue::Float(*f),
        toml::Value::Boolean(b) => OptValue::Bool(*b),
        toml::Value::Array(items) => OptValue::List(
            items
                .iter()
                .map(|i| from_toml_value(path, i))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => OptValue::Table(Opts::from_toml(path, t)?),
        toml::Value::Datetime(_) => return Err(invalid(path, "dates are not an option value")),
    })
}

fn show(v: &OptValue) -> String {
    match v {
        OptValue::Text(t) => format!("`{t}`"),
        OptValue::Bool(b) => b.to_string(),
        OptValue::Int(n) => n.to_string(),
        OptValue::Float(f) => f.to_string(),
        OptValue::List(_) => "a list".into(),
        OptValue::Table(_) => "a table".into(),
    }
}

/// A string value; numbers are taken as written (a TOML `port = 8443`).
pub(crate) fn text(path: &str, v: OptValue) -> Result<String, ConfigError> {
    match v {
        OptValue::Text(t) => Ok(t),
        OptValue::Int(n) => Ok(n.to_string()),
        other => Err(invalid(
            path,
            format!("expected a string, got {}", show(&other)),
        )),
    }
}

fn boolean(path: &str, v: OptValue) -> Result<bool, ConfigError> {
    match v {
        OptValue::Bool(b) => Ok(b),
        OptValue::Text(t) if t.trim().eq_ignore_ascii_case("true") => Ok(true),
        OptValue::Text(t) if t.trim().eq_ignore_ascii_case("false") => Ok(false),
        other => Err(invalid(
            path,
            format!("{} is not true or false", show(&other)),
        )),
    }
}

/// Parse a duration as Go's `time.ParseDuration` does (`300ms`, `1.5h`, `2h45m`, units
/// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); a bare number is seconds, as in Træfik.
pub fn go_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a duration like 100ms, 1.5s or 1m30s");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(go_duration("250us"), Ok(Duration::from_micros(250)));
        for bad in ["", "s", "10x", "-1s", "1.2.3s", "ms10"] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_compare_without_case_and_leftovers_are_refused() {
        let mut o = Opts::new("middlewares.m.stripPrefix");
        o.insert_path(&["Prefixes"], "/a, /b,".into()).unwrap();
        o.insert_path(&["forceslash"], "TRUE".into()).unwrap();
        o.insert_path(&["colour"], "red".into()).unwrap();
        assert_eq!(
            o.list("prefixes").unwrap().unwrap().1,
            vec!["/a".to_string(), "/b".to_string()]
        );
        assert_eq!(o.bool("forceSlash").unwrap(), Some(true));
        let e = o.finish("stripPrefix").unwrap_err().to_string();
        assert_eq!(
            e,
            "middlewares.m.stripPrefix.colour: unknown stripPrefix option `colour`"
        );
    }

    #[test]
    fn a_key_twice_in_different_case_is_refused() {
        let mut o = Opts::new("m");
        o.insert_path(&["a", "b"], "1".into()).unwrap();
        assert!(o.insert_path(&["A", "b"], "1".into()).is_err());
        assert!(o.insert_path(&["a"], "1".into()).is_err());
    }
}
