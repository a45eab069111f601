//! Aligned text tables and the unit formatting `mctl` prints with.

use std::io::Write;

/// A table of text cells, printed with columns padded to their widest cell.
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers (left-aligned columns).
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Self {
        let headers: Vec<String> = headers.iter().map(|h| h.as_ref().to_owned()).collect();
        Table { right: vec![false; headers.len()], headers, rows: Vec::new() }
    }

    /// Right-aligns the given columns (numbers).
    pub fn right(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            if let Some(r) = self.right.get_mut(c) {
                *r = true;
            }
        }
        self
    }

    /// Adds a row (missing cells print empty, extra cells are dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Writes the header and rows; trailing spaces are trimmed.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let cell = |row: &[String], i: usize| row.get(i).map(String::as_str).unwrap_or("").to_owned();
        let header = &self.headers;
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(cell(row, i).chars().count());
            }
        }
        for row in std::iter::once(header).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                let text = cell(row, i);
                let pad = " ".repeat(w - text.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                if self.right[i] {
                    line.push_str(&pad);
                    line.push_str(&text);
                } else {
                    line.push_str(&text);
                    line.push_str(&pad);
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `-` for a missing value.
pub fn or_dash<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".to_owned())
}

/// Milliseconds with a sensible precision: `0.42 ms`, `12.3 ms`, `600 ms`.
pub fn millis(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// A ratio as a percentage: `0%`, `5.0%`, `0.12%`.
pub fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p == 0.0 {
        "0%".to_owned()
    } else if p < 1.0 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// A rate in bit/s with a decimal prefix: `1 Gbit/s`, `20 Mbit/s`, `512 bit/s`.
pub fn bits_per_second(bps: u64) -> String {
    scaled(bps as f64, 1000.0, &["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"])
}

/// A byte count with a binary prefix: `0 B`, `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    scaled(n as f64, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

fn scaled(mut v: f64, step: f64, units: &[&str]) -> String {
    let mut unit = 0;
    while v >= step && unit + 1 < units.len() {
        v /= step;
        unit += 1;
    }
    let unit = units[unit];
    if v.fract() == 0.0 || v >= 100.0 { format!("{v:.0} {unit}") } else { format!("{v:.1} {unit}") }
}

/// Seconds as `3.5 s`, `4m05s`, `1h02m03s`, `2d03h`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_owned();
    }
    if seconds < 60.0 {
        return if seconds < 10.0 { format!("{seconds:.1} s") } else { format!("{seconds:.0} s") };
    }
    let s = seconds as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else {
        format!("{m}m{s:02}s")
    }
}

/// The first 12 hex digits of a key, enough to tell nodes apart by eye.
pub fn short_key(key: &str) -> String {
    if key.is_empty() {
        return "-".to_owned();
    }
    key.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell_and_numbers_align_right() {
        let mut t = Table::new(&["NAME", "N"]).right(&[1]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["longer".into(), "1000".into()]);
        let mut out = Vec::new();
        t.print(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "NAME       N\na          1\nlonger  1000\n");
    }

    #[test]
    fn units_read_naturally() {
        assert_eq!(bits_per_second(1_000_000_000), "1 Gbit/s");
        assert_eq!(bits_per_second(20_000_000), "20 Mbit/s");
        assert_eq!(bits_per_second(1_500), "1.5 kbit/s");
        assert_eq!(bytes(1_200_000), "1.1 MiB");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(duration(3723.0), "1h02m03s");
        assert_eq!(duration(1.25), "1.2 s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(200_000.0), "2d07h");
        assert_eq!(millis(48.5), "48.5 ms");
        assert_eq!(percent(0.05), "5.0%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(short_key("bb00000000000000000000000000000000"), "bb0000000000");
    }
}
