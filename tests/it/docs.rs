//! Every relative link in the documentation resolves: README.md, `docs/*.md`,
//! `benches/RESULTS.md` and `deploy/*.md` link to files that exist and to headings that
//! exist in them (`#anchor` fragments, slugged as GitHub slugs headings).
//!
//! Std only and self-contained, so that it can also be checked on its own:
//! `CARGO_MANIFEST_DIR=$PWD/crates/radar rustc --edition 2024 --test tests/it/docs.rs`.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository root: this test belongs to the `radar` package in `crates/radar`.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Markdown files whose links are checked, relative to the repository root.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("README.md"),
        PathBuf::from("benches/RESULTS.md"),
    ];
    for dir in ["docs", "deploy"] {
        let mut found: Vec<PathBuf> = fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("reading {dir}/: {e}"))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .map(|path| Path::new(dir).join(path.file_name().expect("a file name")))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

/// The lines outside fenced code blocks, numbered from 1, so that a `# comment` in a
/// shell block is neither a heading nor a place to look for links.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// A line with its inline code spans blanked out: `[a](b)` in backticks is not a link.
fn without_code_spans(line: &str) -> String {
    line.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 0 { part } else { "" })
        .collect()
}

/// GitHub's anchor for a heading: lower case, links reduced to their text, everything but
/// letters, digits, `-`, `_` and spaces dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find("](") {
        let close = rest[open..].find(')').map_or(rest.len(), |i| open + i + 1);
        text.push_str(&rest[..open]);
        rest = &rest[close..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings, repeats numbered `-1`, `-2` as GitHub does.
fn anchors(text: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(line[hashes..].trim_end_matches('#'));
            let mut anchor = base.clone();
            let mut n = 0;
            while !anchors.insert(anchor.clone()) {
                n += 1;
                anchor = format!("{base}-{n}");
            }
        }
    }
    anchors
}

/// The targets of a line's inline links `[text](target)` and reference definitions
/// `[label]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find("](") {
        let after = &rest[open + 2..];
        let end = after.find(')').unwrap_or(after.len());
        targets.push(after[..end].to_string());
        rest = &after[end..];
    }
    let trimmed = line.trim_start();
    if let Some(close) = trimmed.strip_prefix('[').and_then(|t| t.find("]: ")) {
        targets.push(trimmed[close + 4..].to_string());
    }
    targets
        .into_iter()
        .map(|t| match t.trim().strip_prefix('<') {
            Some(bracketed) => bracketed.split('>').next().unwrap_or("").to_string(),
            None => t.split_whitespace().next().unwrap_or("").to_string(),
        })
        .collect()
}

/// Why a link does not resolve, or `None` when it does. External links are not checked.
fn problem(root: &Path, document: &Path, target: &str) -> Option<String> {
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let scheme = path
        .find(':')
        .is_some_and(|colon| !path[..colon].contains('/'));
    if scheme || target.is_empty() {
        return None;
    }
    let file = if path.is_empty() {
        root.join(document)
    } else if let Some(absolute) = path.strip_prefix('/') {
        root.join(absolute)
    } else {
        root.join(document.parent().unwrap_or(Path::new("")))
            .join(path)
    };
    let shown = file.strip_prefix(root).unwrap_or(&file).display();
    if !file.exists() {
        return Some(format!("{shown} does not exist"));
    }
    if fragment.is_empty() {
        return None;
    }
    if file.extension().is_none_or(|ext| ext != "md") {
        return Some(format!(
            "#{fragment} points into {shown}, which is not Markdown"
        ));
    }
    let text =
        fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    if anchors(&text).contains(fragment) {
        None
    } else {
        Some(format!(
            "{shown} has no heading with the anchor #{fragment}"
        ))
    }
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = repository_root();
    let mut checked = 0;
    let mut broken = Vec::new();
    for document in documents(&root) {
        let text = fs::read_to_string(root.join(&document))
            .unwrap_or_else(|e| panic!("reading {}: {e}", document.display()));
        for (number, line) in prose_lines(&text) {
            for target in link_targets(&without_code_spans(line)) {
                checked += 1;
                if let Some(why) = problem(&root, &document, &target) {
                    broken.push(format!(
                        "{}:{number}: ({target}): {why}",
                        document.display()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no links found: is {} the repository root?",
        root.display()
    );
    assert!(
        broken.is_empty(),
        "{} broken links:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn anchors_are_slugged_as_github_slugs_them() {
    assert_eq!(
        slug("State in Kafka (`store = \"kafka\"`)"),
        "state-in-kafka-store--kafka"
    );
    assert_eq!(
        slug("CRM: deals — and [links](x.md)"),
        "crm-deals--and-links"
    );
    let text = "# A\n```\n# not a heading\n```\n## A\n";
    assert_eq!(
        anchors(text),
        HashSet::from(["a".to_string(), "a-1".to_string()])
    );
    assert_eq!(
        link_targets("see [x](a.md#b \"t\") and [y](<c d.md>)"),
        ["a.md#b", "c d.md"]
    );
}
