//! Reads criterion's estimates and writes the comparison as Markdown: the
//! medians of every subject and workload, then the ratios that matter (ours
//! / the peer, ours / the floor) checked against the targets.
//!
//! Criterion keeps each benchmark's estimates in
//! `<criterion dir>/<group>/<subject>[/<parameter>]/new/estimates.json`; the
//! median's `point_estimate` is the time per operation in nanoseconds.
//! The at-rest workloads keep theirs in
//! `<criterion dir>/<group>/<backend>/<mode>/new/estimates.json`, and the
//! report gives each mode's median and its ratio to plain on the same
//! backend.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::at_rest::{BACKENDS as AT_REST_BACKENDS, Mode};
use crate::targets::NAMES;
use crate::workloads::STORED_COUNTS;

/// A column of the medians table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The criterion group.
    pub group: &'static str,
    /// The parameter directory below the subject, if the group has one.
    pub param: Option<&'static str>,
    /// The column heading.
    pub title: &'static str,
}

const fn col(group: &'static str, param: Option<&'static str>, title: &'static str) -> Column {
    Column { group, param, title }
}

/// The columns, in order. `purge_expired` finds its parameter by itself
/// (file-backed subjects purge a smaller population).
pub const COLUMNS: [Column; 14] = [
    col("load_hit", None, "load hit"),
    col("load_miss", None, "load miss"),
    col("create", None, "create"),
    col("save_small", None, "save 198 B"),
    col("save_medium", None, "save 4 KB"),
    col("save_large", None, "save 64 KB"),
    col("save_if_version", None, "save if version"),
    col("touch", None, "touch"),
    col("delete", None, "delete"),
    col("rotate", None, "rotate"),
    col("load_stored", Some("1000"), "load, 1k stored"),
    col("load_stored", Some("100000"), "load, 100k stored"),
    col("purge_expired", None, "purge 50k of 100k"),
    col("mix_32_tasks", None, "32-task mix"),
];

/// The columns of the at-rest table; each is read per backend and mode
/// (the mode is the parameter directory).
pub const AT_REST_COLUMNS: [Column; 2] = [
    col("at_rest_load_hit", None, "load hit"),
    col("at_rest_save_small", None, "save 198 B"),
];

/// The name the at-rest medians of `backend` in `mode` are kept under in
/// [`Results`] (`memory/hashed`): never a subject of the main table.
#[must_use]
pub fn at_rest_subject(backend: &str, mode: Mode) -> String {
    format!("{backend}/{}", mode.name())
}

/// The mix column: shown as operations per second.
const MIX: &str = "mix_32_tasks";

/// One measured median.
#[derive(Debug, Clone, PartialEq)]
pub struct Median {
    /// Nanoseconds per operation.
    pub ns: f64,
    /// The parameter directory it was found under (purge populations).
    pub param: Option<String>,
}

/// Every median found, by (subject, column title).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    medians: BTreeMap<(String, &'static str), Median>,
}

/// A report error: a missing directory or an unreadable estimates file.
pub type ReportError = Box<dyn std::error::Error + Send + Sync>;

impl Results {
    /// Reads every estimate under `criterion_dir` (usually
    /// `target/criterion`).
    ///
    /// # Errors
    ///
    /// When the directory does not exist or an estimates file is not
    /// criterion's JSON.
    pub fn read(criterion_dir: &Path) -> Result<Self, ReportError> {
        if !criterion_dir.is_dir() {
            return Err(format!("{} does not exist: run the benchmarks first", criterion_dir.display()).into());
        }
        let mut results = Self::default();
        for subject in NAMES {
            for column in COLUMNS {
                let base = criterion_dir.join(column.group).join(subject);
                let found = match column.param {
                    Some(param) => Some((base.join(param), Some(param.to_owned()))),
                    None if column.group == "purge_expired" => first_param_dir(&base)?,
                    None => Some((base, None)),
                };
                let Some((dir, param)) = found else { continue };
                let file = dir.join("new").join("estimates.json");
                if let Some(ns) = read_median(&file)? {
                    results.insert(subject, column.title, Median { ns, param });
                }
            }
        }
        for backend in AT_REST_BACKENDS {
            for mode in Mode::ALL {
                for column in AT_REST_COLUMNS {
                    let file = criterion_dir
                        .join(column.group)
                        .join(backend)
                        .join(mode.name())
                        .join("new")
                        .join("estimates.json");
                    if let Some(ns) = read_median(&file)? {
                        let param = Some(mode.name().to_owned());
                        results.insert(&at_rest_subject(backend, mode), column.title, Median { ns, param });
                    }
                }
            }
        }
        Ok(results)
    }

    /// Records a median (for tests and other sources).
    pub fn insert(&mut self, subject: &str, title: &'static str, median: Median) {
        self.medians.insert((subject.to_owned(), title), median);
    }

    /// The median of `subject` in the column titled `title`.
    #[must_use]
    pub fn get(&self, subject: &str, title: &str) -> Option<&Median> {
        self.medians
            .iter()
            .find(|((s, t), _)| s == subject && *t == title)
            .map(|(_, m)| m)
    }

    /// Whether nothing was found.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.medians.is_empty()
    }

    fn subjects(&self) -> Vec<&'static str> {
        NAMES
            .into_iter()
            .filter(|s| self.medians.keys().any(|(name, _)| name == s))
            .collect()
    }

    /// `ours / other` in time per operation for one column (below 1: ours
    /// is faster).
    #[must_use]
    pub fn ratio(&self, ours: &str, other: &str, title: &str) -> Option<f64> {
        let a = self.get(ours, title)?;
        let b = self.get(other, title)?;
        (b.ns > 0.0).then(|| a.ns / b.ns)
    }
}

impl Results {
    /// The at-rest median of `backend` in `mode`, in the at-rest column
    /// titled `title`.
    #[must_use]
    pub fn at_rest(&self, backend: &str, mode: Mode, title: &str) -> Option<&Median> {
        self.get(&at_rest_subject(backend, mode), title)
    }

    /// `mode / plain` on `backend` in time per operation (above 1: the
    /// mode costs that much more).
    #[must_use]
    pub fn at_rest_ratio(&self, backend: &str, mode: Mode, title: &str) -> Option<f64> {
        self.ratio(
            &at_rest_subject(backend, mode),
            &at_rest_subject(backend, Mode::Plain),
            title,
        )
    }
}

fn first_param_dir(base: &Path) -> Result<Option<(PathBuf, Option<String>)>, ReportError> {
    if !base.is_dir() {
        return Ok(None);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(base)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("new").join("estimates.json").is_file())
        .collect();
    dirs.sort();
    Ok(dirs.into_iter().next().map(|p| {
        let param = p.file_name().map(|n| n.to_string_lossy().into_owned());
        (p, param)
    }))
}

fn read_median(file: &Path) -> Result<Option<f64>, ReportError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not criterion's JSON: {e}", file.display()))?;
    let ns = json["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("{}: no median.point_estimate", file.display()))?;
    Ok(Some(ns))
}

/// A time per operation, in the unit that suits it.
#[must_use]
pub fn format_time(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// Operations per second from a time per operation.
#[must_use]
pub fn format_rate(ns: f64) -> String {
    if ns <= 0.0 {
        return "—".to_owned();
    }
    let per_sec = 1e9 / ns;
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.0} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} /s")
    }
}

fn cell(results: &Results, subject: &str, column: &Column) -> String {
    let Some(m) = results.get(subject, column.title) else {
        return "—".to_owned();
    };
    let value = if column.group == MIX {
        format_rate(m.ns)
    } else {
        format_time(m.ns)
    };
    match (&m.param, column.group) {
        (Some(p), "purge_expired") if p != "50000_of_100000" => format!("{value} ({})", p.replace('_', " ")),
        _ => value,
    }
}

/// The media: our store, its peer (if any), its floor and what the floor is.
const MEDIA: [(&str, Option<&str>, &str, &str); 6] = [
    ("memory", Some("memory-peer"), "memory-floor", "locked HashMap"),
    ("file", None, "file-floor", "plain file read"),
    ("sqlite", Some("sqlite-peer"), "sqlite-floor", "raw rusqlite"),
    ("redis", Some("redis-peer"), "redis-floor", "raw redis-rs"),
    (
        "postgres",
        Some("postgres-peer"),
        "postgres-floor",
        "raw tokio-postgres",
    ),
    ("mysql", Some("mysql-peer"), "mysql-floor", "raw mysql_async"),
];

/// Each backend's bounds against its floor (see [`checks`]): our store, the
/// column, the bound.
const FLOOR_BOUNDS: [(&str, &str, f64); 20] = [
    ("memory", "load hit", 1.5),
    ("memory", "save 198 B", 1.5),
    ("memory", "save if version", 1.5),
    ("memory", "32-task mix", 1.0),
    ("file", "load hit", 1.5),
    ("sqlite", "load hit", 1.3),
    ("sqlite", "save 198 B", 1.5),
    ("sqlite", "save if version", 1.5),
    ("sqlite", "touch", 1.5),
    ("sqlite", "32-task mix", 1.5),
    ("redis", "load hit", 1.2),
    ("redis", "save 198 B", 1.2),
    ("redis", "32-task mix", 1.3),
    ("postgres", "load hit", 1.3),
    ("postgres", "save 198 B", 1.3),
    ("postgres", "save if version", 1.3),
    ("postgres", "purge 50k of 100k", 1.5),
    ("mysql", "load hit", 1.3),
    ("mysql", "save if version", 1.3),
    ("mysql", "purge 50k of 100k", 1.5),
];

/// One target of the issue, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What the target says.
    pub target: String,
    /// The measured ratio, if both sides were measured.
    pub ratio: Option<f64>,
    /// The bound the ratio must stay at or under.
    pub bound: f64,
}

impl Check {
    /// Whether the ratio was measured and is within the bound.
    #[must_use]
    pub fn met(&self) -> bool {
        self.ratio.is_some_and(|r| r <= self.bound)
    }
}

/// The targets: every backend at least as fast as its peer (each column,
/// contention too); each backend within a bound of its medium's floor, in
/// time per operation (for the mix, the inverse of throughput):
///
/// | backend | operation | bound |
/// |---|---|---:|
/// | memory | load hit, save 198 B, save if version | 1.5 |
/// | memory | 32-task mix | 1.0 (ahead of the locked map) |
/// | file | load hit | 1.5 |
/// | SQLite | load hit | 1.3 |
/// | SQLite | save 198 B, save if version, touch, 32-task mix | 1.5 |
/// | Redis | load hit, save 198 B | 1.2 |
/// | Redis | 32-task mix | 1.3 |
/// | PostgreSQL | load hit, save 198 B, save if version | 1.3 |
/// | PostgreSQL | purge 50k of 100k | 1.5 |
/// | MySQL | load hit, save if version | 1.3 |
/// | MySQL | purge 50k of 100k | 1.5 |
///
/// and load nearly flat (within 1.5x) from 1k to 100k stored. Save if
/// version and touch are what the session handle and the layer write
/// with; plain save is kept for the peers, which have nothing else.
#[must_use]
pub fn checks(results: &Results) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |target: String, ratio: Option<f64>, bound: f64| checks.push(Check { target, ratio, bound });
    for (ours, peer, _, _) in MEDIA {
        let Some(peer) = peer else { continue };
        for column in COLUMNS {
            if results.get(ours, column.title).is_none() && results.get(peer, column.title).is_none() {
                continue;
            }
            if results.get(peer, column.title).is_none() {
                continue; // the peer has no such operation
            }
            check(
                format!("{ours} ≤ {peer}: {}", column.title),
                results.ratio(ours, peer, column.title),
                1.0,
            );
        }
    }
    for (ours, title, bound) in FLOOR_BOUNDS {
        let Some((_, _, floor, name)) = MEDIA.into_iter().find(|m| m.0 == ours) else {
            continue;
        };
        check(
            format!("{ours} {title} ≤ {bound:.1} × {name}"),
            results.ratio(ours, floor, title),
            bound,
        );
    }
    let (small, large) = (STORED_COUNTS[0], STORED_COUNTS[1]);
    for (ours, _, _, _) in MEDIA {
        let ratio = growth(results, ours);
        check(
            format!(
                "{ours} load flat: {}k stored ≤ 1.5 × {}k stored",
                large / 1000,
                small / 1000
            ),
            ratio,
            1.5,
        );
    }
    checks
}

fn ratio_text(r: Option<f64>) -> String {
    match r {
        None => "—".to_owned(),
        Some(r) if r >= 0.1 => format!("{r:.2}"),
        Some(r) if r >= 0.001 => format!("{r:.3}"),
        Some(_) => "<0.001".to_owned(),
    }
}

/// Load time with 100k records stored over load time with 1k stored.
fn growth(results: &Results, subject: &str) -> Option<f64> {
    let a = results.get(subject, "load, 1k stored")?;
    let b = results.get(subject, "load, 100k stored")?;
    (a.ns > 0.0).then(|| b.ns / a.ns)
}

/// The whole report as Markdown; `heading` goes first (run date, mode).
#[must_use]
pub fn render(results: &Results, heading: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Session store benchmarks\n\n{heading}\n");
    let _ = writeln!(
        out,
        "Medians of criterion's samples, time per operation from one task (the 32-task mix: \
         operations per second, 90% loads and 10% saves over 10,000 records). \
         Records of 198 B (5 keys) unless the column says otherwise. — : not measured \
         (no such operation, or the service was not there).\n"
    );
    let subjects = results.subjects();
    if !subjects.is_empty() {
        render_comparison(&mut out, results, &subjects);
    }
    render_at_rest(&mut out, results);
    out
}

/// The medians of every subject, the ratios, the growth and the targets.
fn render_comparison(out: &mut String, results: &Results, subjects: &[&'static str]) {
    let _ = write!(out, "| store |");
    for c in &COLUMNS {
        let _ = write!(out, " {} |", c.title);
    }
    let _ = write!(out, "\n|---|");
    for _ in &COLUMNS {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for s in subjects {
        let _ = write!(out, "| {s} |");
        for c in &COLUMNS {
            let _ = write!(out, " {} |", cell(results, s, c));
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "\n## Ratios\n\nOurs divided by the peer and by the floor, in time per operation \
         (for the mix, the inverse of throughput): below 1.00 ours is faster.\n"
    );
    let _ = write!(out, "| ratio |");
    for c in &COLUMNS {
        let _ = write!(out, " {} |", c.title);
    }
    let _ = write!(out, "\n|---|");
    for _ in &COLUMNS {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for (ours, peer, floor, _) in MEDIA {
        for other in peer.into_iter().chain([floor]) {
            if !subjects.contains(&ours) || !subjects.contains(&other) {
                continue;
            }
            let _ = write!(out, "| {ours} / {other} |");
            for c in &COLUMNS {
                let _ = write!(out, " {} |", ratio_text(results.ratio(ours, other, c.title)));
            }
            out.push('\n');
        }
    }

    let _ = writeln!(
        out,
        "\n## Growth\n\nLoad with {}k records stored over load with {}k stored, for every subject \
         (the floors show what the medium itself adds: CPU caches, B-tree depth).\n",
        STORED_COUNTS[1] / 1000,
        STORED_COUNTS[0] / 1000
    );
    let _ = writeln!(out, "| store | growth |\n|---|---:|");
    for s in subjects {
        if let Some(g) = growth(results, s) {
            let _ = writeln!(out, "| {s} | {g:.2} |");
        }
    }

    let checks = checks(results);
    let met = checks.iter().filter(|c| c.met()).count();
    let _ = writeln!(out, "\n## Targets\n\n{met} of {} met.\n", checks.len());
    let _ = writeln!(out, "| target | ratio | bound | |\n|---|---:|---:|---|");
    for c in &checks {
        let verdict = match (c.ratio, c.met()) {
            (None, _) => "not measured",
            (Some(_), true) => "met",
            (Some(_), false) => "**missed**",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {verdict} |",
            c.target,
            ratio_text(c.ratio),
            c.bound
        );
    }
}

/// The at-rest table, if any at-rest median was found.
fn render_at_rest(out: &mut String, results: &Results) {
    let measured = |b: &str| {
        Mode::ALL
            .into_iter()
            .any(|m| AT_REST_COLUMNS.iter().any(|c| results.at_rest(b, m, c.title).is_some()))
    };
    let backends: Vec<&str> = AT_REST_BACKENDS.into_iter().filter(|b| measured(b)).collect();
    if backends.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## At rest\n\nEach backend plain (the store itself) and through \
         `session_store_core::at_rest::Protected` with hashed ids (SHA-256), encrypted bodies \
         (XChaCha20-Poly1305) or both, each mode on a store of its own: load of a live record \
         among 1,000 and save of a 198 B record, one task. × plain: the mode's median over \
         plain's on the same backend in this run (1.25: the mode takes 25% longer).\n"
    );
    let _ = write!(out, "| backend | mode |");
    for c in &AT_REST_COLUMNS {
        let _ = write!(out, " {} | × plain |", c.title);
    }
    let _ = write!(out, "\n|---|---|");
    for _ in &AT_REST_COLUMNS {
        let _ = write!(out, "---:|---:|");
    }
    out.push('\n');
    for backend in backends {
        for mode in Mode::ALL {
            let _ = write!(out, "| {backend} | {} |", mode.name());
            for c in &AT_REST_COLUMNS {
                let time = results
                    .at_rest(backend, mode, c.title)
                    .map_or_else(|| "—".to_owned(), |m| format_time(m.ns));
                let ratio = ratio_text(results.at_rest_ratio(backend, mode, c.title));
                let _ = write!(out, " {time} | {ratio} |");
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_estimate(root: &Path, rel: &str, median: f64) {
        let dir = root.join(rel).join("new");
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::json!({
            "mean": {"point_estimate": median * 1.1, "standard_error": 1.0,
                     "confidence_interval": {"confidence_level": 0.95, "lower_bound": 0.0, "upper_bound": 1.0}},
            "median": {"point_estimate": median, "standard_error": 1.0,
                       "confidence_interval": {"confidence_level": 0.95, "lower_bound": 0.0, "upper_bound": 1.0}},
        });
        std::fs::write(dir.join("estimates.json"), json.to_string()).unwrap();
    }

    #[test]
    fn reads_medians_and_computes_ratios() {
        let root = tempfile::tempdir().unwrap();
        write_estimate(root.path(), "load_hit/memory", 200.0);
        write_estimate(root.path(), "load_hit/memory-peer", 800.0);
        write_estimate(root.path(), "load_hit/memory-floor", 150.0);
        write_estimate(root.path(), "load_stored/memory/1000", 100.0);
        write_estimate(root.path(), "load_stored/memory/100000", 300.0);
        write_estimate(root.path(), "purge_expired/file-floor/5000_of_10000", 2e6);
        write_estimate(root.path(), "mix_32_tasks/memory", 250.0);
        let results = Results::read(root.path()).unwrap();
        assert_eq!(results.get("memory", "load hit").unwrap().ns, 200.0);
        assert_eq!(results.ratio("memory", "memory-peer", "load hit"), Some(0.25));
        assert_eq!(
            results.get("file-floor", "purge 50k of 100k").unwrap().param.as_deref(),
            Some("5000_of_10000")
        );

        let text = render(&results, "test run");
        assert!(text.contains("| memory | 200 ns |"), "{text}");
        assert!(text.contains("4.00 M/s"), "{text}");
        assert!(text.contains("2.00 ms (5000 of 10000)"), "{text}");
        assert!(text.contains("| memory / memory-peer | 0.25 |"), "{text}");
        // Load grows 3x from 1k to 100k stored: that target is missed.
        assert!(text.contains("| memory load flat: 100k stored ≤ 1.5 × 1k stored | 3.00 | 1.50 | **missed** |"));
        assert!(text.contains("| memory ≤ memory-peer: load hit | 0.25 | 1.00 | met |"));
        assert!(text.contains("| memory load hit ≤ 1.5 × locked HashMap | 1.33 | 1.50 | met |"));
        assert!(text.contains("| memory | 3.00 |"), "{text}");
        assert_eq!(ratio_text(Some(0.0024)), "0.002");
        assert_eq!(ratio_text(Some(0.00001)), "<0.001");
    }

    #[test]
    fn at_rest_medians_are_read_per_backend_and_mode_and_divided_by_plain() {
        let root = tempfile::tempdir().unwrap();
        write_estimate(root.path(), "at_rest_load_hit/sqlite/plain", 4_000.0);
        write_estimate(root.path(), "at_rest_load_hit/sqlite/hashed", 5_000.0);
        write_estimate(root.path(), "at_rest_load_hit/sqlite/both", 6_000.0);
        write_estimate(root.path(), "at_rest_save_small/sqlite/plain", 20_000.0);
        write_estimate(root.path(), "at_rest_save_small/sqlite/encrypted", 30_000.0);
        // Only plain on memory: its row holds 1.00, the others nothing.
        write_estimate(root.path(), "at_rest_load_hit/memory/plain", 100.0);
        let results = Results::read(root.path()).unwrap();
        assert_eq!(results.at_rest("sqlite", Mode::Hashed, "load hit").unwrap().ns, 5_000.0);
        assert_eq!(results.at_rest_ratio("sqlite", Mode::Both, "load hit"), Some(1.5));
        assert_eq!(
            results.at_rest_ratio("sqlite", Mode::Encrypted, "save 198 B"),
            Some(1.5)
        );
        assert_eq!(results.at_rest_ratio("sqlite", Mode::Encrypted, "load hit"), None);
        // Not a subject of the main table.
        assert!(results.get("sqlite", "load hit").is_none());

        let text = render(&results, "test run");
        assert!(text.contains("## At rest"), "{text}");
        assert!(
            text.contains("| sqlite | plain | 4.00 µs | 1.00 | 20.0 µs | 1.00 |"),
            "{text}"
        );
        assert!(text.contains("| sqlite | hashed | 5.00 µs | 1.25 | — | — |"), "{text}");
        assert!(
            text.contains("| sqlite | encrypted | — | — | 30.0 µs | 1.50 |"),
            "{text}"
        );
        assert!(text.contains("| sqlite | both | 6.00 µs | 1.50 | — | — |"), "{text}");
        assert!(text.contains("| memory | plain | 100 ns | 1.00 | — | — |"), "{text}");
        assert!(!text.contains("| file |"), "no row for a backend not measured: {text}");
        // Only at-rest medians: no empty comparison tables, no targets.
        assert!(!text.contains("## Targets"), "{text}");
        assert!(!text.contains("| store |"), "{text}");
    }

    #[test]
    fn the_at_rest_table_is_left_out_when_not_run() {
        let root = tempfile::tempdir().unwrap();
        write_estimate(root.path(), "load_hit/memory", 200.0);
        let text = render(&Results::read(root.path()).unwrap(), "test run");
        assert!(text.contains("| memory | 200 ns |"), "{text}");
        assert!(text.contains("## Targets"), "{text}");
        assert!(!text.contains("## At rest"), "{text}");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let root = tempfile::tempdir().unwrap();
        let err = Results::read(&root.path().join("nothing")).unwrap_err();
        assert!(err.to_string().contains("run the benchmarks first"));
    }

    #[test]
    fn garbage_estimates_are_an_error() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("load_hit/memory/new");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("estimates.json"), "{not json").unwrap();
        let err = Results::read(root.path()).unwrap_err();
        assert!(err.to_string().contains("not criterion's JSON"), "{err}");
    }

    #[test]
    fn times_and_rates_are_readable() {
        assert_eq!(format_time(158.0), "158 ns");
        assert_eq!(format_time(3_040.0), "3.04 µs");
        assert_eq!(format_time(99_000.0), "99.0 µs");
        assert_eq!(format_time(236e6), "236 ms");
        assert_eq!(format_rate(200.0), "5.00 M/s");
        assert_eq!(format_rate(1e9 / 32_000.0), "32 k/s");
    }
}
