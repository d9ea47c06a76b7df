//! The outcomes file: the real expansions a backtest checks the alerts against, as CSV
//! with a header `account_id,expanded_at,arr_delta` (columns in any order, others
//! ignored). A bad row is reported with its line number and skipped, never fatal; a file
//! without the header is refused. Rows are handed over one by one and not kept: a
//! backtest keeps only those of accounts its events saw, as a few numbers each.

use std::io::Read;

use radar_core::time::parse_date_or_rfc3339;

/// The largest `arr_delta` a row may have, a trillion: anything larger is a mistake in
/// the file, and the totals of as many rows as fit in memory stay finite and print the
/// same in the table, the JSON and the HTML.
pub const MAX_ARR_DELTA: f64 = 1e12;

/// How many bad rows are kept to be shown; the others are only counted.
const BAD_SHOWN: usize = 20;

/// One expansion as read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    pub account_id: &'a str,
    pub expanded_at_ms: i64,
    pub arr_delta: f64,
}

/// A row that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// What reading the file came to: good rows counted, the first bad ones and how many.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub rows: u64,
    /// The first 20 bad rows.
    pub bad: Vec<BadRow>,
    pub bad_rows: u64,
}

impl Outcomes {
    fn skip(&mut self, line: u64, reason: String) {
        self.bad_rows += 1;
        if self.bad.len() < BAD_SHOWN {
            self.bad.push(BadRow { line, reason });
        }
    }
}

/// Reads an outcomes file, handing each good row to `each`; an error only when it cannot
/// be read as CSV at all or lacks a column.
pub fn read(input: impl Read, mut each: impl FnMut(Row<'_>)) -> anyhow::Result<Outcomes> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            anyhow::anyhow!(
                "the header has no {name:?} column (it needs account_id,expanded_at,arr_delta; it has {:?})",
                headers.iter().collect::<Vec<_>>().join(",")
            )
        })
    };
    let (account, at, arr) = (
        column("account_id")?,
        column("expanded_at")?,
        column("arr_delta")?,
    );
    let mut outcomes = Outcomes::default();
    // One record, reused: no allocation per row.
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                match row(&record, account, at, arr) {
                    Ok(row) => {
                        outcomes.rows += 1;
                        each(row);
                    }
                    Err(reason) => outcomes.skip(line, reason.to_string()),
                }
            }
            Err(e) if e.is_io_error() => return Err(e.into()),
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                outcomes.skip(line, e.to_string());
            }
        }
    }
    Ok(outcomes)
}

/// Why a row of the outcomes file is skipped (shown with its line).
#[derive(Debug, thiserror::Error)]
enum BadRowReason {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("expanded_at {0:?} is not a date (2026-03-01) or an RFC 3339 time")]
    NotADate(String),
    #[error("arr_delta {0:?} is not a number")]
    NotANumber(String),
    #[error("arr_delta {0} is negative: an expansion adds ARR")]
    Negative(String),
    #[error("arr_delta {0} is more than 1,000,000,000,000")]
    TooLarge(String),
}

fn row(
    record: &csv::StringRecord,
    account: usize,
    at: usize,
    arr: usize,
) -> Result<Row<'_>, BadRowReason> {
    let field = |i: usize, name: &'static str| {
        record
            .get(i)
            .filter(|v| !v.is_empty())
            .ok_or(BadRowReason::Missing(name))
    };
    let account_id = field(account, "account_id")?;
    let at_text = field(at, "expanded_at")?;
    let expanded_at_ms =
        parse_date_or_rfc3339(at_text).ok_or_else(|| BadRowReason::NotADate(at_text.to_owned()))?;
    let arr_text = field(arr, "arr_delta")?;
    let arr_delta = arr_text
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| BadRowReason::NotANumber(arr_text.to_owned()))?;
    if arr_delta < 0.0 {
        return Err(BadRowReason::Negative(arr_text.to_owned()));
    }
    if arr_delta > MAX_ARR_DELTA {
        return Err(BadRowReason::TooLarge(arr_text.to_owned()));
    }
    Ok(Row {
        account_id,
        expanded_at_ms,
        arr_delta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows read, as (account, arr_delta), and the file's outcome.
    fn read_all(text: &str) -> (Vec<(String, f64)>, Outcomes) {
        let mut rows = Vec::new();
        let outcomes = read(text.as_bytes(), |row| {
            rows.push((row.account_id.to_owned(), row.arr_delta));
        })
        .unwrap();
        (rows, outcomes)
    }

    #[test]
    fn good_rows_are_read_and_bad_ones_reported_by_line() {
        let text = "account_id,expanded_at,arr_delta\n\
                    acme,2026-03-01,1200\n\
                    globex,2026-03-02T10:00:00Z,300.5\n\
                    ,2026-03-01,5\n\
                    initech,yesterday,5\n\
                    umbrella,2026-03-01,lots\n\
                    hooli,2026-03-01\n\
                    \"quoted, inc\",2026-03-03,7\n";
        let (rows, outcomes) = read_all(text);
        let accounts: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(accounts, ["acme", "globex", "quoted, inc"]);
        assert_eq!(rows[1].1, 300.5);
        assert_eq!((outcomes.rows, outcomes.bad_rows), (3, 4));
        let bad: Vec<(u64, &str)> = outcomes
            .bad
            .iter()
            .map(|b| (b.line, b.reason.as_str()))
            .collect();
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert_eq!(bad[0], (4, "account_id is missing"));
        assert!(bad[1].0 == 5 && bad[1].1.contains("yesterday"), "{bad:?}");
        assert!(bad[2].0 == 6 && bad[2].1.contains("lots"), "{bad:?}");
        assert!(
            bad[3].0 == 7 && bad[3].1.contains("arr_delta is missing"),
            "{bad:?}"
        );
    }

    /// An ARR no expansion has (1e308 once printed as 9,223,372,036,854,775,807 in the
    /// table, null in the JSON, inf in the HTML) and a negative one (which took ARR caught
    /// below zero) are bad rows; zero and a trillion are not.
    #[test]
    fn an_arr_delta_past_a_trillion_or_below_zero_is_a_bad_row() {
        let text = "account_id,expanded_at,arr_delta\n\
                    a,2026-03-01,1e308\n\
                    b,2026-03-01,-99515413\n\
                    c,2026-03-01,1000000000001\n\
                    d,2026-03-01,0\n\
                    e,2026-03-01,1e12\n";
        let (rows, outcomes) = read_all(text);
        assert_eq!(rows, [("d".to_owned(), 0.0), ("e".to_owned(), 1e12)]);
        let bad: Vec<(u64, &str)> = outcomes
            .bad
            .iter()
            .map(|b| (b.line, b.reason.as_str()))
            .collect();
        assert_eq!(
            bad,
            [
                (2, "arr_delta 1e308 is more than 1,000,000,000,000"),
                (3, "arr_delta -99515413 is negative: an expansion adds ARR"),
                (4, "arr_delta 1000000000001 is more than 1,000,000,000,000"),
            ]
        );
    }

    #[test]
    fn only_the_first_bad_rows_are_kept_and_all_are_counted() {
        let mut text = String::from("account_id,expanded_at,arr_delta\n");
        for _ in 0..1_000 {
            text.push_str("a,never,1\n");
        }
        let (_, outcomes) = read_all(&text);
        assert_eq!((outcomes.bad.len(), outcomes.bad_rows), (20, 1_000));
    }

    #[test]
    fn a_file_without_the_header_is_refused_with_what_it_needs() {
        let error = read("acme,2026-03-01,1200\n".as_bytes(), |_| {}).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("account_id,expanded_at,arr_delta"),
            "{error}"
        );
    }
}
