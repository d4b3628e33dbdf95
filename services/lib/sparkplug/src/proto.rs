//! The Sparkplug B payload as prost messages, written by hand from Eclipse Tahu's
//! `sparkplug_b.proto` (a copy with its EPL-2.0 licence is in `third_party/sparkplug/`): no
//! protoc and no build script. Field names and tags are the proto's; proto2 `optional` scalars
//! are `Option`s so that "absent" and "zero" stay apart on the wire, as other implementations
//! expect.
//!
//! Not modelled (decoded as skipped unknown fields, so a metric carrying one has no value):
//! `Metric.metadata` (8), `Metric.properties` (9), the `dataset_value` (17), `template_value`
//! (18) and `extension_value` (19) members of the value oneof, and the payload's extension
//! range (6 and up).

use crate::error::DecodeError;
use prost::Message;

/// Sparkplug B's `DataType` enum: the `datatype` number of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum DataType {
    /// Unknown placeholder (0).
    Unknown = 0,
    /// Signed 8-bit integer, carried in `int_value`.
    Int8 = 1,
    /// Signed 16-bit integer, carried in `int_value`.
    Int16 = 2,
    /// Signed 32-bit integer, carried in `int_value` (two's complement).
    Int32 = 3,
    /// Signed 64-bit integer, carried in `long_value` (two's complement).
    Int64 = 4,
    /// Unsigned 8-bit integer, carried in `int_value`.
    UInt8 = 5,
    /// Unsigned 16-bit integer, carried in `int_value`.
    UInt16 = 6,
    /// Unsigned 32-bit integer, carried in `int_value`.
    UInt32 = 7,
    /// Unsigned 64-bit integer, carried in `long_value`.
    UInt64 = 8,
    /// 32-bit float, carried in `float_value`.
    Float = 9,
    /// 64-bit float, carried in `double_value`.
    Double = 10,
    /// Boolean, carried in `boolean_value`.
    Boolean = 11,
    /// UTF-8 string.
    String = 12,
    /// Milliseconds since the Unix epoch, carried in `long_value`.
    DateTime = 13,
    /// UTF-8 text.
    Text = 14,
    /// UUID as a string.
    Uuid = 15,
    /// A data set (not supported).
    DataSet = 16,
    /// Raw bytes.
    Bytes = 17,
    /// A file as bytes.
    File = 18,
    /// A template (not supported).
    Template = 19,
    /// A property set (property values only).
    PropertySet = 20,
    /// A property set list (property values only).
    PropertySetList = 21,
    /// Array of Int8 (as bytes).
    Int8Array = 22,
    /// Array of Int16 (as bytes).
    Int16Array = 23,
    /// Array of Int32 (as bytes).
    Int32Array = 24,
    /// Array of Int64 (as bytes).
    Int64Array = 25,
    /// Array of UInt8 (as bytes).
    UInt8Array = 26,
    /// Array of UInt16 (as bytes).
    UInt16Array = 27,
    /// Array of UInt32 (as bytes).
    UInt32Array = 28,
    /// Array of UInt64 (as bytes).
    UInt64Array = 29,
    /// Array of Float (as bytes).
    FloatArray = 30,
    /// Array of Double (as bytes).
    DoubleArray = 31,
    /// Array of Boolean (as bytes).
    BooleanArray = 32,
    /// Array of String (as bytes).
    StringArray = 33,
    /// Array of DateTime (as bytes).
    DateTimeArray = 34,
}

impl DataType {
    /// Every data type, in number order (index = number).
    pub const ALL: [DataType; 35] = [
        DataType::Unknown,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float,
        DataType::Double,
        DataType::Boolean,
        DataType::String,
        DataType::DateTime,
        DataType::Text,
        DataType::Uuid,
        DataType::DataSet,
        DataType::Bytes,
        DataType::File,
        DataType::Template,
        DataType::PropertySet,
        DataType::PropertySetList,
        DataType::Int8Array,
        DataType::Int16Array,
        DataType::Int32Array,
        DataType::Int64Array,
        DataType::UInt8Array,
        DataType::UInt16Array,
        DataType::UInt32Array,
        DataType::UInt64Array,
        DataType::FloatArray,
        DataType::DoubleArray,
        DataType::BooleanArray,
        DataType::StringArray,
        DataType::DateTimeArray,
    ];

    /// The data type with this number, if the proto defines one.
    pub fn from_u32(n: u32) -> Option<Self> {
        Self::ALL.get(usize::try_from(n).ok()?).copied()
    }

    /// Its number on the wire.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Whether its values become readings (as `f64`): the integer types, the floats and
    /// Boolean (0 or 1). DateTime is an instant, not a measurement, so it does not.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Float
                | DataType::Double
                | DataType::Boolean
        )
    }

    /// The name the proto gives it (`Int32`, `Double`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Unknown => "Unknown",
            DataType::Int8 => "Int8",
            DataType::Int16 => "Int16",
            DataType::Int32 => "Int32",
            DataType::Int64 => "Int64",
            DataType::UInt8 => "UInt8",
            DataType::UInt16 => "UInt16",
            DataType::UInt32 => "UInt32",
            DataType::UInt64 => "UInt64",
            DataType::Float => "Float",
            DataType::Double => "Double",
            DataType::Boolean => "Boolean",
            DataType::String => "String",
            DataType::DateTime => "DateTime",
            DataType::Text => "Text",
            DataType::Uuid => "UUID",
            DataType::DataSet => "DataSet",
            DataType::Bytes => "Bytes",
            DataType::File => "File",
            DataType::Template => "Template",
            DataType::PropertySet => "PropertySet",
            DataType::PropertySetList => "PropertySetList",
            DataType::Int8Array => "Int8Array",
            DataType::Int16Array => "Int16Array",
            DataType::Int32Array => "Int32Array",
            DataType::Int64Array => "Int64Array",
            DataType::UInt8Array => "UInt8Array",
            DataType::UInt16Array => "UInt16Array",
            DataType::UInt32Array => "UInt32Array",
            DataType::UInt64Array => "UInt64Array",
            DataType::FloatArray => "FloatArray",
            DataType::DoubleArray => "DoubleArray",
            DataType::BooleanArray => "BooleanArray",
            DataType::StringArray => "StringArray",
            DataType::DateTimeArray => "DateTimeArray",
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `org.eclipse.tahu.protobuf.Payload`: what every Sparkplug B message carries.
#[derive(Clone, PartialEq, Message)]
pub struct Payload {
    /// Milliseconds since the Unix epoch at sending time.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// Message sequence number, 0-255 (absent on NDEATH).
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    /// Schema UUID (unused here).
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    /// An opaque body bypassing the metrics (unused here).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// `Payload.Metric`: one named or aliased value.
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    /// Metric name (births; data may use the alias only).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Alias tied to the name by the birth.
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    /// Milliseconds since the Unix epoch when the value was acquired.
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    /// A [`DataType`] number.
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    /// Historical data: late, not a live value.
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    /// Not to be stored as a tag.
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    /// The value is explicitly null.
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    /// The value (tags 10-16; 17-19 are not modelled).
    #[prost(oneof = "MetricValue", tags = "10, 11, 12, 13, 14, 15, 16")]
    pub value: Option<MetricValue>,
}

/// `Payload.Metric.value`: the members of the oneof this crate models.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetricValue {
    /// Int8/16/32, UInt8/16/32.
    #[prost(uint32, tag = "10")]
    IntValue(u32),
    /// Int64, UInt64, DateTime.
    #[prost(uint64, tag = "11")]
    LongValue(u64),
    /// Float.
    #[prost(float, tag = "12")]
    FloatValue(f32),
    /// Double.
    #[prost(double, tag = "13")]
    DoubleValue(f64),
    /// Boolean.
    #[prost(bool, tag = "14")]
    BooleanValue(bool),
    /// String, Text, UUID.
    #[prost(string, tag = "15")]
    StringValue(String),
    /// Bytes, File, arrays.
    #[prost(bytes = "vec", tag = "16")]
    BytesValue(Vec<u8>),
}

impl Metric {
    /// A metric with a name, an alias and a datatype, and no value (build on it).
    pub fn named(name: &str, alias: Option<u64>, datatype: DataType) -> Self {
        Self {
            name: Some(name.to_owned()),
            alias,
            datatype: Some(datatype.as_u32()),
            ..Self::default()
        }
    }

    /// This metric with `value`.
    #[must_use]
    pub fn with_value(mut self, value: MetricValue) -> Self {
        self.value = Some(value);
        self
    }
}

/// Decodes a payload received from the network.
///
/// # Errors
/// [`DecodeError`] when the bytes are not a well-formed `Payload` (truncated, wrong wire type
/// for a known field, invalid UTF-8 in a string, nesting deeper than prost's recursion limit).
pub fn decode_payload(bytes: &[u8]) -> Result<Payload, DecodeError> {
    Payload::decode(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// Encodes a payload for publishing.
pub fn encode_payload(payload: &Payload) -> Vec<u8> {
    payload.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_numbers_match_the_proto() {
        for (i, t) in DataType::ALL.iter().enumerate() {
            assert_eq!(t.as_u32() as usize, i);
            assert_eq!(DataType::from_u32(i as u32), Some(*t));
        }
        assert_eq!(DataType::from_u32(35), None);
        assert_eq!(DataType::from_u32(u32::MAX), None);
        assert_eq!(DataType::Double.as_u32(), 10);
        assert_eq!(DataType::Uuid.name(), "UUID");
        assert!(DataType::Boolean.is_numeric());
        assert!(!DataType::String.is_numeric());
        assert!(!DataType::DateTime.is_numeric());
    }

    /// Bytes written by hand from the proto's tags, so the struct attributes are checked
    /// against the wire format and not only against themselves.
    #[test]
    fn decodes_hand_written_wire_bytes() {
        let bytes = [
            0x08, 0xe8, 0x07, // timestamp = 1000
            0x12, 0x0b, // metrics[0], 11 bytes
            0x0a, 0x01, b't', // name = "t"
            0x10, 0x05, // alias = 5
            0x20, 0x0a, // datatype = 10 (Double)
            0x69, 0, 0, 0, 0, // double_value (tag 13, fixed64) ... continued below
        ];
        // The metric above is cut short on purpose: a truncated payload is an error.
        assert!(decode_payload(&bytes).is_err());

        let mut ok = vec![0x08, 0xe8, 0x07, 0x12, 0x10, 0x0a, 0x01, b't', 0x10, 0x05];
        ok.extend([0x20, 0x0a, 0x69]);
        ok.extend(2.5f64.to_le_bytes());
        ok.extend([0x18, 0x07]); // seq = 7
        let p = decode_payload(&ok).unwrap();
        assert_eq!(p.timestamp, Some(1000));
        assert_eq!(p.seq, Some(7));
        assert_eq!(p.metrics.len(), 1);
        let m = &p.metrics[0];
        assert_eq!(m.name.as_deref(), Some("t"));
        assert_eq!(m.alias, Some(5));
        assert_eq!(m.datatype, Some(10));
        assert_eq!(m.value, Some(MetricValue::DoubleValue(2.5)));
        assert_eq!(encode_payload(&p), ok);
    }

    #[test]
    fn unmodelled_members_are_skipped_not_errors() {
        // metric with name "d" and a dataset_value (tag 17, length-delimited, 2 bytes) and
        // properties (tag 9, empty), then a payload extension field 7 (varint).
        let bytes = [
            0x12, 0x0a, 0x0a, 0x01, b'd', 0x8a, 0x01, 0x02, 0x08, 0x01, 0x4a, 0x00, 0x38, 0x01,
        ];
        // 0x12 0x0a: a metric of 10 bytes (name 3, dataset_value 5, properties 2).
        let p = decode_payload(&bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(p.metrics[0].name.as_deref(), Some("d"));
        assert_eq!(p.metrics[0].value, None);
        let p = decode_payload(&bytes).unwrap();
        assert_eq!(p.metrics.len(), 1);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(decode_payload(b"{\"json\": true}").is_err());
        assert!(decode_payload(&[0xff; 16]).is_err());
        assert_eq!(decode_payload(&[]).unwrap(), Payload::default());
    }
}
