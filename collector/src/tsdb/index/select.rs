//! Selecting series by promql-parser matchers on the in-memory index, with Prometheus'
//! semantics: a missing label reads as `""`, so a matcher that accepts `""` (`{job=""}`,
//! `{job!="x"}`, `{job=~"a|"}`) also selects series without the label.
//!
//! Plan: intersect the postings of every `name="value"` matcher with a non-empty value
//! (the usual selectors name a metric); with none, take the union of the postings of the
//! values a regex accepts if some `=~` matcher rejects `""`, else every series. Then filter
//! the candidates by the remaining matchers, testing each distinct label value once per
//! query rather than once per series.

use std::collections::BTreeSet;

use hashbrown::HashMap;

use super::{MemIndex, SeriesId};
use crate::series::{MatchOp, Matcher};

impl MemIndex {
    /// The ids of the series every matcher accepts, ascending. An empty `matchers` selects
    /// every series.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut lists: Vec<&[SeriesId]> = Vec::new();
        for m in matchers {
            if uses_postings(m) {
                let pair = self
                    .symbol(&m.name)
                    .zip(self.symbol(&m.value))
                    .and_then(|(n, v)| self.pair(n, v));
                match pair {
                    Some(p) => lists.push(&self.postings[p as usize]),
                    None => return Vec::new(),
                }
            }
        }
        let candidates = if lists.is_empty() {
            self.regex_candidates(matchers)
                .unwrap_or_else(|| self.ids().collect())
        } else {
            lists.sort_by_key(|l| l.len());
            intersect(&lists)
        };
        let mut filters: Vec<Filter<'_>> = matchers
            .iter()
            .filter(|m| !uses_postings(m))
            .map(|m| Filter {
                matcher: m,
                name: self.symbol(&m.name),
                memo: HashMap::new(),
            })
            .collect();
        candidates
            .into_iter()
            .filter(|&id| filters.iter_mut().all(|f| f.accepts(self, id)))
            .collect()
    }

    /// The union of postings of the values accepted by the first regex matcher that
    /// rejects `""`; `None` when there is no such matcher.
    fn regex_candidates(&self, matchers: &[Matcher]) -> Option<Vec<SeriesId>> {
        let m = matchers
            .iter()
            .find(|m| matches!(m.op, MatchOp::Re(_)) && !m.is_match(""))?;
        let Some(pairs) = self.symbol(&m.name).and_then(|n| self.name_pairs.get(&n)) else {
            return Some(Vec::new());
        };
        let mut ids: Vec<SeriesId> = pairs
            .iter()
            .filter(|&&p| m.is_match(self.string(self.pairs[p as usize].1)))
            .flat_map(|&p| self.postings[p as usize].iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }

    /// The label names of `ids`, sorted, unique.
    pub fn label_names(&self, ids: &[SeriesId]) -> Vec<String> {
        let names: BTreeSet<&str> = ids
            .iter()
            .flat_map(|&id| self.pairs_of(id))
            .map(|&p| self.string(self.pairs[p as usize].0))
            .collect();
        names.into_iter().map(str::to_owned).collect()
    }

    /// The values of label `name` among `ids`, sorted, unique.
    pub fn label_values(&self, name: &str, ids: &[SeriesId]) -> Vec<String> {
        let Some(name) = self.symbol(name) else {
            return Vec::new();
        };
        let values: BTreeSet<&str> = ids
            .iter()
            .filter_map(|&id| self.value_of(id, name))
            .map(|v| self.string(v))
            .collect();
        values.into_iter().map(str::to_owned).collect()
    }
}

/// Whether `m` is answered from postings (`name="value"`, value not empty).
fn uses_postings(m: &Matcher) -> bool {
    matches!(m.op, MatchOp::Equal) && !m.value.is_empty()
}

/// One non-postings matcher with its answers so far, by value symbol.
struct Filter<'m> {
    matcher: &'m Matcher,
    name: Option<u32>,
    memo: HashMap<u32, bool>,
}

impl Filter<'_> {
    fn accepts(&mut self, index: &MemIndex, id: SeriesId) -> bool {
        let value = self.name.and_then(|n| index.value_of(id, n));
        match value {
            None => self.matcher.is_match(""),
            Some(v) => *self
                .memo
                .entry(v)
                .or_insert_with(|| self.matcher.is_match(index.string(v))),
        }
    }
}

/// The ids in every list (each ascending), ascending. `lists` is sorted shortest first.
fn intersect(lists: &[&[SeriesId]]) -> Vec<SeriesId> {
    let Some((first, rest)) = lists.split_first() else {
        return Vec::new();
    };
    let mut cursors = vec![0usize; rest.len()];
    first
        .iter()
        .copied()
        .filter(|&id| {
            rest.iter().zip(cursors.iter_mut()).all(|(list, at)| {
                *at += list[*at..].partition_point(|&x| x < id);
                list.get(*at) == Some(&id)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Index;
    use crate::series::{Labels, Matcher};
    use promql_parser::parser::{self, Expr};

    /// The matchers of a PromQL selector, as a query would hand them over.
    fn matchers(selector: &str) -> Vec<Matcher> {
        match parser::parse(selector).unwrap() {
            Expr::VectorSelector(vs) => {
                let mut m = vs.matchers.matchers;
                if let Some(name) = vs.name {
                    m.push(Matcher::new(
                        crate::series::MatchOp::Equal,
                        "__name__",
                        &name,
                    ));
                }
                m
            }
            other => panic!("not a selector: {other:?}"),
        }
    }

    fn fixture() -> (tempfile::TempDir, Index, Vec<Labels>) {
        let dir = tempfile::tempdir().unwrap();
        let index = crate::tsdb::index::tests::open_index(dir.path(), 1);
        let all = vec![
            Labels::from_pairs([("__name__", "up"), ("host", "a"), ("job", "node")]),
            Labels::from_pairs([("__name__", "up"), ("host", "b"), ("job", "probe")]),
            Labels::from_pairs([("__name__", "up"), ("host", "c")]),
            Labels::from_pairs([("__name__", "load1"), ("host", "a"), ("job", "node")]),
        ];
        index.resolve("x", &all, 100).unwrap();
        (dir, index, all)
    }

    fn select(index: &Index, all: &[Labels], selector: &str) -> Vec<Labels> {
        let mem = index.read();
        let mut got: Vec<Labels> = mem
            .select(&matchers(selector))
            .into_iter()
            .map(|id| mem.labels(id).unwrap())
            .collect();
        got.sort();
        // Cross-check against the definition: every series whose labels match.
        let mut want: Vec<Labels> = all
            .iter()
            .filter(|l| l.matches(&matchers(selector)))
            .cloned()
            .collect();
        want.sort();
        assert_eq!(got, want, "{selector}");
        got
    }

    #[test]
    fn all_four_operators_follow_prometheus() {
        let (_dir, index, all) = fixture();
        let host = |ls: Vec<Labels>| -> Vec<String> {
            ls.iter()
                .map(|l| format!("{}/{}", l.metric_name().unwrap(), l.get("host").unwrap()))
                .collect()
        };
        assert_eq!(host(select(&index, &all, r#"up{job="node"}"#)), ["up/a"]);
        assert_eq!(
            host(select(&index, &all, r#"up{job!="node"}"#)),
            ["up/b", "up/c"]
        );
        assert_eq!(host(select(&index, &all, r#"up{job=~"no.*"}"#)), ["up/a"]);
        assert_eq!(
            host(select(&index, &all, r#"up{job!~"no.*"}"#)),
            ["up/b", "up/c"]
        );
        assert_eq!(
            host(select(&index, &all, r#"{__name__=~"up|load1", host="a"}"#)),
            ["load1/a", "up/a"]
        );
        // Regexes are anchored.
        assert!(select(&index, &all, r#"up{job=~"nod"}"#).is_empty());
    }

    #[test]
    fn empty_matchers_select_series_without_the_label() {
        let (_dir, index, all) = fixture();
        let hosts = |ls: Vec<Labels>| -> Vec<String> {
            ls.iter()
                .map(|l| l.get("host").unwrap().to_owned())
                .collect()
        };
        assert_eq!(hosts(select(&index, &all, r#"up{job=""}"#)), ["c"]);
        assert_eq!(
            hosts(select(&index, &all, r#"up{job=~"probe|"}"#)),
            ["b", "c"]
        );
        assert_eq!(hosts(select(&index, &all, r#"up{job!=""}"#)), ["a", "b"]);
        assert_eq!(
            hosts(select(&index, &all, r#"up{nosuch!~".+"}"#)),
            ["a", "b", "c"]
        );
        assert!(select(&index, &all, r#"up{nosuch="x"}"#).is_empty());
    }

    #[test]
    fn label_names_and_values_of_a_selection() {
        let (_dir, index, _) = fixture();
        let mem = index.read();
        let ids = mem.select(&matchers("up"));
        assert_eq!(mem.label_names(&ids), ["__name__", "host", "job"]);
        assert_eq!(mem.label_values("job", &ids), ["node", "probe"]);
        assert!(mem.label_values("nosuch", &ids).is_empty());
    }
}
