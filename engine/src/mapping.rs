//! Account subject mappings (`mappings { src: dest }`, weighted lists), as
//! nats-server 2.9.10 applies them: a client's publish whose subject matches
//! a mapping's source is routed (and permission-checked) as the subject the
//! mapping gives. Weighted destinations split the traffic; weights under 100
//! in total leave the rest on the original subject.
use crate::subject::is_valid_subject;
use crate::transform::SubjectTransform;

/// One destination as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDest {
    /// The destination template.
    pub subject: String,
    /// Its share of the traffic, 0..=100.
    pub weight: u8,
    /// `cluster`: only for that cluster (natsd has none, so such a
    /// destination never applies, as in a nats-server outside that cluster).
    pub cluster: Option<String>,
}

/// One mapping as configured: a source and its destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfig {
    /// The source subject (wildcards allowed).
    pub source: String,
    /// The destinations.
    pub dests: Vec<MapDest>,
}

/// A compiled mapping: destinations (all from the same source) with
/// cumulative weights, ascending.
#[derive(Debug)]
struct Mapping {
    dests: Vec<(SubjectTransform, u32)>,
}

/// An account's compiled mappings, in configuration order.
#[derive(Debug, Default)]
pub struct Mappings {
    list: Vec<Mapping>,
}

impl Mappings {
    /// Compile `configs`; the error is nats-server's text for the first bad
    /// one (its `AddWeightedMappings` checks).
    pub fn new(configs: &[MappingConfig]) -> Result<Self, String> {
        let list = configs
            .iter()
            .map(Mapping::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mappings { list })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The subject a publish to `subject` goes to, when a mapping matches.
    pub fn select(&self, subject: &str) -> Option<String> {
        let tokens: Vec<&str> = subject.split('.').collect();
        let m = self.list.iter().find(|m| {
            m.dests
                .first()
                .is_some_and(|(t, _)| t.source_matches(&tokens))
        })?;
        let (transform, _) = match m.dests.as_slice() {
            [only] => only,
            dests => {
                let w = crate::transform::random_below(100);
                dests.iter().find(|(_, cum)| w < *cum)?
            }
        };
        transform.apply(subject)
    }
}

impl Mapping {
    fn new(cfg: &MappingConfig) -> Result<Self, String> {
        let src = &cfg.source;
        if !is_valid_subject(src.as_bytes()) {
            return Err("invalid subject".into());
        }
        let mut seen = Vec::new();
        let mut total = 0u32;
        let mut dests = Vec::new();
        for d in &cfg.dests {
            if seen.contains(&d.subject.as_str()) {
                return Err(format!("duplicate entry for {:?}", d.subject));
            }
            seen.push(d.subject.as_str());
            if d.weight > 100 {
                return Err("individual weights need to be <= 100".into());
            }
            total += u32::from(d.weight);
            if total > 100 {
                return Err("total weight needs to be <= 100".into());
            }
            let t = SubjectTransform::new(src, &d.subject).map_err(|e| e.to_string())?;
            if d.cluster.is_none() {
                dests.push((t, u32::from(d.weight)));
            }
        }
        // The rest of the traffic keeps its subject, unless the source is
        // listed itself (then the missing share is dropped).
        let weight: u32 = dests.iter().map(|(_, w)| *w).sum();
        if weight != 100 && !seen.contains(&src.as_str()) {
            let identity =
                SubjectTransform::new(src, &tokenized(src)).map_err(|e| e.to_string())?;
            let rest = if dests.is_empty() { 100 } else { 100 - weight };
            dests.push((identity, rest));
        }
        dests.sort_by_key(|(_, w)| *w);
        let mut cum = 0;
        for (_, w) in &mut dests {
            cum += *w;
            *w = cum;
        }
        Ok(Mapping { dests })
    }
}

/// `a.*.b.*` as the destination that maps it onto itself: `a.$1.b.$2`.
fn tokenized(src: &str) -> String {
    let mut n = 0;
    src.split('.')
        .map(|t| {
            if t == "*" {
                n += 1;
                format!("${n}")
            } else {
                t.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(subject: &str, weight: u8) -> MapDest {
        MapDest {
            subject: subject.into(),
            weight,
            cluster: None,
        }
    }

    fn mapping(source: &str, dests: Vec<MapDest>) -> MappingConfig {
        MappingConfig {
            source: source.into(),
            dests,
        }
    }

    #[test]
    fn plain_and_wildcard_mappings() {
        let m = Mappings::new(&[
            mapping("foo", vec![dest("bar", 100)]),
            mapping("orders.*.*", vec![dest("o.$2.$1", 100)]),
        ])
        .unwrap();
        assert_eq!(m.select("foo").as_deref(), Some("bar"));
        assert_eq!(m.select("orders.a.b").as_deref(), Some("o.b.a"));
        assert_eq!(m.select("orders.a"), None);
        assert_eq!(m.select("other"), None);
    }

    #[test]
    fn weights_split_and_keep_the_rest() {
        let m = Mappings::new(&[mapping("w.*", vec![dest("a.$1", 20), dest("b.$1", 30)])]).unwrap();
        let mut counts = std::collections::HashMap::new();
        for _ in 0..2000 {
            *counts.entry(m.select("w.x").unwrap()).or_insert(0) += 1;
        }
        let share = |s: &str| counts.get(s).copied().unwrap_or(0);
        assert_eq!(counts.len(), 3, "{counts:?}");
        // 20/30/50 of 2000, loosely.
        assert!((250..550).contains(&share("a.x")), "{counts:?}");
        assert!((450..750).contains(&share("b.x")), "{counts:?}");
        assert!((800..1200).contains(&share("w.x")), "{counts:?}");
    }

    #[test]
    fn refusals_as_nats_server() {
        let e = |dests| Mappings::new(&[mapping("s.*", dests)]).unwrap_err();
        assert_eq!(
            e(vec![dest("a.$1", 60), dest("b.$1", 50)]),
            "total weight needs to be <= 100"
        );
        assert_eq!(
            e(vec![dest("a.$1", 10), dest("a.$1", 10)]),
            "duplicate entry for \"a.$1\""
        );
        assert_eq!(
            e(vec![dest("a.$2", 100)]),
            "invalid mapping destination: wildcard index out of range in $2"
        );
        assert_eq!(tokenized("a.*.b.*.>"), "a.$1.b.$2.>");
    }
}
