//! A small YAML document tree with the line and column of every node, built
//! from `yaml-rust2`'s marked parser events, so that every load error can name
//! where it is. Anchors and aliases are refused (rules never need them and
//! they are the classic "billion laughs" amplification), and nesting depth is
//! bounded.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting accepted in a rule file.
pub const MAX_DEPTH: usize = 32;

/// Where a node starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar as written; `plain` is false for quoted and block scalars
    /// (so `'true'` stays a string while `true` is a boolean).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys in file order.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
}

/// A YAML syntax or structure error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub reason: String,
}

impl Node {
    /// The scalar text, when this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is YAML null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true }
            if text == "~" || text == "null" || text == "Null" || text == "NULL" || text.is_empty())
    }

    /// A plain `true`/`false`.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            NodeKind::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// Value of `key` in a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

enum Frame {
    Seq(Pos, Vec<Node>),
    /// Entries so far and a key waiting for its value.
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    error: Option<YamlError>,
}

fn pos(mark: Marker) -> Pos {
    Pos {
        line: mark.line(),
        col: mark.col() + 1,
    }
}

impl Builder {
    fn fail(&mut self, at: Pos, reason: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                pos: at,
                reason: reason.into(),
            });
        }
    }

    fn push_node(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        let at = node.pos;
                        self.fail(at, "map keys must be scalars");
                        return;
                    }
                    if entries.iter().any(|(k, _)| k.as_str() == node.as_str()) {
                        let reason = format!("duplicate key `{}`", node.as_str().unwrap_or(""));
                        let at = node.pos;
                        self.fail(at, reason);
                        return;
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let at = pos(mark);
        match ev {
            Event::Alias(_) => self.fail(at, "yaml aliases are not supported in rules"),
            Event::Scalar(text, style, anchor, _) => {
                if anchor != 0 {
                    self.fail(at, "yaml anchors are not supported in rules");
                    return;
                }
                let plain = style == TScalarStyle::Plain;
                self.push_node(Node {
                    kind: NodeKind::Scalar { text, plain },
                    pos: at,
                });
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor != 0 {
                    self.fail(at, "yaml anchors are not supported in rules");
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(at, format!("nested deeper than {MAX_DEPTH} levels"));
                    return;
                }
                if matches!(ev, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq(at, Vec::new()));
                } else {
                    self.stack.push(Frame::Map(at, Vec::new(), None));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(p, items)) => Node {
                        kind: NodeKind::Seq(items),
                        pos: p,
                    },
                    Some(Frame::Map(p, entries, _)) => Node {
                        kind: NodeKind::Map(entries),
                        pos: p,
                    },
                    None => return,
                };
                self.push_node(node);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Parses every document of a YAML stream into node trees.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| YamlError {
        pos: pos(*e.marker()),
        reason: format!("yaml syntax error: {}", e.info()),
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - 'y'\n---\nc: true\n").unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].get("b").unwrap();
        let NodeKind::Seq(items) = &b.kind else {
            panic!("{b:?}")
        };
        assert_eq!(items[0].pos, Pos { line: 3, col: 5 });
        assert_eq!(
            items[1].kind,
            NodeKind::Scalar {
                text: "y".into(),
                plain: false
            }
        );
        assert_eq!(docs[1].get("c").unwrap().as_bool(), Some(true));
        assert_eq!(docs[1].get("c").unwrap().pos.line, 6);
    }

    #[test]
    fn refuses_aliases_duplicates_and_bad_syntax() {
        let e = parse_documents("a: &x 1\nb: *x\n").unwrap_err();
        assert!(e.reason.contains("anchors"), "{e:?}");
        let e = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 2);
        assert!(e.reason.contains("duplicate"), "{e:?}");
        let e = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.reason.contains("syntax"), "{e:?}");
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(
            parse_documents(&deep)
                .unwrap_err()
                .reason
                .contains("nested")
        );
    }
}
