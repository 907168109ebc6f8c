//! A fast path for the JSON form of the networks annotation.
//!
//! The webhook reads this annotation for every pod it admits and the plugin for every ADD, so
//! it is the hottest parse in the project. This scanner walks the common shape directly — a list
//! of objects whose known string fields are plain strings (no escapes) and whose string lists are
//! lists of plain strings — and borrows every string from the text. Everything else it hands
//! back: `portMappings` and `bandwidth` are read here only in their plain shape (integers, plain
//! strings, each key once), the free-form values (`cni-args`, vendor keys) are cut out by extent
//! and read by serde_json with the very types the serde path uses, and anything unusual
//! at all (an escape, a `null`, a wrong type, a syntax error, a missing name) makes it give up
//! with `None`, so the serde path in `networks.rs` decides — and words the error. It therefore
//! never accepts what the serde path refuses, and never reads a value differently; a property
//! test holds the two to that.

use std::borrow::Cow;

use serde_json::Value;

use super::networks::{Bandwidth, Field, NetworkSelection, PortMapping, RawJson};

/// The selections of a JSON-form value, or `None` when the serde path must decide.
pub(super) fn scan_json_form(text: &str) -> Option<Vec<NetworkSelection<'_>>> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    s.expect(b'[')?;
    let mut out: Vec<NetworkSelection<'_>> =
        Vec::with_capacity(super::networks::estimated_elements(text));
    if s.peek()? == b']' {
        s.pos += 1;
    } else {
        loop {
            // Filled in place: a selection is large, and moving it costs more than scanning it.
            out.push(NetworkSelection::default());
            s.selection(out.last_mut()?)?;
            match s.next_byte()? {
                b',' => continue,
                b']' => break,
                _ => return None,
            }
        }
    }
    s.skip_ws();
    (s.pos == s.bytes.len()).then_some(out)
}

/// The bytes that end a plain string: its closing quote, an escape, or a control character (which
/// JSON does not allow unescaped).
static ENDS_PLAIN_STRING: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The length of the plain string at the start of `rest` (up to its closing quote), or `None`
/// when an escape, a control character or the end of the text comes first.
///
/// Eight bytes at a time: the strings here are short and of every length, so a byte loop pays a
/// mispredicted exit per string, and this scan mostly finishes in one or two words.
fn plain_len(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut at = 0;
    while let Some(word) = rest.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*word);
        // Flags bytes equal to `"` or `\\`, or below 0x20. Borrows can flag bytes above a true
        // match, never below one, so the lowest flag is exact.
        let found = zero_bytes(x ^ u64::from_ne_bytes([b'"'; 8]))
            | zero_bytes(x ^ u64::from_ne_bytes([b'\\'; 8]))
            | (x.wrapping_sub(u64::from_ne_bytes([0x20; 8])) & !x & HIGHS);
        if found != 0 {
            let len = at + (found.trailing_zeros() / 8) as usize;
            return (rest.get(len) == Some(&b'"')).then_some(len);
        }
        at += 8;
    }
    let tail = rest.get(at..)?;
    let len = at
        + tail
            .iter()
            .position(|&b| ENDS_PLAIN_STRING[usize::from(b)])?;
    (rest.get(len) == Some(&b'"')).then_some(len)
}

/// One level deeper inside a field's value, or `None` past [`MAX_NESTED_DEPTH`].
fn nested(depth: usize) -> Option<usize> {
    (depth < MAX_NESTED_DEPTH).then_some(depth + 1)
}

/// Nesting allowed inside one field's value. serde_json stops at 128 levels counted from the top
/// of the annotation (two levels above a field's value); well below that, so the fast path never
/// accepts what the serde path would refuse for depth.
const MAX_NESTED_DEPTH: usize = 100;

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        // Most of the text has no blanks between tokens: one comparison in the common case.
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-blank byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
    }

    /// The next non-blank byte, consumed.
    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next_byte()? == byte).then_some(())
    }

    /// A string without escapes or control characters, borrowed from the text.
    fn plain_str(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        let len = plain_len(self.bytes.get(start..)?)?;
        self.pos = start + len + 1;
        self.text.get(start..start + len)
    }

    /// The items of a list or the members of an object whose opening bracket is consumed, each
    /// read by `item`, up to and including `close`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.peek()? == close {
            self.pos += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.next_byte()? {
                b',' => continue,
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// `[ item, … ]`, each item read by `item`.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.expect(b'[')?;
        // Room for the usual one or two items from the start: growing from empty costs a
        // reallocation check and a call per list.
        let mut out = Vec::with_capacity(2);
        self.items(b']', |s| {
            out.push(item(s)?);
            Some(())
        })?;
        Some(out)
    }

    /// `[ "…", … ]` of plain strings.
    fn plain_str_list(&mut self) -> Option<Vec<Cow<'a, str>>> {
        self.list(|s| s.plain_str().map(Cow::Borrowed))
    }

    /// A free-form JSON value (`cni-args`, a vendor key), cut out as its text once checked to be
    /// what serde_json reads, in its plain shape only: plain strings, numbers, literals, and
    /// arrays and objects of those. Anything else gives up to the serde path. Repeated keys are
    /// left in the text: read later, serde_json keeps the last, as the serde path does.
    fn raw_value(&mut self) -> Option<RawJson<'a>> {
        self.skip_ws();
        let start = self.pos;
        self.value(0)?;
        Some(RawJson::checked(self.text.get(start..self.pos)?))
    }

    /// `cni-args`: as [`Self::raw_value`], and an object (the serde path reads it as a map).
    fn raw_object(&mut self) -> Option<RawJson<'a>> {
        if self.peek()? != b'{' {
            return None;
        }
        self.raw_value()
    }

    /// Steps over one value, checking it (see [`Self::raw_value`]).
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.plain_str().map(drop),
            b'{' => {
                let depth = nested(depth)?;
                self.pos += 1;
                self.items(b'}', |s| {
                    s.plain_str()?;
                    s.expect(b':')?;
                    s.value(depth)
                })
            }
            b'[' => {
                let depth = nested(depth)?;
                self.pos += 1;
                self.items(b']', |s| s.value(depth))
            }
            b'-' | b'0'..=b'9' => match self.int() {
                Some(_) => Some(()),
                None => self.number_by_serde(),
            },
            _ => {
                let rest = self.bytes.get(self.pos..)?;
                let len = if rest.starts_with(b"true") || rest.starts_with(b"null") {
                    4
                } else if rest.starts_with(b"false") {
                    5
                } else {
                    return None;
                };
                self.pos += len;
                Some(())
            }
        }
    }

    /// A number that is not a plain `i64` (a fraction, an exponent, a large integer): its text
    /// is cut out and checked by serde_json itself (it refuses e.g. `1e400`).
    fn number_by_serde(&mut self) -> Option<()> {
        let start = self.pos;
        let rest = self.bytes.get(start..)?;
        let len = rest
            .iter()
            .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
            .unwrap_or(rest.len());
        serde_json::from_str::<Value>(self.text.get(start..start + len)?).ok()?;
        self.pos = start + len;
        Some(())
    }

    /// An integer as serde_json reads one into an `i64`: `0`, or `-?[1-9][0-9]*`. A fraction, an
    /// exponent, a leading zero, `-0` or an overflow gives up (serde_json refuses those).
    fn int(&mut self) -> Option<i64> {
        self.skip_ws();
        let start = self.pos;
        let rest = self.bytes.get(start..)?;
        let negative = rest.first() == Some(&b'-');
        let digits = rest.get(usize::from(negative)..)?;
        // One pass: the digits' extent, and the value of the first eighteen (which cannot
        // overflow an i64, so no checks on the common path).
        let mut len = 0;
        let mut short: i64 = 0;
        for &b in digits {
            if !b.is_ascii_digit() {
                break;
            }
            if len < 18 {
                short = short * 10 + i64::from(b - b'0');
            }
            len += 1;
        }
        // `01` is not JSON; `-0` serde_json reads as the float -0.0, which no i64 accepts.
        let leading_zero = digits.first() == Some(&b'0') && (len > 1 || negative);
        if len == 0 || leading_zero || matches!(digits.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let digits = digits.get(..len)?;
        let end = start + usize::from(negative) + len;
        if len <= 18 {
            self.pos = end;
            return Some(if negative { -short } else { short });
        }
        // Accumulated towards the sign, so i64::MIN is reachable and an overflow gives up.
        let mut value: i64 = 0;
        for &d in digits {
            let d = i64::from(d - b'0');
            value = value.checked_mul(10)?;
            value = if negative {
                value.checked_sub(d)?
            } else {
                value.checked_add(d)?
            };
        }
        // Set only on success: a caller that gets `None` reads the number again from `start`.
        self.pos = end;
        Some(value)
    }

    /// `{ "key": value, … }` with each key read by `field`, which returns a bit naming the key
    /// (a key seen twice gives up: serde's derived readers refuse duplicates) or `None` for a key
    /// it does not take.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<u8>) -> Option<()> {
        self.expect(b'{')?;
        let mut seen = 0u8;
        self.items(b'}', |s| {
            let key = s.plain_str()?;
            s.expect(b':')?;
            let bit = field(s, key)?;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            Some(())
        })
    }

    fn bandwidth(&mut self) -> Option<Bandwidth> {
        let mut bw = Bandwidth::default();
        self.object(|s, key| {
            let (slot, bit) = match key {
                "ingressRate" => (&mut bw.ingress_rate, 1),
                "ingressBurst" => (&mut bw.ingress_burst, 2),
                "egressRate" => (&mut bw.egress_rate, 4),
                "egressBurst" => (&mut bw.egress_burst, 8),
                _ => return None,
            };
            *slot = Some(s.int()?);
            Some(bit)
        })?;
        Some(bw)
    }

    fn port_mapping(&mut self) -> Option<PortMapping> {
        let mut m = PortMapping::default();
        self.object(|s, key| {
            Some(match key {
                "hostPort" => {
                    m.host_port = Some(s.int()?);
                    1
                }
                "containerPort" => {
                    m.container_port = Some(s.int()?);
                    2
                }
                "protocol" => {
                    m.protocol = Some(s.plain_str()?.to_owned());
                    4
                }
                "hostIP" => {
                    m.host_ip = Some(s.plain_str()?.to_owned());
                    8
                }
                _ => return None,
            })
        })?;
        Some(m)
    }

    fn port_mappings(&mut self) -> Option<Vec<PortMapping>> {
        self.list(Self::port_mapping)
    }

    fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        Some(Some(Cow::Borrowed(self.plain_str()?)))
    }

    fn selection(&mut self, sel: &mut NetworkSelection<'a>) -> Option<()> {
        self.expect(b'{')?;
        let mut has_name = false;
        if self.peek()? == b'}' {
            return None; // no name: the serde path reports it
        }
        loop {
            let key = self.plain_str()?;
            self.expect(b':')?;
            match Field::from_key(key) {
                Some(Field::Name) => {
                    sel.name = Cow::Borrowed(self.plain_str()?);
                    has_name = true;
                }
                Some(Field::Namespace) => sel.namespace = self.opt_str()?,
                Some(Field::Ips) => sel.ips = Some(self.plain_str_list()?),
                Some(Field::Mac) => sel.mac = self.opt_str()?,
                Some(Field::Interface) => sel.interface = self.opt_str()?,
                Some(Field::InterfaceRequest) => sel.interface_request = self.opt_str()?,
                Some(Field::CniArgs) => sel.cni_args = Some(self.raw_object()?),
                Some(Field::PortMappings) => sel.port_mappings = Some(self.port_mappings()?),
                Some(Field::Bandwidth) => sel.bandwidth = Some(self.bandwidth()?),
                Some(Field::DefaultRoute) => sel.default_route = Some(self.plain_str_list()?),
                Some(Field::InfinibandGuid) => sel.infiniband_guid = self.opt_str()?,
                Some(Field::IpamClaimReference) => sel.ipam_claim_reference = self.opt_str()?,
                Some(Field::DeviceId) => sel.device_id = self.opt_str()?,
                None => {
                    // A repeated vendor key keeps its place and takes the last value, as in
                    // the serde path.
                    let value = self.raw_value()?;
                    sel.extra.insert(key, value);
                }
            }
            match self.next_byte()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        has_name.then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::networks::parse_networks_with_serde;

    const RICH: &str = r#"[
  {"name":"net0","namespace":"infra","interface":"mgmt0"},
  {"name":"net1","ips":["192.0.2.10/24","2001:db8:1::10/64"],"mac":"02:00:5e:10:00:01"},
  {"name":"net2","cni-args":{"vlan":42,"mtu":9000}},
  {"name":"net3","namespace":"infra","default-route":["198.51.100.1"]},
  {"name":"net4","portMappings":[{"hostPort":9000,"containerPort":80,"protocol":"tcp"}]},
  {"name":"net5","bandwidth":{"ingressRate":1000000,"ingressBurst":100000}},
  {"name":"net8","interface":"data1","org.example.tier":"gold","org.example.n":-1.5e3},
  {"name":"net9","deviceID":"0000:3b:02.1","infiniband-guid":"00:11:22:33:44:55:66:77"}
]"#;

    use proptest::prelude::*;

    /// JSON scalar and value texts that reach the scanner's corners: escapes, control bytes,
    /// nulls, every number shape, wrong types, nesting.
    fn value_text() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            Just(r#""net-a""#.to_owned()),
            Just(r#""""#.to_owned()),
            Just(r#""tcp""#.to_owned()),
            Just(r#""192.0.2.1/24""#.to_owned()),
            Just(r#""esc\"aped""#.to_owned()),
            Just(r#""uni\u0041""#.to_owned()),
            Just("\"ctl\u{1}\"".to_owned()),
            Just("\"tab\there\"".to_owned()),
            Just(r#""é✓""#.to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("0".to_owned()),
            Just("-0".to_owned()),
            Just("01".to_owned()),
            Just("80".to_owned()),
            Just("-7".to_owned()),
            Just("1.5".to_owned()),
            Just("1e3".to_owned()),
            Just("99999999999999999999".to_owned()),
            Just("-".to_owned()),
        ];
        scalar.prop_recursive(3, 24, 4, |inner| {
            let key = prop_oneof![
                Just("hostPort"),
                Just("containerPort"),
                Just("protocol"),
                Just("hostIP"),
                Just("ingressRate"),
                Just("egressBurst"),
                Just("vlan"),
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((key, inner), 0..4).prop_map(|kv| {
                    let body: Vec<String> = kv
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    fn key_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("name"),
            Just("name"),
            Just("namespace"),
            Just("ips"),
            Just("mac"),
            Just("interface"),
            Just("interfaceRequest"),
            Just("cni-args"),
            Just("portMappings"),
            Just("bandwidth"),
            Just("default-route"),
            Just("infiniband-guid"),
            Just("ipam-claim-reference"),
            Just("deviceID"),
            Just("org.example.x"),
            Just("Name"),
            Just("na\\u006de"),
        ]
        .prop_map(|k| format!("\"{k}\""))
    }

    fn blank() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just(""),
            Just(""),
            Just(" "),
            Just("\n  "),
            Just("\t"),
            Just("\u{a0}")
        ]
    }

    /// Annotation-shaped texts, mostly well-formed, sometimes not.
    fn annotation_text() -> impl Strategy<Value = String> {
        let member = (blank(), key_text(), blank(), value_text())
            .prop_map(|(b1, k, b2, v)| format!("{b1}{k}:{b2}{v}"));
        let element = prop_oneof![
            4 => proptest::collection::vec(member, 0..5).prop_map(|m| format!("{{{}}}", m.join(","))),
            1 => value_text(),
        ];
        (
            blank(),
            proptest::collection::vec(element, 0..4),
            blank(),
            prop_oneof![
                Just(""),
                Just(""),
                Just(""),
                Just(","),
                Just("]"),
                Just("x")
            ],
        )
            .prop_map(|(b1, elements, b2, tail)| format!("{b1}[{}]{b2}{tail}", elements.join(",")))
    }

    /// `bandwidth` and `portMappings` values built from every number and string shape.
    fn typed_sub_objects() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            Just("0"),
            Just("-0"),
            Just("7"),
            Just("-7"),
            Just("01"),
            Just("-01"),
            Just("1.0"),
            Just("2e2"),
            Just("9223372036854775807"),
            Just("9223372036854775808"),
            Just("-9223372036854775808"),
            Just("null"),
            Just(r#""80""#),
        ];
        let bw_key = prop_oneof![
            Just("ingressRate"),
            Just("ingressBurst"),
            Just("egressRate"),
            Just("egressBurst"),
        ];
        let pm_member = prop_oneof![
            (Just("hostPort"), number.clone()).prop_map(|(k, v)| format!("\"{k}\":{v}")),
            (Just("containerPort"), number.clone()).prop_map(|(k, v)| format!("\"{k}\":{v}")),
            Just(r#""protocol":"tcp""#.to_owned()),
            Just(r#""hostIP":"0.0.0.0""#.to_owned()),
        ];
        let bandwidth = proptest::collection::vec((bw_key, number), 0..4).prop_map(|kv| {
            let body: Vec<String> = kv
                .into_iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!(r#"[{{"name":"a","bandwidth":{{{}}}}}]"#, body.join(","))
        });
        let mappings = proptest::collection::vec(proptest::collection::vec(pm_member, 0..4), 0..3)
            .prop_map(|maps| {
                let maps: Vec<String> = maps
                    .iter()
                    .map(|m| format!("{{{}}}", m.join(",")))
                    .collect();
                format!(r#"[{{"name":"a","portMappings":[{}]}}]"#, maps.join(","))
            });
        prop_oneof![bandwidth, mappings]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The word-at-a-time scan finds what a byte loop finds, at every offset and length.
        #[test]
        fn plain_len_matches_a_byte_loop(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(0x1f), Just(0x20), Just(0x7f), Just(0xc3), Just(b'a'), 0u8..=255],
                0..40,
            )
        ) {
            let by_byte = bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .filter(|&i| bytes.get(i) == Some(&b'"'));
            prop_assert_eq!(plain_len(&bytes), by_byte);
        }

        #[test]
        fn typed_sub_objects_are_read_as_serde_reads_them(text in typed_sub_objects()) {
            if let Some(fast) = scan_json_form(&text) {
                prop_assert_eq!(Ok(fast), parse_networks_with_serde(&text), "{}", text);
            }
        }

        /// About one generated text in ten is valid, and the scanner takes every one of those.
        #[test]
        fn the_scanner_reads_as_serde_does_or_gives_up(text in annotation_text()) {
            if let Some(fast) = scan_json_form(&text) {
                prop_assert_eq!(Ok(fast), parse_networks_with_serde(&text), "{}", text);
            }
        }
    }

    #[test]
    fn plain_sub_objects_are_read_here_and_odd_ones_left_to_serde() {
        let plain = r#"[{"name":"a","portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}],"bandwidth":{"ingressRate":0,"egressRate":-5}}]"#;
        assert!(scan_json_form(plain).is_some());
        for odd in [
            r#"[{"name":"a","bandwidth":{"ingressRate":1,"ingressRate":2}}]"#,
            r#"[{"name":"a","bandwidth":{"ingressRate":1.0}}]"#,
            r#"[{"name":"a","bandwidth":{"ingressRate":01}}]"#,
            r#"[{"name":"a","bandwidth":{"ingressRate":-0}}]"#,
            r#"[{"name":"a","bandwidth":{"other":1}}]"#,
            r#"[{"name":"a","portMappings":null}]"#,
            r#"[{"name":"a\u0062"}]"#,
            r#"[{"namespace":"x"}]"#,
            r#"[{"name":"a"},]"#,
        ] {
            assert!(scan_json_form(odd).is_none(), "{odd}");
        }
    }

    #[test]
    fn the_common_shape_is_scanned_and_read_as_the_serde_path_reads_it() {
        let fast = scan_json_form(RICH).expect("scanned");
        assert_eq!(fast, parse_networks_with_serde(RICH).unwrap());
        assert!(matches!(fast[0].name, Cow::Borrowed("net0")));
    }
}
