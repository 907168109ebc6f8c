//! `k8s.v1.cni.cncf.io/network-status`: one entry per attachment, written by the CNI plugin after
//! ADD (multi-net-spec §5, with the fields nad-client's `NetworkStatus` adds).
//!
//! Written byte-for-byte as Multus writes it: each entry pretty-printed with Go's
//! `json.MarshalIndent(entry, "", "    ")` (which also escapes `<`, `>`, `&`, U+2028 and U+2029),
//! the entries joined with `,` inside `[` `]`. Read leniently: any JSON layout, `null` for any
//! field, unknown keys kept.

use std::io;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::ser::{Formatter, PrettyFormatter};
use serde_json::{Map, Value};

use super::device_info::DeviceInfo;
use super::networks::json_kind;

/// One attachment's status. Empty values are omitted on write, as Go's `omitempty` does, except
/// `dns`, which Multus always writes (`{}` when empty).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// `<namespace>/<nad>` for NADs; the CNI network name for a file-based cluster network.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub interface: String,
    /// Bare addresses (Multus drops the prefix length).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ips: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub mtu: i64,
    /// True for the cluster default network's entry only.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub default: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub dns: Dns,
    #[serde(
        rename = "device-info",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub device_info: Option<DeviceInfo>,
    /// Gateways of the attachment's default routes (Multus' key; the spec's `default-route` is
    /// kept in `extra` when another writer uses it).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub gateway: Vec<String>,
    /// Keys not above (vendor keys, the spec's `default-route`), kept on read and written after
    /// the known ones.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DNS settings from the CNI result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nameservers: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub domain: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub search: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<String>,
}

fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Why a status value could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatusParseError {
    #[error("not valid JSON: {message}")]
    Json { message: String },
    #[error("must be a JSON list of status entries, not {found}")]
    NotAList { found: &'static str },
    #[error("entry [{index}]: {message}")]
    Entry { index: usize, message: String },
}

/// Read a network-status value. A blank value has no entries. Never panics.
pub fn parse_network_status(value: &str) -> Result<Vec<NetworkStatus>, StatusParseError> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(entries) = serde_json::from_str::<Vec<NetworkStatus>>(value) {
        return Ok(entries);
    }
    // Read again generically only to say which entry is wrong.
    let value: Value = serde_json::from_str(value).map_err(|e| StatusParseError::Json {
        message: e.to_string(),
    })?;
    let Value::Array(entries) = value else {
        return Err(StatusParseError::NotAList {
            found: json_kind(&value),
        });
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            serde_json::from_value(entry).map_err(|e| StatusParseError::Entry {
                index,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Write the annotation value exactly as Multus does.
pub fn to_status_annotation(entries: &[NetworkStatus]) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(256 * entries.len().max(1));
    out.push(b'[');
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoIndentFormatter::new());
        entry.serialize(&mut ser)?;
    }
    out.push(b']');
    // Only strings and JSON punctuation were written, so the bytes are UTF-8.
    String::from_utf8(out)
        .map_err(|e| serde_json::Error::io(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// serde_json's pretty printer with a 4-space indent, plus the escapes Go's encoder applies to
/// strings by default (`<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`; U+2028/U+2029), so the
/// output matches `json.MarshalIndent` byte for byte.
struct GoIndentFormatter {
    pretty: PrettyFormatter<'static>,
}

impl GoIndentFormatter {
    fn new() -> Self {
        Self {
            pretty: PrettyFormatter::with_indent(b"    "),
        }
    }
}

impl Formatter for GoIndentFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..at])?;
            w.write_all(escaped.as_bytes())?;
            start = at + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster_entry() -> NetworkStatus {
        NetworkStatus {
            name: "cbr0".into(),
            interface: "eth0".into(),
            ips: vec!["10.244.1.7".into()],
            mac: "0a:58:0a:f4:01:07".into(),
            mtu: 1450,
            default: true,
            gateway: vec!["10.244.1.1".into()],
            ..NetworkStatus::default()
        }
    }

    #[test]
    fn written_as_go_marshal_indent_joined_with_commas() {
        let secondary = NetworkStatus {
            name: "team-a/storage-net".into(),
            interface: "net1".into(),
            ips: vec!["192.0.2.10".into()],
            mac: "02:00:5e:10:00:01".into(),
            device_info: Some(DeviceInfo::pci("0000:3b:02.1")),
            ..NetworkStatus::default()
        };
        let text = to_status_annotation(&[cluster_entry(), secondary]).unwrap();
        let expected = r#"[{
    "name": "cbr0",
    "interface": "eth0",
    "ips": [
        "10.244.1.7"
    ],
    "mac": "0a:58:0a:f4:01:07",
    "mtu": 1450,
    "default": true,
    "dns": {},
    "gateway": [
        "10.244.1.1"
    ]
},{
    "name": "team-a/storage-net",
    "interface": "net1",
    "ips": [
        "192.0.2.10"
    ],
    "mac": "02:00:5e:10:00:01",
    "dns": {},
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:3b:02.1"
        }
    }
}]"#;
        assert_eq!(text, expected);
        assert_eq!(to_status_annotation(&[]).unwrap(), "[]");
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let entry = NetworkStatus {
            name: "a<b>&c\u{2028}\"d".into(),
            ..NetworkStatus::default()
        };
        let text = to_status_annotation(std::slice::from_ref(&entry)).unwrap();
        assert!(
            text.contains(r#""name": "a\u003cb\u003e\u0026c\u2028\"d""#),
            "{text}"
        );
        assert_eq!(parse_network_status(&text).unwrap(), vec![entry]);
    }

    #[test]
    fn reads_any_layout_nulls_and_unknown_keys() {
        let text = r#"[{"name":"a","interface":null,"dns":null,"default-route":["192.0.2.1"],"org.example.x":{"y":1}},
                       {"name":"b","dns":{"nameservers":["10.0.0.10"],"search":["svc.cluster.local"],"options":["ndots:5"]}}]"#;
        let got = parse_network_status(text).unwrap();
        assert_eq!(got[0].interface, "");
        assert_eq!(got[0].extra["default-route"], json!(["192.0.2.1"]));
        assert_eq!(got[1].dns.options, vec!["ndots:5"]);
        // Written back, the unknown keys survive.
        let again = parse_network_status(&to_status_annotation(&got).unwrap()).unwrap();
        assert_eq!(again, got);
        assert_eq!(parse_network_status("  ").unwrap(), vec![]);
    }

    #[test]
    fn errors_say_which_entry() {
        let err = parse_network_status(r#"[{"name":"a"},{"name":"b","mtu":"big"}]"#).unwrap_err();
        assert!(
            matches!(err, StatusParseError::Entry { index: 1, .. }),
            "{err}"
        );
        assert!(matches!(
            parse_network_status("{}"),
            Err(StatusParseError::NotAList { .. })
        ));
        assert!(matches!(
            parse_network_status("[{"),
            Err(StatusParseError::Json { .. })
        ));
        assert!(matches!(
            parse_network_status("[1]"),
            Err(StatusParseError::Entry { index: 0, .. })
        ));
    }
}
