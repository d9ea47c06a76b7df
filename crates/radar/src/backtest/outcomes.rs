//! The outcomes file: the real expansions a backtest checks the alerts against, as CSV
//! with a header `account_id,expanded_at,arr_delta` (columns in any order, others
//! ignored). A bad row is reported with its line number and skipped, never fatal; a file
//! without the header is refused.

use std::io::Read;

use radar_core::time::parse_date_or_rfc3339;

/// One expansion as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub account_id: String,
    pub expanded_at_ms: i64,
    pub arr_delta: f64,
}

/// A row that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// The rows read and the rows skipped.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub rows: Vec<Row>,
    pub bad: Vec<BadRow>,
}

/// Reads an outcomes file; an error only when it cannot be read as CSV at all or lacks a
/// column.
pub fn read(input: impl Read) -> anyhow::Result<Outcomes> {
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
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                outcomes.bad.push(BadRow {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        match row(&record, account, at, arr) {
            Ok(row) => outcomes.rows.push(row),
            Err(reason) => outcomes.bad.push(BadRow { line, reason }),
        }
    }
    Ok(outcomes)
}

fn row(record: &csv::StringRecord, account: usize, at: usize, arr: usize) -> Result<Row, String> {
    let field = |i: usize, name: &str| {
        record
            .get(i)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{name} is missing"))
    };
    let account_id = field(account, "account_id")?.to_owned();
    let at_text = field(at, "expanded_at")?;
    let expanded_at_ms = parse_date_or_rfc3339(at_text).ok_or_else(|| {
        format!("expanded_at {at_text:?} is not a date (2026-03-01) or an RFC 3339 time")
    })?;
    let arr_text = field(arr, "arr_delta")?;
    let arr_delta = arr_text
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("arr_delta {arr_text:?} is not a number"))?;
    Ok(Row {
        account_id,
        expanded_at_ms,
        arr_delta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let outcomes = read(text.as_bytes()).unwrap();
        let accounts: Vec<&str> = outcomes
            .rows
            .iter()
            .map(|r| r.account_id.as_str())
            .collect();
        assert_eq!(accounts, ["acme", "globex", "quoted, inc"]);
        assert_eq!(outcomes.rows[1].arr_delta, 300.5);
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

    #[test]
    fn a_file_without_the_header_is_refused_with_what_it_needs() {
        let error = read("acme,2026-03-01,1200\n".as_bytes()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("account_id,expanded_at,arr_delta"),
            "{error}"
        );
    }
}
