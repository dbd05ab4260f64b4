//! The practice's known networks (`networks.csv`: `cidr,name`), so rules
//! can tell staff Wi-Fi, the VPN pool or the office LAN from other
//! addresses without naming addresses (`actor.network`).
//!
//! Rows are grouped by prefix length: a lookup tries each length present,
//! longest first, with one hash probe each, so the cost does not grow with
//! the number of rows. A v4-mapped v6 address is looked up as v4. A row
//! whose `cidr` is no network (or has host bits set) or whose `name` is
//! empty or too long is skipped with a note, like any lookup row.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use super::enrich::{
    EnrichError, LoadReport, MAX_NETWORKS, Row, RowResult, field_reason, read_table_max,
};
use crate::event::check_enriched_text as check_text;

const COLUMNS: [&str; 2] = ["cidr", "name"];

/// Known networks by (is v6, prefix length) -> masked address -> name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Networks {
    /// Longest prefix first.
    by_len: Vec<((bool, u8), HashMap<u128, String>)>,
    len: usize,
}

/// A network as written: v6 flag, address bits, prefix length.
fn parse_cidr(s: &str) -> Result<(bool, u128, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| "cidr: must be an address/length such as 10.0.0.0/8".to_owned())?;
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| "cidr: not an ip address".to_owned())?;
    let len: u8 = len
        .trim()
        .parse()
        .map_err(|_| "cidr: prefix length is not a number".to_owned())?;
    let (v6, bits, max) = match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (true, u128::from(a), 128),
    };
    if len > max {
        return Err(format!("cidr: prefix length is more than {max}"));
    }
    if mask(bits, len, max) != bits {
        return Err("cidr: host bits are set (write the network address)".to_owned());
    }
    Ok((v6, bits, len))
}

fn mask(bits: u128, len: u8, max: u8) -> u128 {
    let keep = u32::from(max - len.min(max));
    if keep >= 128 {
        0
    } else {
        (bits >> keep) << keep
    }
}

fn network_row(row: &Row<'_>) -> RowResult<String> {
    let cidr = row.text(0).ok_or("cidr: must not be empty")?;
    let name = row.text(1).ok_or("name: must not be empty")?;
    parse_cidr(&cidr)?;
    check_text("name", &Some(name.clone())).map_err(field_reason)?;
    // Keyed by the network as written: a repeated row keeps the first.
    Ok((cidr, name))
}

/// Reads `networks.csv`; a missing file is an empty table (no note: the
/// file is optional).
pub(crate) fn load(path: &Path, report: &mut LoadReport) -> Result<Networks, EnrichError> {
    if !path.exists() {
        return Ok(Networks::default());
    }
    let rows = read_table_max(path, &COLUMNS, report, network_row, MAX_NETWORKS)?;
    let mut by_len: HashMap<(bool, u8), HashMap<u128, String>> = HashMap::new();
    let mut len = 0;
    for (cidr, name) in rows {
        if let Ok((v6, bits, l)) = parse_cidr(&cidr) {
            by_len.entry((v6, l)).or_default().insert(bits, name);
            len += 1;
        }
    }
    let mut by_len: Vec<_> = by_len.into_iter().collect();
    by_len.sort_by(|a, b| b.0.1.cmp(&a.0.1).then(a.0.0.cmp(&b.0.0)));
    Ok(Networks { by_len, len })
}

impl Networks {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The name of the most specific known network holding `ip`.
    pub(crate) fn find(&self, ip: &str) -> Option<&str> {
        if self.by_len.is_empty() {
            return None;
        }
        let (v6, bits) = match ip.trim().parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => (false, u128::from(u32::from(a))),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => (false, u128::from(u32::from(v4))),
                None => (true, u128::from(a)),
            },
        };
        let max = if v6 { 128 } else { 32 };
        self.by_len
            .iter()
            .filter(|((is6, _), _)| *is6 == v6)
            .find_map(|((_, len), nets)| nets.get(&mask(bits, *len, max)))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> (Networks, LoadReport) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("networks.csv");
        std::fs::write(&p, text).unwrap();
        let mut r = LoadReport::default();
        (load(&p, &mut r).unwrap(), r)
    }

    #[test]
    fn longest_prefix_wins_and_v4_mapped_is_v4() {
        let (n, r) = table(
            "cidr,name\n10.0.0.0/8,lan\n10.99.0.0/16,vpn\n2001:db8::/32,v6 wifi\n0.0.0.0/0,anywhere\n",
        );
        assert_eq!(r.skipped_rows, 0);
        assert_eq!(n.len(), 4);
        assert_eq!(n.find("10.99.3.4"), Some("vpn"));
        assert_eq!(n.find("10.20.3.4"), Some("lan"));
        assert_eq!(n.find("::ffff:10.99.0.1"), Some("vpn"));
        assert_eq!(n.find("2001:db8:1::5"), Some("v6 wifi"));
        assert_eq!(n.find("2001:db9::5"), None);
        assert_eq!(n.find("203.0.113.9"), Some("anywhere"));
        assert_eq!(n.find("not an ip"), None);
    }

    #[test]
    fn bad_rows_are_named_and_skipped() {
        let (n, r) = table(
            "name,cidr\nvpn,10.99.0.0/16\nx,10.1.2.3/16\ny,10.0.0.0/33\nz,banana/8\n,10.5.0.0/16\nw,10.6.0.0\n",
        );
        assert_eq!(n.len(), 1);
        assert_eq!(r.skipped_rows, 5);
        let msgs: Vec<String> = r.notes.iter().map(ToString::to_string).collect();
        assert!(
            msgs[0].ends_with(":3: cidr: host bits are set (write the network address)"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("more than 32"), "{msgs:?}");
        assert!(msgs[2].contains("not an ip address"), "{msgs:?}");
        assert!(msgs[3].contains("name: must not be empty"), "{msgs:?}");
        assert!(msgs[4].contains("address/length"), "{msgs:?}");
    }

    #[test]
    fn enrich_names_the_network_and_a_reload_sees_the_file() {
        use crate::event::Event;
        use crate::transforms::{Enricher, enrich};
        let dir = tempfile::tempdir().unwrap();
        let ev = |ip: &str| {
            Event::from_json(
                format!(
                    r#"{{"time":"2026-03-02T10:00:00Z","category":"auth","action":"login","outcome":"success","actor":{{"user":"nobody","ip":"{ip}"}}}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let (enricher, report) = Enricher::load(dir.path()).unwrap();
        assert_eq!(report.network_rows, 0);
        assert!(enrich(&enricher.snapshot(), &ev("10.99.1.2")).is_none());
        std::fs::write(
            dir.path().join("networks.csv"),
            "cidr,name\n10.99.0.0/16,vpn\n",
        )
        .unwrap();
        let report = enricher.reload_if_changed().unwrap().unwrap();
        assert_eq!(report.network_rows, 1);
        let l = enricher.snapshot();
        let e = enrich(&l, &ev("10.99.1.2")).unwrap();
        assert_eq!(e.network.as_deref(), Some("vpn"));
        assert!(e.actor.is_none() && e.validate().is_ok());
        assert!(enrich(&l, &ev("10.98.1.2")).is_none());
    }

    #[test]
    fn missing_is_empty_and_a_bad_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = LoadReport::default();
        let n = load(&dir.path().join("networks.csv"), &mut r).unwrap();
        assert_eq!((n.len(), r.notes.len()), (0, 0));
        let p = dir.path().join("networks.csv");
        std::fs::write(&p, "cidr,label\n10.0.0.0/8,lan\n").unwrap();
        let e = load(&p, &mut r).unwrap_err().to_string();
        assert!(
            e.contains("networks.csv: header: unknown column `label`"),
            "{e}"
        );
    }
}
