//! The raw codec: a value whose serde form is a byte string, a string, or a sequence of `u8`
//! (`Vec<u8>`, `String`, `bytes::Bytes`, `serde_bytes::ByteBuf`, newtypes of those) is stored
//! as its bytes, unchanged. Anything else is an encoding error.

use serde::de::value::{Error, SeqDeserializer};
use serde::de::{self, Visitor};
use serde::ser::{self, Impossible, Serialize};

const ONLY: &str = "the raw codec holds only bytes or strings";

pub(crate) fn to_vec<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    value.serialize(RawSer { out: &mut out })?;
    Ok(out)
}

pub(crate) fn from_slice<V: de::DeserializeOwned>(bytes: &[u8]) -> Result<V, Error> {
    V::deserialize(RawDe { bytes })
}

struct RawSer<'a> {
    out: &'a mut Vec<u8>,
}

fn only<T>() -> Result<T, Error> {
    Err(ser::Error::custom(ONLY))
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<Self::Ok, Error> { only() })*
    };
}

impl<'a> ser::Serializer for RawSer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = SeqSer<'a>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSer<'a>, Error> {
        self.out.reserve(len.unwrap_or(0));
        Ok(SeqSer { out: self.out })
    }
    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        only()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        only()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        only()
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        only()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        only()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        only()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        only()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        only()
    }
}

/// A sequence whose every element must be a `u8`.
struct SeqSer<'a> {
    out: &'a mut Vec<u8>,
}

impl ser::SerializeSeq for SeqSer<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let byte = value.serialize(ByteSer)?;
        self.out.push(byte);
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// Accepts exactly one `u8`.
struct ByteSer;

macro_rules! refuse_byte {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<u8, Error> { only() })*
    };
}

impl ser::Serializer for ByteSer {
    type Ok = u8;
    type Error = Error;
    type SerializeSeq = Impossible<u8, Error>;
    type SerializeTuple = Impossible<u8, Error>;
    type SerializeTupleStruct = Impossible<u8, Error>;
    type SerializeTupleVariant = Impossible<u8, Error>;
    type SerializeMap = Impossible<u8, Error>;
    type SerializeStruct = Impossible<u8, Error>;
    type SerializeStructVariant = Impossible<u8, Error>;

    fn serialize_u8(self, v: u8) -> Result<u8, Error> {
        Ok(v)
    }
    refuse_byte!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u8, Error> {
        only()
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<u8, Error> {
        only()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, Error> {
        only()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        only()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        only()
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        only()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        only()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        only()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        only()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        only()
    }
}

struct RawDe<'a> {
    bytes: &'a [u8],
}

impl<'de> de::Deserializer<'de> for RawDe<'_> {
    type Error = Error;

    fn deserialize_any<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Error> {
        visitor.visit_bytes(self.bytes)
    }
    fn deserialize_bytes<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Error> {
        visitor.visit_bytes(self.bytes)
    }
    fn deserialize_byte_buf<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Error> {
        visitor.visit_byte_buf(self.bytes.to_vec())
    }
    fn deserialize_str<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Error> {
        match std::str::from_utf8(self.bytes) {
            Ok(s) => visitor.visit_str(s),
            Err(e) => Err(de::Error::custom(e)),
        }
    }
    fn deserialize_string<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Error> {
        self.deserialize_str(visitor)
    }
    fn deserialize_seq<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Error> {
        visitor.visit_seq(SeqDeserializer::<_, Error>::new(self.bytes.iter().copied()))
    }
    fn deserialize_newtype_struct<W: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: W,
    ) -> Result<W::Value, Error> {
        visitor.visit_newtype_struct(self)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        option unit unit_struct tuple tuple_struct map struct enum identifier ignored_any
    }
}
