//! Strings of a decoded record that borrow from its text.
//!
//! serde's `Deserialize` for `Cow<str>` always copies, and `#[serde(borrow)]` borrows only a
//! field spelled exactly `Cow<'a, str>` — not an `Option<Cow<str>>`, a `Vec<Cow<str>>` or a
//! type alias of either. Every string field of every event was copied into its own
//! allocation (~16% of the Kafka receive loop's CPU). These `deserialize_with` functions
//! borrow whenever the JSON string has no escapes, and copy only when it has.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, Visitor};

/// A string that borrows from the input unless it has escapes (e.g. a map key to compare).
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

pub fn cow<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
    Str::deserialize(d).map(|s| s.0)
}

pub fn opt<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Option::<Str>::deserialize(d).map(|o| o.map(|s| s.0))
}

pub fn opt_vec<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Cow<'a, str>>>, D::Error> {
    Option::<Vec<Str>>::deserialize(d).map(|o| o.map(|v| v.into_iter().map(|s| s.0).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T<'a> {
        #[serde(borrow, deserialize_with = "cow")]
        a: Cow<'a, str>,
        #[serde(borrow, default, deserialize_with = "opt")]
        b: Option<Cow<'a, str>>,
        #[serde(borrow, default, deserialize_with = "opt_vec")]
        c: Option<Vec<Cow<'a, str>>>,
        #[serde(borrow, default, deserialize_with = "opt")]
        d: Option<Cow<'a, str>>,
    }

    #[allow(clippy::ptr_arg)] // the variant is the point
    fn borrowed(c: &Cow<str>) -> bool {
        matches!(c, Cow::Borrowed(_))
    }

    #[test]
    fn plain_strings_are_borrowed_escaped_ones_copied() {
        let t: T = serde_json::from_str(r#"{"a":"x","b":"y","c":["z","w"],"d":null}"#).unwrap();
        assert!(borrowed(&t.a) && borrowed(t.b.as_ref().unwrap()));
        assert!(t.c.as_ref().unwrap().iter().all(borrowed));
        assert_eq!(t.d, None);
        let t: T = serde_json::from_str(r#"{"a":"x\"q","b":"\u00e9"}"#).unwrap();
        assert_eq!((t.a.as_ref(), t.b.as_deref()), ("x\"q", Some("é")));
        assert!(!borrowed(&t.a) && t.c.is_none());
    }

    #[test]
    fn non_strings_are_type_errors() {
        let e = serde_json::from_str::<T>(r#"{"a":1}"#).err().unwrap();
        assert!(e.to_string().contains("expected a string"), "{e}");
        assert!(serde_json::from_str::<T>(r#"{"a":"x","c":[1]}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"b":"x"}"#).is_err());
    }
}
