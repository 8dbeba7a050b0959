//! The loghub-2k benchmark (`../shared/data/loghub-2k`, see its README): reading the datasets
//! and scoring grouping accuracy exactly as `../shared/tools/loghub_score.py` does. Shared by the
//! accuracy test and the `template_miner` bench (`#[path]`-included by both).

#![allow(dead_code)] // each includer uses a different part

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One dataset: the `Content` column in file order, with each line's id and ground-truth template.
pub struct Dataset {
    pub name: String,
    pub line_ids: Vec<String>,
    pub contents: Vec<Vec<u8>>,
    pub templates: Vec<String>,
}

/// `/work/shared/data/loghub-2k` as seen from the crate root.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/loghub-2k")
}

/// Every `<D>/<D>_2k.log_structured_corrected.csv` under `dir`, sorted by name (as the scorer
/// lists them). `Ok(None)` when `dir` does not exist.
pub fn load_all(dir: &Path) -> Result<Option<Vec<Dataset>>, String> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut sets = Vec::new();
    for name in names {
        let path = dir
            .join(&name)
            .join(format!("{name}_2k.log_structured_corrected.csv"));
        if path.exists() {
            sets.push(load(&name, &path)?);
        }
    }
    Ok(Some(sets))
}

pub fn load(name: &str, path: &Path) -> Result<Dataset, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = parse_csv(&bytes).into_iter();
    let header = rows
        .next()
        .ok_or_else(|| format!("{}: empty", path.display()))?;
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n.as_bytes())
            .ok_or_else(|| format!("{}: no column {n}", path.display()))
    };
    let (id_col, content_col, template_col) =
        (col("LineId")?, col("Content")?, col("EventTemplate")?);
    let mut set = Dataset {
        name: name.to_string(),
        line_ids: Vec::new(),
        contents: Vec::new(),
        templates: Vec::new(),
    };
    for row in rows {
        let field = |i: usize| row.get(i).cloned().unwrap_or_default();
        set.line_ids
            .push(String::from_utf8_lossy(&field(id_col)).trim().to_string());
        set.contents.push(field(content_col));
        set.templates
            .push(String::from_utf8_lossy(&field(template_col)).into_owned());
    }
    Ok(set)
}

/// RFC 4180 CSV: fields separated by `,`, records by LF or CRLF; a field may be quoted with `"`,
/// and inside quotes `""` is one `"` and separators and newlines are literal.
pub fn parse_csv(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = Vec::new();
    let mut i = 0;
    let mut quoted = false;
    let mut field_started = false;
    while i < data.len() {
        let b = data[i];
        if quoted {
            if b == b'"' {
                if data.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                field.push(b);
            }
        } else {
            match b {
                b'"' if field.is_empty() => quoted = true,
                b',' => row.push(std::mem::take(&mut field)),
                b'\r' if data.get(i + 1) == Some(&b'\n') => {}
                b'\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                    field_started = false;
                    i += 1;
                    continue;
                }
                _ => field.push(b),
            }
        }
        field_started = true;
        i += 1;
    }
    if field_started || !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Grouping accuracy as `loghub_score.py` computes it: over the lines whose ground-truth template
/// is not blank, the share of lines whose predicted group holds exactly the lines of their
/// ground-truth group. `predicted[i]` is the group of line `i`.
pub fn grouping_accuracy<G: Eq + std::hash::Hash + Copy>(
    templates: &[String],
    predicted: &[G],
) -> f64 {
    let scored: Vec<usize> = (0..templates.len())
        .filter(|&i| !templates[i].trim().is_empty())
        .collect();
    let mut pred_sizes: HashMap<G, usize> = HashMap::new();
    for &i in &scored {
        *pred_sizes.entry(predicted[i]).or_default() += 1;
    }
    let mut by_truth: HashMap<&str, Vec<usize>> = HashMap::new();
    for &i in &scored {
        by_truth.entry(templates[i].as_str()).or_default().push(i);
    }
    let mut right = 0;
    for lines in by_truth.values() {
        let label = predicted[lines[0]];
        if lines.iter().all(|&i| predicted[i] == label) && pred_sizes[&label] == lines.len() {
            right += lines.len();
        }
    }
    if scored.is_empty() {
        0.0
    } else {
        right as f64 / scored.len() as f64
    }
}

/// Pairwise F-measure of a grouping: over the pairs of scored lines (as for
/// [`grouping_accuracy`]), precision is the share of pairs put in one group that share a
/// ground-truth template, recall the share of pairs sharing a template that are put in one
/// group. Unlike grouping accuracy it gives partial credit, so it can tell apart two groupings
/// that are exactly right on the same templates and differ on the others.
pub fn pairwise_f1<G: Eq + std::hash::Hash + Copy>(templates: &[String], predicted: &[G]) -> f64 {
    let pairs = |n: usize| (n * n.saturating_sub(1) / 2) as f64;
    let mut both: HashMap<(&str, G), usize> = HashMap::new();
    let mut truth: HashMap<&str, usize> = HashMap::new();
    let mut pred: HashMap<G, usize> = HashMap::new();
    for (i, t) in templates.iter().enumerate() {
        if t.trim().is_empty() {
            continue;
        }
        *both.entry((t.as_str(), predicted[i])).or_default() += 1;
        *truth.entry(t.as_str()).or_default() += 1;
        *pred.entry(predicted[i]).or_default() += 1;
    }
    let right: f64 = both.values().map(|&n| pairs(n)).sum();
    let (p, r) = (
        pred.values().map(|&n| pairs(n)).sum::<f64>(),
        truth.values().map(|&n| pairs(n)).sum::<f64>(),
    );
    if right == 0.0 {
        return if p == 0.0 && r == 0.0 { 1.0 } else { 0.0 };
    }
    let (precision, recall) = (right / p, right / r);
    2.0 * precision * recall / (precision + recall)
}
