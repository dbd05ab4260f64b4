//! NDJSON import (`sealtrail import`): one event per line from a file or stdin.
//!
//! Every line is either stored as its event or, when it cannot be, stored as a
//! `system/ingest_rejected` event carrying the raw input and the reason, so
//! nothing offered to the SIEM silently disappears.

use crate::event::{Event, Via};
use crate::pipeline::{IngestBatch, Item, ItemOutcome, Pipeline, PipelineError};
use std::io::{self, BufRead};
use thiserror::Error;
use tokio::sync::mpsc;

/// Longest accepted line; longer ones are rejected (and recorded, truncated).
pub const MAX_LINE_LEN: usize = 1 << 20;
/// Most lines committed together (one group commit).
const MAX_BATCH: usize = 1000;

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("reading input: {0}")]
    Read(#[from] io::Error),
    #[error("appending to the ledger: {0}")]
    Append(#[from] PipelineError),
}

/// A line that could not be imported as an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub error: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Events accepted (stored now, or already stored under the same id).
    pub accepted: u64,
    /// Accepted events whose client id was already stored.
    pub duplicates: u64,
    pub rejected: Vec<Rejected>,
    /// Global index of the first stored entry, if any.
    pub first_index: Option<u64>,
}

/// Progress after each durable batch: lines read so far and the last index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub lines: u64,
    /// Last index stored by the batch (none when it was all retries).
    pub last_index: Option<u64>,
}

/// One input line, read with a bound on its length.
enum Line {
    Text(Vec<u8>),
    TooLong(Vec<u8>),
}

/// Reads a line of at most `MAX_LINE_LEN` bytes; the rest of a longer line is
/// skipped without being buffered.
fn read_bounded_line(input: &mut impl BufRead) -> io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if buf.is_empty() && !too_long {
                return Ok(None);
            }
            break;
        }
        let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        let room = MAX_LINE_LEN.saturating_sub(buf.len());
        if chunk.len() > room {
            too_long = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = found.unwrap_or(available.len());
        input.consume(consumed);
        if found.is_some() {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(if too_long {
        Line::TooLong(buf)
    } else {
        Line::Text(buf)
    }))
}

/// Turns one line into a pipeline item, with the rejection reason if any.
pub fn line_to_item(line: &[u8], line_no: u64) -> (Item, Option<String>) {
    match Event::from_json(line).and_then(|event| event.validate_from_client().map(|_| event)) {
        Ok(event) => (Item::Event(event), None),
        Err(e) => {
            let reason = e.to_string();
            (
                Item::Rejected {
                    raw: line.to_vec(),
                    reason: format!("line {line_no}: {reason}"),
                },
                Some(reason),
            )
        }
    }
}

/// Imports every line of `input` through the ingest pipeline (the same
/// validation, transforms and exactly-once rules as HTTP), committing batches
/// as lines arrive and calling `progress` after each durable batch.
pub async fn import_ndjson(
    input: impl BufRead + Send + 'static,
    pipeline: &Pipeline,
    via: Via,
    mut progress: impl FnMut(Progress),
) -> Result<ImportSummary, ImportError> {
    // A reader thread keeps lines flowing while the previous batch is being
    // made durable, so batches grow with load (group commit) and stay small
    // when input trickles in.
    let (tx, mut rx) = mpsc::channel::<io::Result<Line>>(4 * MAX_BATCH);
    let reader = std::thread::Builder::new()
        .name("import-reader".into())
        .spawn(move || {
            let mut input = input;
            loop {
                match read_bounded_line(&mut input) {
                    Ok(Some(line)) => {
                        if tx.blocking_send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        })?;

    let mut summary = ImportSummary::default();
    let mut line_no = 0u64;
    while let Some(first) = rx.recv().await {
        let mut items = Vec::with_capacity(MAX_BATCH);
        let mut rejected = Vec::new();
        let mut next = Some(first);
        while let Some(line) = next.take() {
            let line = line?;
            line_no += 1;
            match line {
                Line::Text(text) if text.iter().all(u8::is_ascii_whitespace) => {}
                Line::Text(text) => {
                    let (item, error) = line_to_item(&text, line_no);
                    if let Some(error) = error {
                        rejected.push(Rejected {
                            line: line_no,
                            error,
                        });
                    }
                    items.push(item);
                }
                Line::TooLong(prefix) => {
                    let error = format!("line is longer than {MAX_LINE_LEN} bytes");
                    items.push(Item::Rejected {
                        raw: prefix,
                        reason: format!("line {line_no}: {error}"),
                    });
                    rejected.push(Rejected {
                        line: line_no,
                        error,
                    });
                }
            }
            if items.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if items.is_empty() {
            continue;
        }
        let receipt = pipeline
            .submit(IngestBatch {
                via: via.clone(),
                items,
            })
            .await?;
        summary.accepted += receipt.accepted();
        summary.duplicates += receipt.duplicates();
        summary.rejected.append(&mut rejected);
        if let Some(first) = receipt.first_index() {
            summary.first_index.get_or_insert(first);
        }
        let last = receipt.outcomes.iter().rev().find_map(|o| match o {
            ItemOutcome::Stored(i) | ItemOutcome::Rejected(i) => Some(*i),
            ItemOutcome::Duplicate(_) => None,
        });
        progress(Progress {
            lines: line_no,
            last_index: last,
        });
    }
    // The reader only stops on end of input or after sending its error.
    let _ = reader.join();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let mut r = io::BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        while let Some(l) = read_bounded_line(&mut r).unwrap() {
            out.push(match l {
                Line::Text(t) => (false, t),
                Line::TooLong(t) => (true, t),
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_crlf() {
        let got = lines(b"a\r\nbb\n\nccc");
        assert_eq!(
            got,
            vec![
                (false, b"a".to_vec()),
                (false, b"bb".to_vec()),
                (false, vec![]),
                (false, b"ccc".to_vec())
            ]
        );
    }

    #[test]
    fn over_long_lines_are_cut_and_flagged_without_losing_the_next_line() {
        let mut input = vec![b'x'; MAX_LINE_LEN + 10];
        input.extend_from_slice(b"\nnext\n");
        let got = lines(&input);
        assert_eq!(got.len(), 2);
        assert!(got[0].0);
        assert_eq!(got[0].1.len(), MAX_LINE_LEN);
        assert_eq!(got[1], (false, b"next".to_vec()));
    }
}
