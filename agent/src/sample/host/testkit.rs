//! Test helpers shared by the host samplers' tests: render a table's live
//! series as sorted text lines, so a test can assert an exact set.

use std::path::Path;

use crate::sample::{SampleError, Sampler, SeriesTable};

/// Live series as `name{label="value",...} value`, sorted.
pub(crate) fn render(table: &SeriesTable) -> Vec<String> {
    let mut lines: Vec<String> = table
        .live()
        .filter_map(|s| {
            let family = table.family_of(s.family)?;
            let labels: Vec<String> = family
                .labels
                .iter()
                .zip(s.values.iter())
                .map(|(l, v)| format!("{l}=\"{v}\""))
                .collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            Some(format!("{}{labels} {}", family.name, s.value))
        })
        .collect();
    lines.sort();
    lines
}

/// Runs one round of `sampler` into `table`.
pub(crate) fn round(sampler: &mut dyn Sampler, table: &mut SeriesTable) -> Result<(), SampleError> {
    table.begin_round();
    sampler.sample(table)
}

/// Distinct family names of the live series.
pub(crate) fn live_names(table: &SeriesTable) -> Vec<String> {
    let mut names: Vec<String> = table
        .live()
        .filter_map(|s| table.family_of(s.family).map(|f| f.name.to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Writes `text` to `dir/rel`, creating parents.
pub(crate) fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// The fixture `testdata/<name>` as text.
pub(crate) fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sample/host/testdata")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
