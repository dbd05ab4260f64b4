//! Negations the way analysts write them. Tantivy's parser turns `a AND NOT
//! b` into `a AND (NOT b)`, and a boolean query made only of exclusions
//! matches nothing, so the whole query would match nothing. Every such
//! exclusion-only group gets "all documents" as its positive part, which
//! gives the Lucene meaning: `a AND NOT b` = `a -b`, and `NOT b` alone = all
//! but `b`.

use tantivy::query::{AllQuery, BooleanQuery, Occur, Query};

/// Rewrites exclusion-only boolean groups, recursively.
pub fn with_positive_groups(query: Box<dyn Query>) -> Box<dyn Query> {
    let Some(b) = query.downcast_ref::<BooleanQuery>() else {
        return query;
    };
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = b
        .clauses()
        .iter()
        .map(|(occur, q)| (*occur, with_positive_groups(q.box_clone())))
        .collect();
    if !clauses.is_empty() && clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    Box::new(BooleanQuery::new(clauses))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::Count;
    use tantivy::query::QueryParser;
    use tantivy::schema::{STRING, Schema};
    use tantivy::{Index, doc};

    #[test]
    fn and_not_and_lone_not_exclude_instead_of_matching_nothing() {
        let mut sb = Schema::builder();
        let f = sb.add_text_field("f", STRING);
        let g = sb.add_text_field("g", STRING);
        let index = Index::create_in_ram(sb.build());
        let mut w = index.writer(15_000_000).unwrap();
        for (a, b) in [("x", "1"), ("x", "2"), ("y", "1")] {
            w.add_document(doc!(f => a, g => b)).unwrap();
        }
        w.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let parser = QueryParser::for_index(&index, vec![f]);
        let count = |q: &str| {
            let parsed = parser.parse_query(q).unwrap();
            searcher
                .search(&with_positive_groups(parsed), &Count)
                .unwrap()
        };
        assert_eq!(count("f:x AND NOT g:1"), 1);
        assert_eq!(count("f:x -g:1"), 1);
        assert_eq!(count("(f:x OR f:y) AND NOT g:2"), 2);
        assert_eq!(count("f:x AND (NOT g:1)"), 1);
        assert_eq!(count("* AND NOT g:1"), 1);
    }
}
