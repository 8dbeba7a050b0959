//! Accuracy of the template miner on the public loghub-2k benchmark (`../shared/data/loghub-2k`),
//! in sample and leave-one-dataset-out.
//!
//! In sample: the one shipped configuration (`MinerConfig::default()`) on each of the twelve
//! datasets. Its rules and figures were chosen looking at all twelve, so this figure flatters it.
//!
//! Leave one out: every choice that could be tuned (similarity threshold, prefix depth, and each
//! rule that can be switched off) spans a grid. For each dataset in turn, the grid point with the
//! best average grouping accuracy (GA) over the other eleven is picked, and scored on the held-out
//! one; nothing of the held-out dataset takes part in its own choice. Ties on GA go to the better
//! pairwise F-measure on the same eleven, then to the earlier grid point, and the grid lists a
//! rule switched off before on: a rule the eleven are indifferent to is not given the benefit of
//! the doubt. The average of the twelve held-out scores estimates GA on logs the miner was not
//! tuned on. The bench `template_miner` prints the in-sample figures with throughput.
//!
//! Beyond the twelve: `TAILFIX_EXTRA_LOGHUB=DIR` names a directory of other loghub-2k datasets
//! (same layout), which none of the choices looked at; the shipped configuration and the one the
//! twelve pick are scored on each and printed (not asserted: the data is not in the repository).

#[path = "support/loghub.rs"]
mod loghub;

use tailfix::fingerprint::template::{MinerConfig, TemplateMiner};

/// GA and pairwise F-measure of one configuration on one dataset, a fresh miner fed the
/// `Content` column in file order.
fn score(set: &loghub::Dataset, config: &MinerConfig) -> (f64, f64) {
    let mut miner = TemplateMiner::new(config.clone());
    let predicted: Vec<u64> = set
        .contents
        .iter()
        .map(|c| miner.add(c).cluster_id)
        .collect();
    (
        loghub::grouping_accuracy(&set.templates, &predicted),
        loghub::pairwise_f1(&set.templates, &predicted),
    )
}

/// The tunable choices. A few dozen points keep the debug-built test to some seconds.
fn grid() -> Vec<MinerConfig> {
    let mut grid = Vec::new();
    for rules in 0..16u8 {
        for prefix_depth in [1, 2, 3] {
            for similarity_threshold in [0.5, 0.6, 0.7, 0.8] {
                grid.push(MinerConfig {
                    similarity_threshold,
                    prefix_depth,
                    keep_keywords: rules & 1 != 0,
                    split_word_runs: rules & 2 != 0,
                    dotted_names_vary: rules & 4 != 0,
                    quantity_shapes: rules & 8 != 0,
                    ..MinerConfig::default()
                });
            }
        }
    }
    grid
}

fn describe(c: &MinerConfig) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "threshold {:.1} depth {} keywords {} word-runs {} dotted {} quantities {}",
        c.similarity_threshold,
        c.prefix_depth,
        on(c.keep_keywords),
        on(c.split_word_runs),
        on(c.dotted_names_vary),
        on(c.quantity_shapes)
    )
}

#[test]
fn grouping_accuracy_on_loghub_2k_in_sample_and_leave_one_dataset_out() {
    let dir = loghub::data_dir();
    let sets = match loghub::load_all(&dir) {
        Ok(Some(sets)) if !sets.is_empty() => sets,
        Ok(_) => {
            eprintln!("skipped: no loghub-2k datasets at {}", dir.display());
            return;
        }
        Err(e) => panic!("reading loghub-2k: {e}"),
    };
    assert_eq!(
        sets.len(),
        12,
        "expected the 12 loghub-2k datasets in {}",
        dir.display()
    );
    let n = sets.len();
    let shipped = MinerConfig::default();
    let grid = grid();
    assert!(
        grid.contains(&shipped),
        "the shipped default is in the grid"
    );
    // scores[g][d]: grid point g on dataset d.
    let scores: Vec<Vec<(f64, f64)>> = grid
        .iter()
        .map(|c| sets.iter().map(|s| score(s, c)).collect())
        .collect();
    let in_sample: Vec<f64> = sets.iter().map(|s| score(s, &shipped).0).collect();

    eprintln!(
        "{:<12} {:>9} {:>9}  choice made on the other eleven",
        "dataset", "in-sample", "held-out"
    );
    let mut held_out = Vec::new();
    let mut picked_shipped = 0;
    for d in 0..n {
        let mean_without = |g: usize, f: fn(&(f64, f64)) -> f64| {
            (0..n)
                .filter(|&j| j != d)
                .map(|j| f(&scores[g][j]))
                .sum::<f64>()
                / (n - 1) as f64
        };
        let mut best = 0;
        let mut best_key = (f64::MIN, f64::MIN);
        for g in 0..grid.len() {
            // Rounded so that equal GA summed in another order still ties.
            let ga = (mean_without(g, |s| s.0) * 1e9).round();
            let key = (ga, mean_without(g, |s| s.1));
            if key.0 > best_key.0 || (key.0 == best_key.0 && key.1 > best_key.1) {
                best = g;
                best_key = key;
            }
        }
        if grid[best] == shipped {
            picked_shipped += 1;
        }
        held_out.push(scores[best][d].0);
        eprintln!(
            "{:<12} {:>9.4} {:>9.4}  {}",
            sets[d].name,
            in_sample[d],
            scores[best][d].0,
            describe(&grid[best])
        );
    }
    let in_sample_avg = in_sample.iter().sum::<f64>() / n as f64;
    let held_out_avg = held_out.iter().sum::<f64>() / n as f64;
    eprintln!("{:<12} {in_sample_avg:>9.4} {held_out_avg:>9.4}", "Average");
    eprintln!(
        "shipped default ({}) picked by {picked_shipped} of {n} folds",
        describe(&shipped)
    );
    // Measured 0.9737 in sample. A floor, so that a regression shows.
    assert!(
        in_sample_avg >= 0.97,
        "in-sample average GA {in_sample_avg:.4} < 0.97"
    );
    // Measured 0.9241. Issue 16 asks for 0.93; this is not met. Proxifier held out is 0.5265:
    // the quantity shapes (`1190 bytes (1.16 KB)`, `lifetime <1 sec`) that give it 1.0 were
    // designed looking at Proxifier and no other set rewards them (the eleven are indifferent,
    // so its fold leaves them off). Mac held out is 0.789: only Mac rewards sending dotted names
    // down the tree's wildcard branch. A floor, so that a regression shows.
    assert!(
        held_out_avg >= 0.92,
        "leave-one-dataset-out average GA {held_out_avg:.4} < 0.92"
    );
}

#[test]
fn grouping_accuracy_on_datasets_beyond_the_twelve() {
    let Some(dir) = std::env::var_os("TAILFIX_EXTRA_LOGHUB") else {
        eprintln!("skipped: TAILFIX_EXTRA_LOGHUB names no directory of other loghub-2k datasets");
        return;
    };
    let extra = match loghub::load_all(std::path::Path::new(&dir)) {
        Ok(Some(sets)) => sets,
        Ok(None) => panic!("TAILFIX_EXTRA_LOGHUB: {} is not a directory", dir.display()),
        Err(e) => panic!("reading {}: {e}", dir.display()),
    };
    let twelve = loghub::load_all(&loghub::data_dir())
        .ok()
        .flatten()
        .unwrap_or_default();
    // The grid point the twelve pick, as each fold of the leave-one-out test picks on eleven.
    let grid = grid();
    let picked = grid
        .iter()
        .max_by(|a, b| {
            let mean = |c: &MinerConfig| {
                twelve.iter().map(|s| score(s, c).0).sum::<f64>() / twelve.len().max(1) as f64
            };
            mean(a).total_cmp(&mean(b))
        })
        .cloned()
        .unwrap_or_default();
    let shipped = MinerConfig::default();
    let quantities_off = MinerConfig {
        quantity_shapes: false,
        ..MinerConfig::default()
    };
    eprintln!(
        "{:<12} {:>8} {:>8} {:>14}",
        "dataset", "shipped", "picked", "quantities off"
    );
    let mut sums = [0.0; 3];
    for set in &extra {
        let figures = [
            score(set, &shipped).0,
            score(set, &picked).0,
            score(set, &quantities_off).0,
        ];
        for (sum, figure) in sums.iter_mut().zip(figures) {
            *sum += figure;
        }
        eprintln!(
            "{:<12} {:>8.4} {:>8.4} {:>14.4}",
            set.name, figures[0], figures[1], figures[2]
        );
    }
    let n = extra.len().max(1) as f64;
    eprintln!(
        "{:<12} {:>8.4} {:>8.4} {:>14.4}  (picked on the twelve: {})",
        "Average",
        sums[0] / n,
        sums[1] / n,
        sums[2] / n,
        describe(&picked)
    );
}

#[test]
fn csv_reader_handles_quotes_escapes_and_newlines() {
    let rows = loghub::parse_csv(b"a,b,c\r\n1,\"x, \"\"quoted\"\"\",\"two\nlines\"\n2,,last");
    let text = |r: usize, c: usize| String::from_utf8_lossy(&rows[r][c]).into_owned();
    assert_eq!(rows.len(), 3);
    assert_eq!(text(1, 1), "x, \"quoted\"");
    assert_eq!(text(1, 2), "two\nlines");
    assert_eq!(
        (text(2, 1), text(2, 2)),
        (String::new(), "last".to_string())
    );
}

#[test]
fn grouping_accuracy_counts_only_exactly_recovered_groups() {
    let truth: Vec<String> = ["A", "A", "B", "B", "C", " "]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // A is exact; B is split; C is merged with the blank-template line, which is not scored.
    let predicted = [1, 1, 2, 3, 4, 4];
    assert_eq!(loghub::grouping_accuracy(&truth, &predicted), 3.0 / 5.0);
}

#[test]
fn pairwise_f1_gives_partial_credit() {
    let truth: Vec<String> = ["A", "A", "A", "B"].iter().map(|s| s.to_string()).collect();
    assert_eq!(loghub::pairwise_f1(&truth, &[1, 1, 1, 2]), 1.0);
    // One of three A pairs found, none wrongly joined: precision 1, recall 1/3.
    assert!((loghub::pairwise_f1(&truth, &[1, 1, 2, 3]) - 0.5).abs() < 1e-12);
}
