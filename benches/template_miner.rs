//! Accuracy and throughput of the template miner on loghub-2k (`../shared/data/loghub-2k`).
//!
//! For each dataset the `Content` column goes, in file order, through a fresh
//! `TemplateMiner::default()` — one configuration for every dataset — and the cluster ids are
//! scored with grouping accuracy (GA) exactly as `../shared/tools/loghub_score.py` scores them.
//! Throughput repeats the dataset with a fresh miner per repetition (so cluster creation is
//! paid every time, as on the first pass), in batches of about 50 ms; the table shows the best
//! batch (least disturbed by other processes on the machine) and the median.
//!
//! The predictions are also written as `<Dataset>.csv` (`LineId,group`) to a temporary
//! directory, and when `python3` and the scorer are present the scorer is run on them and its
//! figures are checked against ours. `TEMPLATE_MINER_PREDICTIONS=DIR` writes them to `DIR` and
//! keeps them.
//!
//! `cargo bench --bench template_miner [DATASET…]`

#[path = "../tests/support/loghub.rs"]
mod loghub;

use std::hint::black_box;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tailfix::fingerprint::template::TemplateMiner;

const BATCH: Duration = Duration::from_millis(50);
const BATCHES: usize = 15;

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = loghub::data_dir();
    let sets = match loghub::load_all(&dir) {
        Ok(Some(sets)) => sets,
        Ok(None) => {
            println!(
                "no loghub-2k datasets at {}; nothing to measure",
                dir.display()
            );
            return;
        }
        Err(e) => {
            eprintln!("reading loghub-2k: {e}");
            std::process::exit(1);
        }
    };
    let sets: Vec<_> = sets
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .collect();
    // `TEMPLATE_MINER_PREDICTIONS=DIR` keeps the predictions for a look; by default they go to
    // a temporary directory that is removed at the end.
    let keep = std::env::var_os("TEMPLATE_MINER_PREDICTIONS").map(PathBuf::from);
    let out = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tailfix-template-miner-{}", std::process::id()))
    });
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("{}: {e}", out.display());
        std::process::exit(1);
    }

    println!(
        "{:<12} {:>7} {:>9} {:>15} {:>15}",
        "dataset", "GA", "clusters", "lines/s best", "lines/s median"
    );
    let (mut best_sum, mut median_sum) = (0.0, 0.0);
    let mut scores = Vec::new();
    for set in &sets {
        let mut miner = TemplateMiner::default();
        let predicted: Vec<u64> = set
            .contents
            .iter()
            .map(|c| miner.add(c).cluster_id)
            .collect();
        let ga = loghub::grouping_accuracy(&set.templates, &predicted);
        if let Err(e) = write_predictions(&out, set, &predicted) {
            eprintln!("writing predictions: {e}");
        }
        let (best, median) = throughput(&set.contents);
        println!(
            "{:<12} {ga:>7.4} {:>9} {best:>15.0} {median:>15.0}",
            set.name,
            miner.len()
        );
        scores.push((set.name.clone(), ga));
        best_sum += best;
        median_sum += median;
    }
    let n = sets.len().max(1) as f64;
    let average = scores.iter().map(|(_, ga)| ga).sum::<f64>() / n;
    println!(
        "{:<12} {average:>7.4} {:>9} {:>15.0} {:>15.0}",
        "Average",
        "",
        best_sum / n,
        median_sum / n
    );

    if only.is_empty() {
        cross_check(&out, &scores, average);
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// Lines per second over `BATCHES` batches of about `BATCH` each: (best, median).
fn throughput(contents: &[Vec<u8>]) -> (f64, f64) {
    // How many repetitions make a batch, from one timed repetition.
    let start = Instant::now();
    run_once(contents);
    let once = start.elapsed().max(Duration::from_micros(1));
    let reps = (BATCH.as_secs_f64() / once.as_secs_f64()).ceil().max(1.0) as usize;
    let mut rates: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                run_once(contents);
            }
            (reps * contents.len()) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() - 1], rates[rates.len() / 2])
}

fn run_once(contents: &[Vec<u8>]) {
    let mut miner = TemplateMiner::default();
    for line in contents {
        black_box(miner.add(black_box(line)));
    }
}

fn write_predictions(dir: &Path, set: &loghub::Dataset, predicted: &[u64]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(
        dir.join(format!("{}.csv", set.name)),
    )?);
    writeln!(f, "LineId,group")?;
    for (id, group) in set.line_ids.iter().zip(predicted) {
        writeln!(f, "{id},{group}")?;
    }
    f.flush()
}

/// Runs `loghub_score.py` on the written predictions and compares its figures, per dataset and
/// on average, with ours.
fn cross_check(predictions: &Path, ours: &[(String, f64)], average: f64) {
    let scorer: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/loghub_score.py");
    if !scorer.exists() {
        println!(
            "(scorer not found at {}: cross-check skipped)",
            scorer.display()
        );
        return;
    }
    let output = match Command::new("python3")
        .arg(&scorer)
        .arg(predictions)
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "(scorer failed: {})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("(python3 not runnable: {e}; cross-check skipped)");
            return;
        }
    };
    // Lines like `Apache       GA 1.0000  FGA 1.0000` and `Average      GA 0.9731  over 12 datasets`.
    let text = String::from_utf8_lossy(&output.stdout);
    let theirs: Vec<(&str, f64)> = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            (words.next()? == "GA").then_some(())?;
            Some((name, words.next()?.parse().ok()?))
        })
        .collect();
    let expected = ours
        .iter()
        .map(|(n, ga)| (n.as_str(), *ga))
        .chain([("Average", average)]);
    let agree = theirs.len() == ours.len() + 1
        && expected
            .zip(&theirs)
            .all(|((n, a), &(m, b))| n == m && (a - b).abs() < 5e-5);
    if agree {
        println!(
            "loghub_score.py on the same predictions: the same GA for every dataset and the average"
        );
    } else {
        println!("loghub_score.py on the same predictions disagrees:\n{text}");
        std::process::exit(1);
    }
}
