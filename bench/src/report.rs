//! Collecting repeated results and printing them as Markdown tables of medians and ratios,
//! for `matrix`.

use std::collections::HashMap;

use crate::median;

/// The numeric fields of one `RESULT` line.
pub type Rec = HashMap<String, f64>;

/// One row of a table: a label, a value per column, and the ratios mini/other.
#[derive(Debug)]
pub struct Row {
    pub label: String,
    pub values: Vec<Option<f64>>,
    pub ratios: Vec<Option<f64>>,
}

/// Prints a Markdown table: `columns` of values, then one `mini/X` column per `ratio_cols`.
pub fn print_table(title: &str, columns: &[&str], ratio_cols: &[&str], rows: &[Row], decimals: usize) {
    let headers: Vec<String> = ratio_cols.iter().map(|c| format!("mini/{c}")).collect();
    print_table_headed(title, columns, &headers, rows, decimals);
}

/// Like [`print_table`], with the ratio columns' headers given whole (`mini-uring/tokio`).
pub fn print_table_headed(
    title: &str,
    columns: &[&str],
    ratio_headers: &[String],
    rows: &[Row],
    decimals: usize,
) {
    println!("\n{title}\n");
    let width = rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(0).max(13);
    let mut header = format!("| {:<width$} |", "");
    let mut rule = format!("|{}|", "-".repeat(width + 2));
    let widths: Vec<usize> = columns.iter().map(|c| c.chars().count().max(9)).collect();
    for (c, w) in columns.iter().zip(&widths) {
        header += &format!(" {c:>w$} |");
        rule += &format!("{}:|", "-".repeat(w + 1));
    }
    let ratio_widths: Vec<usize> = ratio_headers.iter().map(|h| h.chars().count().max(12)).collect();
    for (h, w) in ratio_headers.iter().zip(&ratio_widths) {
        header += &format!(" {h:>w$} |");
        rule += &format!("{}:|", "-".repeat(w + 1));
    }
    println!("{header}\n{rule}");
    for row in rows {
        let mut line = format!("| {:<width$} |", row.label);
        for (v, w) in row.values.iter().zip(&widths) {
            line += &match v {
                Some(v) => format!(" {v:>w$.decimals$} |"),
                None => format!(" {:>w$} |", "-"),
            };
        }
        for (r, w) in row.ratios.iter().zip(&ratio_widths) {
            line += &match r {
                Some(r) => format!(" {r:>w$.2} |"),
                None => format!(" {:>w$} |", "-"),
            };
        }
        println!("{line}");
    }
}

/// Results per (row label, runtime): one entry per repetition, `None` where that run failed.
#[derive(Debug, Default)]
pub struct Results {
    runs: HashMap<(String, String), Vec<Option<Rec>>>,
}

impl Results {
    /// Adds one repetition's result for `row` and runtime `rt`.
    pub fn push(&mut self, row: &str, rt: &str, rec: Option<Rec>) {
        self.runs.entry((row.to_string(), rt.to_string())).or_default().push(rec);
    }

    /// `key` of every repetition of (`row`, `rt`), in order; `None` where a run failed or
    /// lacked the key.
    pub fn values(&self, row: &str, rt: &str, key: &str) -> Vec<Option<f64>> {
        self.runs
            .get(&(row.to_string(), rt.to_string()))
            .map(|v| v.iter().map(|r| r.as_ref().and_then(|r| r.get(key).copied())).collect())
            .unwrap_or_default()
    }

    /// The median of `key` over the repetitions of (`row`, `rt`).
    pub fn median(&self, row: &str, rt: &str, key: &str) -> Option<f64> {
        let v: Vec<f64> = self.values(row, rt, key).into_iter().flatten().collect();
        (!v.is_empty()).then(|| median(&v))
    }

    /// The median over repetitions of mini's value divided by `other`'s in the same
    /// repetition. Pairing neighbours in time cancels slow drifts in the machine's load.
    pub fn ratio(&self, row: &str, other: &str, key: &str) -> Option<f64> {
        self.ratio_of(row, "mini", other, key)
    }

    /// Like [`ratio`](Self::ratio), for any two runtimes: `a`'s value over `b`'s.
    pub fn ratio_of(&self, row: &str, a: &str, b: &str, key: &str) -> Option<f64> {
        let (a, b) = (self.values(row, a, key), self.values(row, b, key));
        let r: Vec<f64> =
            a.iter().zip(&b).filter_map(|(a, b)| Some((*a)? / (*b)?)).filter(|r| r.is_finite()).collect();
        (!r.is_empty()).then(|| median(&r))
    }

    /// Prints a table of medians of `key` for each row and runtime, with ratios mini/other.
    pub fn table(
        &self,
        title: &str,
        rows: &[String],
        rts: &[&str],
        others: &[&str],
        key: &str,
        decimals: usize,
    ) {
        let pairs: Vec<(&str, &str)> = others.iter().map(|o| ("mini", *o)).collect();
        self.table_pairs(title, rows, rts, &pairs, key, decimals);
    }

    /// Like [`table`](Self::table), with a ratio column `a/b` for each pair `(a, b)`: the
    /// echo tables add `mini-uring/mini` and `mini-uring/tokio` to mini's.
    pub fn table_pairs(
        &self,
        title: &str,
        rows: &[String],
        rts: &[&str],
        pairs: &[(&str, &str)],
        key: &str,
        decimals: usize,
    ) {
        let rows: Vec<Row> = rows
            .iter()
            .map(|row| Row {
                label: row.clone(),
                values: rts.iter().map(|rt| self.median(row, rt, key)).collect(),
                ratios: pairs.iter().map(|(a, b)| self.ratio_of(row, a, b, key)).collect(),
            })
            .collect();
        let headers: Vec<String> = pairs.iter().map(|(a, b)| format!("{a}/{b}")).collect();
        print_table_headed(title, rts, &headers, &rows, decimals);
    }
}

/// The targets from the issue, each met or missed, and notes that are not targets.
#[derive(Debug, Default)]
pub struct Targets(Vec<(Option<bool>, String)>);

impl Targets {
    /// Records `what`, a ratio mini/other: met when `ratio >= bound` (`at_least`) or
    /// `ratio <= bound`.
    pub fn ratio(&mut self, what: String, ratio: Option<f64>, at_least: bool, bound: f64) {
        let Some(r) = ratio else {
            self.0.push((Some(false), format!("{what}: no data")));
            return;
        };
        let met = if at_least { r >= bound } else { r <= bound };
        let op = if at_least { ">=" } else { "<=" };
        self.0.push((Some(met), format!("{what}: {r:.3} (target {op} {bound:.2})")));
    }

    /// Records any other check.
    pub fn check(&mut self, met: bool, line: String) {
        self.0.push((Some(met), line));
    }

    /// Adds a line that informs about a target without being one.
    pub fn note(&mut self, line: String) {
        self.0.push((None, line));
    }

    /// Prints the list and the count met.
    pub fn print(&self) {
        println!("\nTargets (mini/other: the median over repetitions of the per-repetition ratio)\n");
        for (met, line) in &self.0 {
            let mark = match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "info",
            };
            println!("- [{mark}] {line}");
        }
        let met = self.0.iter().filter(|(m, _)| *m == Some(true)).count();
        let total = self.0.iter().filter(|(m, _)| m.is_some()).count();
        println!("\n{met} of {total} met");
    }
}
