//! NDJSON import (`sealtrail import`): one event per line from a file or stdin.
//!
//! Every line is either stored as its event or, when it cannot be, stored as a
//! `system/ingest_rejected` event carrying the raw input and the reason, so
//! nothing offered to the SIEM silently disappears.

use crate::event::{Entry, Event, Timestamp, Via};
use crate::ledger::log::LedgerEntry;
use crate::ledger::writer::{AppendError, LedgerHandle};
use std::io::{self, BufRead};
use std::sync::mpsc;
use thiserror::Error;

/// Longest accepted line; longer ones are rejected (and recorded, truncated).
pub const MAX_LINE_LEN: usize = 1 << 20;
/// Most lines committed together (one group commit).
const MAX_BATCH: usize = 1000;

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("reading input: {0}")]
    Read(#[from] io::Error),
    #[error("appending to the ledger: {0}")]
    Append(#[from] AppendError),
}

/// A line that could not be imported as an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub error: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub accepted: u64,
    pub rejected: Vec<Rejected>,
    /// Global index of the first stored entry, if any.
    pub first_index: Option<u64>,
    /// Entries stored (accepted events plus rejection records).
    pub stored: u64,
}

/// Progress after each durable batch: lines read so far and the last index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub lines: u64,
    pub last_index: u64,
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

/// Turns one line into the entry to store; `Err` carries the rejection entry.
pub fn line_to_entry(
    line: &[u8],
    via: &Via,
    received: Timestamp,
) -> Result<LedgerEntry, (String, LedgerEntry)> {
    let outcome = Event::from_json(line).and_then(|event| event.validate().map(|_| event));
    match outcome {
        Ok(event) => Ok(to_ledger_entry(Entry {
            received,
            via: via.clone(),
            event,
            enriched: None,
        })),
        Err(e) => {
            let reason = e.to_string();
            let rejected = Event::ingest_rejected(line, &reason, received);
            Err((
                reason,
                to_ledger_entry(Entry {
                    received,
                    via: via.clone(),
                    event: rejected,
                    enriched: None,
                }),
            ))
        }
    }
}

fn to_ledger_entry(entry: Entry) -> LedgerEntry {
    LedgerEntry {
        time_ms: entry.event.time.unix_ms(),
        bytes: entry.canonical_bytes(),
    }
}

/// Imports every line of `input`, committing in batches as lines arrive and
/// calling `progress` after each durable batch.
pub fn import_ndjson(
    input: impl BufRead + Send + 'static,
    ledger: &LedgerHandle,
    via: Via,
    mut progress: impl FnMut(Progress),
) -> Result<ImportSummary, ImportError> {
    // A reader thread keeps lines flowing while the previous batch is being
    // fsynced, so batches grow with load (group commit) and stay small when
    // input trickles in.
    let (tx, rx) = mpsc::sync_channel::<io::Result<Line>>(4 * MAX_BATCH);
    let reader = std::thread::Builder::new()
        .name("import-reader".into())
        .spawn(move || {
            let mut input = input;
            loop {
                match read_bounded_line(&mut input) {
                    Ok(Some(line)) => {
                        if tx.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        })?;

    let mut summary = ImportSummary::default();
    let mut line_no = 0u64;
    let mut batch: Vec<LedgerEntry> = Vec::with_capacity(MAX_BATCH);
    let mut pending_rejects: Vec<Rejected> = Vec::new();
    let mut accepted_in_batch = 0u64;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            let line = item?;
            line_no += 1;
            let received = Timestamp::now();
            match line {
                Line::Text(text) if text.iter().all(u8::is_ascii_whitespace) => {}
                Line::Text(text) => match line_to_entry(&text, &via, received) {
                    Ok(entry) => {
                        accepted_in_batch += 1;
                        batch.push(entry);
                    }
                    Err((error, entry)) => {
                        pending_rejects.push(Rejected {
                            line: line_no,
                            error,
                        });
                        batch.push(entry);
                    }
                },
                Line::TooLong(prefix) => {
                    let error = format!("line is longer than {MAX_LINE_LEN} bytes");
                    let event = Event::ingest_rejected(&prefix, &error, received);
                    pending_rejects.push(Rejected {
                        line: line_no,
                        error,
                    });
                    batch.push(to_ledger_entry(Entry {
                        received,
                        via: via.clone(),
                        event,
                        enriched: None,
                    }));
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let appended = ledger.append_blocking(std::mem::take(&mut batch))?;
        summary.first_index.get_or_insert(appended.first_index);
        summary.stored += appended.count;
        summary.accepted += accepted_in_batch;
        summary.rejected.append(&mut pending_rejects);
        accepted_in_batch = 0;
        progress(Progress {
            lines: line_no,
            last_index: appended.first_index + appended.count - 1,
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
