//! Typos that break a file's YAML structure, repaired so that the rest of the file can still be
//! validated, each reported as an error with its fix. The product page's GRPCRoute has two
//! such typos (a list item indented one space too far, `service:echo_basic...` without a space
//! after the colon) besides its apiVersion without a version: with the repairs, a user copying
//! it sees all three at once. Only used when the file does not parse as it is, and only kept
//! when the repaired file parses; the repaired text is never published, since every repair is
//! an error.
//!
//! Kept by hand because YAML parsers, yaml-rust2 included, stop at the first error and repair
//! nothing; these repairs stay narrow (the two typos above) and are checked by parsing again.

use crate::yaml::{glued_key, parse};

/// One repaired typo: where it was and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

/// The text with its typos repaired and the repairs, or `None` when repairing does not make
/// the text parse.
pub fn repair(text: &str) -> Option<(String, Vec<Repair>)> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut repairs = Vec::new();
    for (i, line) in lines.iter_mut().enumerate() {
        let Some(hint) = glued_key(line) else { continue };
        let Some(colon) = line.find(':') else { continue };
        let glued = line.trim_start().trim_start_matches("- ").trim().to_owned();
        line.insert(colon + 1, ' ');
        let fixed = line.trim_start().trim_start_matches("- ").trim().to_owned();
        repairs.push(Repair {
            line: i + 1,
            message: format!("invalid YAML: {hint}: {glued:?} reads as one string, not a key and its value; write {fixed:?}"),
        });
    }
    let joined = |lines: &[String]| lines.join("\n") + "\n";
    for group in misaligned_lists(&lines) {
        let before = error_line(&joined(&lines));
        let Some(before) = before else { break };
        // Try each column the list's items use, the most used first; keep the first that
        // moves the parse error further down the file (or removes it).
        let mut columns: Vec<(usize, usize)> = Vec::new();
        for &(_, column) in &group {
            match columns.iter_mut().find(|(c, _)| *c == column) {
                Some((_, count)) => *count += 1,
                None => columns.push((column, 1)),
            }
        }
        columns.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
        for &(target, _) in &columns {
            let mut trial = lines.clone();
            for &(i, column) in &group {
                if let Some(line) = trial.get_mut(i) {
                    if column != target {
                        *line = format!("{}{}", " ".repeat(target), line.trim_start());
                    }
                }
            }
            if error_line(&joined(&trial)).is_none_or(|after| after > before) {
                for &(i, column) in &group {
                    if column != target {
                        let sibling = group.iter().find(|(_, c)| *c == target).map_or(0, |(j, _)| j + 1);
                        repairs.push(Repair {
                            line: i + 1,
                            message: format!(
                                "invalid YAML: this list item is indented {column} spaces, and the other items of its list (line {sibling}) {target}: the items of one list must all start in the same column"
                            ),
                        });
                    }
                }
                lines = trial;
                break;
            }
        }
    }
    let text = joined(&lines);
    (parse(&text).is_ok() && !repairs.is_empty()).then(|| {
        repairs.sort_by_key(|r| r.line);
        (text, repairs)
    })
}

fn error_line(text: &str) -> Option<usize> {
    parse(text).err().map(|e| e.line)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_item(line: &str) -> bool {
    let body = line.trim_start_matches(' ');
    body == "-" || body.starts_with("- ")
}

/// The items (line index, column) of each block list whose items do not all start in the same
/// column. An item's list is identified by its parent: the nearest line above that is less
/// indented, or a `key:` line indented as much (a list may start in its key's column).
fn misaligned_lists(lines: &[String]) -> Vec<Vec<(usize, usize)>> {
    let mut lists: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !is_item(line) {
            continue;
        }
        let column = indent(line);
        let parent = (0..i).rev().find(|&j| {
            let above = lines.get(j).map_or("", String::as_str);
            let body = above.trim();
            if body.is_empty() || body.starts_with('#') {
                return false;
            }
            indent(above) < column || (indent(above) == column && !is_item(above) && body.ends_with(':'))
        });
        let Some(parent) = parent else { continue };
        match lists.iter_mut().find(|(p, _)| *p == parent) {
            Some((_, items)) => items.push((i, column)),
            None => lists.push((parent, vec![(i, column)])),
        }
    }
    lists
        .into_iter()
        .map(|(_, items)| items)
        .filter(|items| items.iter().any(|&(_, c)| items.first().is_some_and(|&(_, first)| first != c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_page_grpcroute_typos_are_each_repaired_and_reported() {
        let text = include_str!("../tests/fixtures/product-page/grpcroute.yaml");
        let (fixed, repairs) = repair(text).unwrap();
        let lines: Vec<usize> = repairs.iter().map(|r| r.line).collect();
        assert_eq!(lines, [11, 13, 20]);
        assert_eq!(
            repairs[0].message,
            "invalid YAML: this list item is indented 3 spaces, and the other items of its list (line 18) 2: the items of one list must all start in the same column"
        );
        assert_eq!(
            repairs[1].message,
            "invalid YAML: missing space after \"service:\": \"service:echo_basic.grpcecho.GrpcEcho\" reads as one string, not a key and its value; write \"service: echo_basic.grpcecho.GrpcEcho\""
        );
        assert!(fixed.contains("\n  - matches:\n    - method:\n        service: echo_basic.grpcecho.GrpcEcho\n"), "{fixed}");
    }

    #[test]
    fn text_that_cannot_be_repaired_is_left_alone() {
        assert_eq!(repair("a: [1, 2\nb: 3\n"), None);
    }

    #[test]
    fn aligned_lists_are_not_misaligned() {
        let lines: Vec<String> = "rules:\n- a: 1\n  b:\n  - x\n  - y\n- a: 2\n".lines().map(str::to_owned).collect();
        assert!(misaligned_lists(&lines).is_empty());
    }
}
